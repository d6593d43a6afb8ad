package orchestration

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
)

// describeCall names the call that made a decision, for error messages.
func describeCall(ev *HistoryEvent) string {
	switch ev.Kind {
	case TaskScheduled:
		return fmt.Sprintf("CallActivity(%q)", ev.Name)
	case SubOrchestrationInstanceCreated:
		return fmt.Sprintf("CallSubOrchestrator(%q)", ev.Name)
	case TimerCreated:
		return fmt.Sprintf("CreateTimer(%s)", ev.FireAt.Format(time.RFC3339Nano))
	case EventSent:
		return fmt.Sprintf("SendEvent(%q, %q)", ev.InstanceID, ev.Name)
	case EntityOperationCalled:
		return fmt.Sprintf("CallEntity(%s, %q)", ev.InstanceID, ev.Name)
	case EntityOperationSignaled:
		return fmt.Sprintf("SignalEntity(%s, %q)", ev.InstanceID, ev.Name)
	case EntityLockRequested:
		return fmt.Sprintf("LockEntities(%v)", ev.LockSet)
	case EntityUnlockSent:
		return fmt.Sprintf("unlock(%s)", ev.InstanceID)
	}
	return ev.Kind.String()
}

// drive runs the instance until every available event is applied: it
// applies events itself while the orchestrator is not running, starts the
// orchestrator when its ExecutionStarted is applied within an episode, and
// hands control to the parked orchestrator when there are events for it.
func (i *Instance) drive() {
	for {
		switch {
		case i.fnState == fnAlive && i.cursor < i.available():
			i.resume()
		case i.fnState == fnNotStarted && i.started && i.sawEpisodeStart && !i.completed && i.fn != nil && !i.now.Before(i.start.FireAt):
			i.fnState = fnAlive
			if !i.suspended {
				i.status = StatusRunning
			}
			i.resume, i.stop = iter.Pull(i.runFunction)
			i.resume()
		case i.cursor < i.available():
			if err := i.applyNext(); err != nil {
				i.failHard(err)
			}
		default:
			return
		}
	}
}

func (i *Instance) available() int { return len(i.stored) + len(i.live) }

func (i *Instance) replaying() bool { return i.cursor < len(i.stored) }

// applyNext applies the event at the cursor.
func (i *Instance) applyNext() error {
	n := i.cursor
	var ev *HistoryEvent
	stored := n < len(i.stored)
	if stored {
		ev = &i.stored[n]
	} else {
		ev = &i.live[n-len(i.stored)]
	}
	i.cursor++
	if i.completed && !ev.Kind.IsDecision() && ev.Kind != OrchestratorStarted {
		// After the end, inputs change nothing (recorded decisions are still
		// checked), unless the next generation takes them.
		i.carryOver(ev)
		return nil
	}
	if ev.RequestID != "" {
		// Recorded now, even if a suspension holds the input, so a
		// redelivery is a duplicate.
		i.noteRequestID(ev.RequestID, ev.Timestamp)
	}
	if i.suspended && isDeferrable(ev.Kind) {
		if t := i.task(ev.EventID); ev.Kind.IsOutcome() && t != nil && matchesCompletion(t.kind, ev.Kind) {
			t.held = true
		}
		i.deferred = append(i.deferred, *ev)
		return nil
	}
	return i.apply(ev, stored, n)
}

// isDeferrable reports whether a suspended instance holds events of this
// kind until it resumes.
func isDeferrable(k EventKind) bool {
	return k.IsOutcome() || k == EventRaised
}

func (i *Instance) apply(ev *HistoryEvent, stored bool, index int) error {
	switch ev.Kind {
	case OrchestratorStarted:
		i.now = ev.Timestamp
		i.sawEpisodeStart = true
		i.actions = 0
	case OrchestratorCompleted:
		if ev.CustomStatus != nil {
			i.customStatus = ev.CustomStatus
		}
		i.recordedWait = Waiting{NextTimer: ev.FireAt, Events: ev.AwaitedEvents}
		if stored {
			if i.pendingHead < len(i.pending) {
				p := &i.pending[i.pendingHead]
				return i.nonDeterminism(-1, nil, describeCall(p), p.EventID)
			}
			if c := i.completion; c != nil {
				// The code completed in an episode that recorded no completion.
				return i.nonDeterminism(index, ev, fmt.Sprintf("ExecutionCompleted(%s) before it", c.Status), -1)
			}
		}
	case ExecutionStarted:
		return i.begin(ev)
	case TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent,
		EntityOperationSignaled, EntityOperationCalled, EntityLockRequested, EntityUnlockSent:
		if stored {
			return i.confirm(ev, index)
		}
	case ExecutionCompleted:
		if stored && IsRejection(ev) {
			i.endRejected(ev)
			return nil
		}
		if stored {
			return i.confirmCompletion(ev, index)
		}
	case TaskCompleted:
		i.finishTask(ev.EventID, ev.Result, nil)
	case TaskFailed:
		if t := i.task(ev.EventID); t != nil {
			i.finishTask(ev.EventID, nil, &TaskFailedError{Kind: ActivityTask, Name: t.name, EventID: ev.EventID, Failure: ev.Failure})
		}
	case SubOrchestrationInstanceCompleted:
		i.finishTask(ev.EventID, ev.Result, nil)
	case SubOrchestrationInstanceFailed:
		if t := i.task(ev.EventID); t != nil {
			i.finishTask(ev.EventID, nil, &TaskFailedError{Kind: SubOrchestrationTask, Name: t.name, EventID: ev.EventID, Failure: ev.Failure})
		}
	case TimerFired, EntityLockGranted:
		i.finishTask(ev.EventID, nil, nil)
	case EntityOperationCompleted:
		i.finishTask(ev.EventID, ev.Result, nil)
	case EntityOperationFailed:
		if t := i.task(ev.EventID); t != nil {
			i.finishTask(ev.EventID, nil, &TaskFailedError{Kind: EntityTask, Name: t.name, EventID: ev.EventID, Failure: ev.Failure})
		}
	case EventRaised:
		i.deliver(ev)
	case ExecutionTerminated:
		i.terminate(ev.Input)
	case ExecutionSuspended:
		if !i.completed {
			i.suspended = true
			i.status = StatusSuspended
		}
	case ExecutionResumed:
		if i.suspended {
			i.suspended = false
			i.status = StatusRunning
			deferred := i.deferred
			i.deferred = nil
			for n := range deferred {
				if err := i.apply(&deferred[n], false, -1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// begin applies ExecutionStarted.
func (i *Instance) begin(ev *HistoryEvent) error {
	if i.started {
		return nil
	}
	i.started = true
	i.start = *ev
	for _, id := range ev.RequestIDs {
		i.noteRequestID(id, ev.Timestamp)
	}
	fn, ok := i.reg.Get(ev.Name)
	if !ok {
		i.failHard(&UnknownOrchestratorError{Name: ev.Name})
		return nil
	}
	i.fn = fn
	return nil
}

// noteRequestID remembers a request ID recorded at the given time.
func (i *Instance) noteRequestID(id string, at time.Time) {
	if i.requestIDs == nil {
		i.requestIDs = make(map[string]time.Time)
	}
	i.requestIDs[id] = at
}

func (i *Instance) task(seq int32) *Task {
	if seq < 0 || int(seq) >= len(i.tasks) {
		return nil
	}
	return i.tasks[seq]
}

// finishTask completes the task of a decision and forgets it, so the
// instance does not hold the results of a long history.
func (i *Instance) finishTask(seq int32, result []byte, err error) {
	if t := i.task(seq); t != nil {
		i.tasks[seq] = nil
		t.complete(result, err)
	}
}

// confirm matches a recorded decision with the pending decision of the same
// sequence number.
func (i *Instance) confirm(ev *HistoryEvent, index int) error {
	k := i.findPending(ev.EventID)
	if k < 0 {
		return i.nonDeterminism(index, ev, i.waitingOn(), -1)
	}
	if p := &i.pending[k]; p.Kind != ev.Kind || !strings.EqualFold(p.Name, ev.Name) || isEntityDecision(p.Kind) && p.InstanceID != ev.InstanceID {
		return i.nonDeterminism(index, ev, describeCall(p), -1)
	}
	i.removePending(k)
	i.checkLength(index)
	return nil
}

// isEntityDecision reports whether a decision is addressed to an entity,
// whose ID is part of what a replay checks.
func isEntityDecision(k EventKind) bool {
	return k == EntityOperationSignaled || k == EntityOperationCalled || k == EntityUnlockSent
}

// findPending returns the index in pending of the decision with sequence
// number seq, or -1. Decisions are recorded in sequence order, so it is the
// first pending one unless the history was written out of order.
func (i *Instance) findPending(seq int32) int {
	for k := i.pendingHead; k < len(i.pending); k++ {
		if i.pending[k].EventID == seq {
			return k
		}
	}
	return -1
}

func (i *Instance) removePending(k int) {
	if k == i.pendingHead {
		i.pending[k] = HistoryEvent{} // let go of its payload
		i.pendingHead++
	} else {
		i.pending = slices.Delete(i.pending, k, k+1)
	}
	if i.pendingHead == len(i.pending) {
		i.clearPending()
	}
}

// clearPending drops the pending decisions, keeping a small buffer for the
// next ones (a large one, of a fan-out, is let go).
func (i *Instance) clearPending() {
	if cap(i.pending) > 64 {
		i.pending = nil
	} else {
		clear(i.pending[i.pendingHead:])
		i.pending = i.pending[:0]
	}
	i.pendingHead = 0
}

func (i *Instance) confirmCompletion(ev *HistoryEvent, index int) error {
	i.checkLength(index)
	c := i.completion
	if c == nil {
		return i.nonDeterminism(index, ev, i.waitingOn(), -1)
	}
	if c.Status != ev.Status || i.hardFailed != nil && !sameFailure(c.Failure, ev.Failure) {
		return i.nonDeterminism(index, ev, fmt.Sprintf("ExecutionCompleted(%s)", c.Status), -1)
	}
	i.completion = nil
	return nil
}

// checkLength applies the history length limit to a recorded decision at
// index, as emit did when the decision was new, so a replay fails where the
// recorded run failed.
func (i *Instance) checkLength(index int) {
	if index >= i.opts.MaxHistoryEvents {
		i.abort(&LimitError{What: "history length", Value: index + 1, Limit: i.opts.MaxHistoryEvents,
			Hint: "restart long-running orchestrations with ContinueAsNew"})
	}
}

func sameFailure(a, b *FailureDetails) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ErrorType == b.ErrorType && a.Message == b.Message
}

// waitingOn describes what the code did instead of a recorded decision.
func (i *Instance) waitingOn() string {
	if i.completed {
		return "no further call (it completed)"
	}
	return "no call (it is waiting)"
}

func (i *Instance) nonDeterminism(index int, ev *HistoryEvent, call string, seq int32) error {
	err := &NonDeterminismError{InstanceID: i.start.InstanceID, Orchestrator: i.start.Name, Index: index, Call: call}
	if ev != nil {
		cp := *ev
		err.Event = &cp
	} else if seq >= 0 {
		err.Call = fmt.Sprintf("%s (#%d) that no recorded episode has", call, seq)
	}
	return err
}
