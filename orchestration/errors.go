package orchestration

import (
	"errors"
	"fmt"
)

var (
	// ErrNonDeterminism is matched by every *NonDeterminismError.
	ErrNonDeterminism = errors.New("orchestration: non-deterministic orchestrator")
	// ErrTaskFailed is matched by every *TaskFailedError.
	ErrTaskFailed = errors.New("orchestration: task failed")
	// ErrTimeout is matched by a *TimeoutError from a wait with a timeout.
	ErrTimeout = errors.New("orchestration: timed out")
	// ErrCanceled is returned by awaiting a timer or event wait that lost a
	// WhenAny and was cancelled.
	ErrCanceled = errors.New("orchestration: task canceled")
	// ErrUnknownOrchestrator is matched by every *UnknownOrchestratorError.
	ErrUnknownOrchestrator = errors.New("orchestration: unknown orchestrator")
	// ErrLimitExceeded is matched by every *LimitError.
	ErrLimitExceeded = errors.New("orchestration: limit exceeded")
	// ErrInstanceCompleted is returned by Step on an instance that has
	// completed, failed, been terminated or continued as new.
	ErrInstanceCompleted = errors.New("orchestration: instance is no longer running")
	// ErrNotStarted is returned by Step before an ExecutionStarted event.
	ErrNotStarted = errors.New("orchestration: instance has no ExecutionStarted event")
	// ErrLockingRules is matched by every *LockingRulesError.
	ErrLockingRules = errors.New("orchestration: critical section rules violated")
)

// LockingRulesError reports a call that a critical section does not allow
// (see Context.LockEntities): the rules keep sections free of deadlocks.
type LockingRulesError struct {
	Rule string
}

func (e *LockingRulesError) Error() string { return "orchestration: " + e.Rule }

// Is makes errors.Is(err, ErrLockingRules) true.
func (e *LockingRulesError) Is(target error) bool { return target == ErrLockingRules }

// TaskKind says what a failed task was.
type TaskKind uint8

const (
	ActivityTask TaskKind = iota
	SubOrchestrationTask
	EntityTask
)

func (k TaskKind) String() string {
	switch k {
	case SubOrchestrationTask:
		return "sub-orchestration"
	case EntityTask:
		return "entity operation"
	}
	return "activity"
}

// TaskFailedError is what awaiting a failed activity, sub-orchestration or
// entity operation returns. Failure carries the error type, message and stack trace the task
// reported.
type TaskFailedError struct {
	Kind TaskKind
	Name string
	// EventID is the sequence number of the failed TaskScheduled or
	// SubOrchestrationInstanceCreated event.
	EventID int32
	Failure *FailureDetails
}

func (e *TaskFailedError) Error() string {
	return fmt.Sprintf("%s %q failed: %s", e.Kind, e.Name, e.Failure)
}

// Is makes errors.Is(err, ErrTaskFailed) true.
func (e *TaskFailedError) Is(target error) bool { return target == ErrTaskFailed }

// TimeoutError is returned by a WaitForEvent whose timeout fired first.
type TimeoutError struct {
	EventName string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("orchestration: timed out waiting for event %q", e.EventName)
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// NonDeterminismError reports that replaying an instance's history through
// the orchestrator's current code did not reproduce the recorded decisions,
// which happens when the code changed after the instance started. The
// instance fails with it rather than continuing on a diverged path.
type NonDeterminismError struct {
	InstanceID   string
	Orchestrator string
	// Index is the position of the mismatching event in the history being
	// replayed, or -1 when the history has no event for the code's call.
	Index int
	// Event is the recorded event, when there is one.
	Event *HistoryEvent
	// Call describes what the code did instead, e.g. CallActivity("Greet")
	// or "no call".
	Call string
}

func (e *NonDeterminismError) Error() string {
	recorded := "no recorded decision"
	if e.Event != nil {
		recorded = fmt.Sprintf("history event #%d %s", e.Index, describeEvent(e.Event))
	}
	return fmt.Sprintf("orchestration %q (instance %q) is not deterministic: %s, but the code now made %s; was the orchestrator changed after this instance started?",
		e.Orchestrator, e.InstanceID, recorded, e.Call)
}

// Is makes errors.Is(err, ErrNonDeterminism) true.
func (e *NonDeterminismError) Is(target error) bool { return target == ErrNonDeterminism }

func describeEvent(ev *HistoryEvent) string {
	switch ev.Kind {
	case TaskScheduled, SubOrchestrationInstanceCreated, EventSent:
		return fmt.Sprintf("%s(#%d %q)", ev.Kind, ev.EventID, ev.Name)
	case EntityOperationCalled, EntityOperationSignaled:
		return fmt.Sprintf("%s(#%d %s %q)", ev.Kind, ev.EventID, ev.InstanceID, ev.Name)
	case EntityLockRequested:
		return fmt.Sprintf("EntityLockRequested(#%d %v)", ev.EventID, ev.LockSet)
	case EntityUnlockSent:
		return fmt.Sprintf("EntityUnlockSent(#%d %s)", ev.EventID, ev.InstanceID)
	case TimerCreated:
		return fmt.Sprintf("TimerCreated(#%d at %s)", ev.EventID, ev.FireAt.Format("2006-01-02T15:04:05.999Z07:00"))
	case ExecutionCompleted:
		return fmt.Sprintf("ExecutionCompleted(%s)", ev.Status)
	}
	return ev.Kind.String()
}

// UnknownOrchestratorError reports an ExecutionStarted naming an
// orchestrator the registry does not have.
type UnknownOrchestratorError struct {
	Name string
}

func (e *UnknownOrchestratorError) Error() string {
	return fmt.Sprintf("orchestration: no orchestrator is registered under the name %q", e.Name)
}

// Is makes errors.Is(err, ErrUnknownOrchestrator) true.
func (e *UnknownOrchestratorError) Is(target error) bool { return target == ErrUnknownOrchestrator }

// LimitError reports a bound an instance or a call went over.
type LimitError struct {
	// What names the bound, e.g. "history length" or "custom status size".
	What  string
	Value int
	Limit int
	Hint  string
}

func (e *LimitError) Error() string {
	msg := fmt.Sprintf("orchestration: %s is %d, over the limit of %d", e.What, e.Value, e.Limit)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Is makes errors.Is(err, ErrLimitExceeded) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimitExceeded }
