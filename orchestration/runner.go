package orchestration

import (
	"context"
	"fmt"
)

// The helpers below turn the work an orchestration asked for into the
// outcome events it is given, the same way for the runtime and for tests.

// RunActivity runs the activity fn registered under name with its encoded
// input, and returns its encoded result or the failure to record: a nil fn
// (no activity under that name) fails as "ActivityNotFound", not retriable;
// an error fails with Failure(err); a panic fails as "panic" with the
// stack; a result larger than maxPayloadSize (DefaultMaxPayloadSize when
// not positive) fails with a *LimitError.
func RunActivity(ctx context.Context, name string, fn func(context.Context, []byte) ([]byte, error), input []byte, maxPayloadSize int) (result []byte, failure *FailureDetails) {
	if fn == nil {
		return nil, &FailureDetails{ErrorType: "ActivityNotFound", Message: fmt.Sprintf("no activity is registered under the name %q", name), NonRetriable: true}
	}
	if maxPayloadSize <= 0 {
		maxPayloadSize = DefaultMaxPayloadSize
	}
	defer func() {
		if r := recover(); r != nil {
			result, failure = nil, panicFailure(r)
		}
	}()
	out, err := fn(ctx, input)
	switch {
	case err != nil:
		return nil, Failure(err)
	case len(out) > maxPayloadSize:
		return nil, Failure(&LimitError{What: fmt.Sprintf("result of activity %q", name), Value: len(out), Limit: maxPayloadSize})
	}
	return out, nil
}

// SubOrchestrationOutcome returns the event that tells a parent how the
// sub-orchestration it created as decision eventID ended, given the child's
// ExecutionCompleted: SubOrchestrationInstanceCompleted with its result, or
// SubOrchestrationInstanceFailed with its failure (for a child that ended
// without one, terminated say, a failure named after its status).
func SubOrchestrationOutcome(eventID int32, completed HistoryEvent) HistoryEvent {
	if completed.Status == StatusCompleted {
		return HistoryEvent{Kind: SubOrchestrationInstanceCompleted, EventID: eventID, Result: completed.Result}
	}
	failure := completed.Failure
	if failure == nil {
		failure = &FailureDetails{ErrorType: completed.Status.String(), Message: "sub-orchestration was " + completed.Status.String()}
	}
	return HistoryEvent{Kind: SubOrchestrationInstanceFailed, EventID: eventID, Failure: failure}
}
