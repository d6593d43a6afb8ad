package orchestration

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"time"
)

// await runs the instance until t completes. It is called on the
// orchestrator's goroutine.
func (i *Instance) await(t *Task) {
	if i.aborting {
		panic(abortSignal{})
	}
	for !t.done {
		if i.cursor < i.available() {
			if err := i.applyNext(); err != nil {
				i.abort(err)
			}
			if i.aborting {
				panic(abortSignal{})
			}
			continue
		}
		if !i.park(struct{}{}) {
			i.aborting = true // Close
			panic(abortSignal{})
		}
	}
}

// abort fails the instance and unwinds the orchestrator, when it runs.
func (i *Instance) abort(err error) {
	i.failHard(err)
	if i.fnState == fnAlive {
		i.aborting = true
	}
}

// runFunction is the orchestrator's coroutine; it parks through park.
func (i *Instance) runFunction(park func(struct{}) bool) {
	i.park = park
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(abortSignal); !ok {
				i.fail(failureError{panicFailure(r)})
			}
		}
		// Apply what is left of the history: the code is done with it.
		for !i.aborting && i.cursor < i.available() {
			if err := i.applyNext(); err != nil {
				i.failHard(err)
			}
		}
		i.fnState = fnFinished
	}()
	out, err := i.fn(i.ctx)
	switch {
	case i.continueAsNew != nil:
		i.complete(StatusContinuedAsNew, i.continueAsNew.input, nil)
	case err != nil:
		i.fail(err)
	default:
		data, merr := i.opts.Converter.Marshal(out)
		switch {
		case merr != nil:
			i.fail(fmt.Errorf("orchestration: encode output: %w", merr))
		case len(data) > i.opts.MaxPayloadSize:
			i.fail(&LimitError{What: "output size", Value: len(data), Limit: i.opts.MaxPayloadSize})
		default:
			i.complete(StatusCompleted, data, nil)
		}
	}
}

func panicFailure(r any) *FailureDetails {
	return &FailureDetails{ErrorType: "panic", Message: fmt.Sprint(r), StackTrace: string(debug.Stack())}
}

// Failure turns an error into FailureDetails: its Go type and message, and
// the failure of a task it wraps as the inner failure.
func Failure(err error) *FailureDetails {
	if err == nil {
		return nil
	}
	f := &FailureDetails{ErrorType: reflect.TypeOf(err).String(), Message: err.Error()}
	var tf *TaskFailedError
	if errors.As(err, &tf) {
		f.Inner = tf.Failure
	}
	var nonRetriable interface{ NonRetriable() bool }
	if errors.As(err, &nonRetriable) {
		f.NonRetriable = nonRetriable.NonRetriable()
	}
	return f
}

// fail ends the instance because the orchestrator failed: it returned an
// error, panicked, or its output could not be encoded. Replay reproduces
// such a failure, so while replaying it is matched against history like any
// other decision.
func (i *Instance) fail(err error) {
	i.complete(StatusFailed, nil, failureOf(err))
}

// failHard ends the instance because the executor cannot go on: the code is
// not deterministic, an orchestrator is unknown, a limit was exceeded. Such
// a failure replaces a completion the same run made earlier. While
// replaying it is held like a completion: a history that recorded the same
// failure confirms it, and otherwise it is new when the replay ends.
func (i *Instance) failHard(err error) {
	if i.hardFailed != nil {
		return
	}
	if i.completed {
		i.removeCompletion()
	}
	i.clearPending()   // decisions of a run that cannot go on are not made...
	i.releaseSection() // ...but for the release of its entities
	i.hardFailed = err
	i.completed = true
	i.status, i.result, i.failure = StatusFailed, nil, failureOf(err)
	ev := HistoryEvent{Kind: ExecutionCompleted, Status: StatusFailed, Failure: i.failure}
	if i.replaying() {
		i.completion = &ev
		return
	}
	i.emit(ev)
}

func failureOf(err error) *FailureDetails {
	if f, ok := err.(failureError); ok {
		return f.details
	}
	return Failure(err)
}

// failureError carries prepared FailureDetails through the error path.
type failureError struct{ details *FailureDetails }

func (f failureError) Error() string { return f.details.String() }

// complete ends the instance with an ExecutionCompleted decision.
func (i *Instance) complete(status Status, result []byte, failure *FailureDetails) {
	if i.completed {
		return
	}
	i.releaseSection()
	i.completed = true
	i.status, i.result, i.failure = status, result, failure
	ev := HistoryEvent{Kind: ExecutionCompleted, Status: status, Result: result, Failure: failure}
	if i.replaying() {
		i.completion = &ev
		return
	}
	i.flushPending() // the decisions before it first
	i.emit(ev)
}

// removeCompletion drops an ExecutionCompleted this episode emitted or
// holds pending, so a failure found later can take its place.
func (i *Instance) removeCompletion() {
	i.completion = nil
	for n := len(i.live) - 1; n >= 0; n-- {
		if i.live[n].Kind == ExecutionCompleted {
			i.live = append(i.live[:n], i.live[n+1:]...)
			i.length--
			return
		}
	}
}

// ErrorTypeEpisodeRejected is the ErrorType of the failure that ends an
// instance whose episode the event store refused for good (an episode
// larger than the store's event size limit, say): the decisions of that
// episode were never recorded, so the runtime records this failure in
// their place, and a replay ends the instance where the recorded history
// stops.
const ErrorTypeEpisodeRejected = "EpisodeRejected"

// RejectionEpisode returns the events a runtime records in place of an
// episode the store refused for good: the instance fails with reason. start
// is the rejected episode's ExecutionStarted when it held one (the first
// episode of an instance or of a restart), so that the instance exists and
// shows the failure.
func RejectionEpisode(now time.Time, start *HistoryEvent, reason string) []HistoryEvent {
	events := []HistoryEvent{{Kind: OrchestratorStarted, Timestamp: now}}
	if start != nil {
		es := *start
		es.Timestamp = now
		events = append(events, es)
	}
	return append(events,
		HistoryEvent{Kind: ExecutionCompleted, Timestamp: now, Status: StatusFailed,
			Failure: &FailureDetails{ErrorType: ErrorTypeEpisodeRejected, Message: reason, NonRetriable: true}},
		HistoryEvent{Kind: OrchestratorCompleted, Timestamp: now})
}

// IsRejection reports whether ev is the completion RejectionEpisode records.
func IsRejection(ev *HistoryEvent) bool {
	return ev.Kind == ExecutionCompleted && ev.Status == StatusFailed && ev.Failure != nil && ev.Failure.ErrorType == ErrorTypeEpisodeRejected
}

// endRejected applies a recorded rejection: the instance fails where it
// stands, and its code, if running, is unwound.
func (i *Instance) endRejected(ev *HistoryEvent) {
	i.clearPending()
	i.completion = nil
	i.completed = true
	i.status, i.result, i.failure = StatusFailed, nil, ev.Failure
	if i.fnState == fnAlive {
		i.aborting = true
	}
}

// terminate applies ExecutionTerminated.
func (i *Instance) terminate(reason []byte) {
	if i.completed {
		return
	}
	i.complete(StatusTerminated, reason, nil)
	if i.fnState == fnAlive {
		i.aborting = true
	}
}
