package durable

import (
	"errors"
	"fmt"
)

var (
	// ErrInstanceNotFound is returned for an instance that does not exist.
	ErrInstanceNotFound = errors.New("durable: instance not found")
	// ErrInstanceExists is returned by Start for an instance that is
	// already running (a finished one may be started again).
	ErrInstanceExists = errors.New("durable: instance already exists and is running")
	// ErrInstanceNotRunning is returned when an instance has completed,
	// failed or been terminated and the request needs it running.
	ErrInstanceNotRunning = errors.New("durable: instance is not running")
	// ErrInstanceRunning is returned by Purge for an instance that has not
	// ended: terminate it first.
	ErrInstanceRunning = errors.New("durable: instance has not ended")
	// ErrUnknownOrchestrator is returned by Start for a name no
	// orchestrator is registered under.
	ErrUnknownOrchestrator = errors.New("durable: unknown orchestrator")
	// ErrInvalidInstanceID is matched by every *InvalidInstanceIDError.
	ErrInvalidInstanceID = errors.New("durable: invalid instance ID")
	// ErrPayloadTooLarge is matched by every *PayloadTooLargeError.
	ErrPayloadTooLarge = errors.New("durable: payload too large")
	// ErrStopped is returned by a client of an engine that has stopped.
	ErrStopped = errors.New("durable: engine stopped")
	// ErrIndexStopped is returned by Client.Wait when the instance index
	// stopped following the event store, so that nothing would end the
	// wait; the error it wraps says why.
	ErrIndexStopped = errors.New("durable: the instance index stopped")
	// ErrUnknownEntity is returned for an entity whose kind is not
	// registered.
	ErrUnknownEntity = errors.New("durable: unknown entity kind")
	// ErrDeadLetterNotFound is returned for a dead-letter ID that is not
	// (or no longer) among the dead letters.
	ErrDeadLetterNotFound = errors.New("durable: no such dead letter")
)

// InvalidInstanceIDError reports an instance ID durable does not accept.
type InvalidInstanceIDError struct {
	ID     string
	Reason string
}

func (e *InvalidInstanceIDError) Error() string {
	return fmt.Sprintf("durable: invalid instance ID %q: %s", e.ID, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidInstanceID) true.
func (e *InvalidInstanceIDError) Is(target error) bool { return target == ErrInvalidInstanceID }

// PayloadTooLargeError reports an input or event payload over the limit.
type PayloadTooLargeError struct {
	What  string
	Size  int
	Limit int
}

func (e *PayloadTooLargeError) Error() string {
	return fmt.Sprintf("durable: %s is %d bytes, over the limit of %d", e.What, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrPayloadTooLarge) true.
func (e *PayloadTooLargeError) Is(target error) bool { return target == ErrPayloadTooLarge }
