package eventstore

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

var (
	// ErrWrongExpectedRevision is matched by every *WrongExpectedRevisionError.
	ErrWrongExpectedRevision = errors.New("eventstore: wrong expected revision")
	// ErrStreamNotFound is returned when reading a stream that does not exist
	// or was soft-deleted.
	ErrStreamNotFound = errors.New("eventstore: stream not found")
	// ErrStreamTombstoned is returned by every operation on a tombstoned
	// (permanently deleted) stream.
	ErrStreamTombstoned = errors.New("eventstore: stream is tombstoned")
	// ErrInvalidStreamName is matched by every *InvalidStreamNameError.
	ErrInvalidStreamName = errors.New("eventstore: invalid stream name")
	// ErrInvalidEvent is matched by every *InvalidEventError.
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrEventTooLarge is matched by every *EventTooLargeError.
	ErrEventTooLarge = errors.New("eventstore: event too large")
	// ErrAppendTooLarge is matched by every *AppendTooLargeError.
	ErrAppendTooLarge = errors.New("eventstore: append too large")
	// ErrNoEvents is returned by an Append without events.
	ErrNoEvents = errors.New("eventstore: append has no events")
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("eventstore: store closed")
)

// WrongExpectedRevisionError reports an append or delete whose expected
// revision did not match the stream.
type WrongExpectedRevisionError struct {
	Stream   string
	Expected ExpectedRevision
	// Actual is the stream's last revision, or NoRevision when the stream
	// does not exist.
	Actual int64
}

func (e *WrongExpectedRevisionError) Error() string {
	actual := "no stream"
	if e.Actual != NoRevision {
		actual = fmt.Sprint(e.Actual)
	}
	return fmt.Sprintf("eventstore: wrong expected revision on stream %q: expected %s, actual %s", e.Stream, e.Expected, actual)
}

// Is makes errors.Is(err, ErrWrongExpectedRevision) true.
func (e *WrongExpectedRevisionError) Is(target error) bool { return target == ErrWrongExpectedRevision }

// InvalidStreamNameError reports a stream name the store does not accept.
type InvalidStreamNameError struct {
	Stream string
	Reason string
}

func (e *InvalidStreamNameError) Error() string {
	return fmt.Sprintf("eventstore: invalid stream name %q: %s", e.Stream, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidStreamName) true.
func (e *InvalidStreamNameError) Is(target error) bool { return target == ErrInvalidStreamName }

// InvalidEventError reports an event that cannot be stored as given.
type InvalidEventError struct {
	Stream string
	// Index is the event's index in the append.
	Index  int
	Reason string
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("eventstore: invalid event %d for stream %q: %s", e.Index, e.Stream, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

// EventTooLargeError reports an event whose data and metadata together
// exceed the store's MaxEventSize.
type EventTooLargeError struct {
	Stream  string
	EventID uuid.UUID
	Size    int
	Limit   int
}

func (e *EventTooLargeError) Error() string {
	return fmt.Sprintf("eventstore: event %s for stream %q is %d bytes, over the limit of %d", e.EventID, e.Stream, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrEventTooLarge) true.
func (e *EventTooLargeError) Is(target error) bool { return target == ErrEventTooLarge }

// AppendTooLargeError reports an append whose events together exceed the
// store's MaxAppendSize.
type AppendTooLargeError struct {
	Stream string
	Size   int
	Limit  int
}

func (e *AppendTooLargeError) Error() string {
	return fmt.Sprintf("eventstore: append to stream %q is %d bytes, over the limit of %d", e.Stream, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrAppendTooLarge) true.
func (e *AppendTooLargeError) Is(target error) bool { return target == ErrAppendTooLarge }

// TombstonedError reports an operation on a tombstoned stream.
type TombstonedError struct {
	Stream string
}

func (e *TombstonedError) Error() string {
	return fmt.Sprintf("eventstore: stream %q is tombstoned and cannot be read, written or recreated", e.Stream)
}

// Is makes errors.Is(err, ErrStreamTombstoned) true.
func (e *TombstonedError) Is(target error) bool { return target == ErrStreamTombstoned }

// NotFoundError reports a read of a stream that does not exist.
type NotFoundError struct {
	Stream string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("eventstore: stream %q not found", e.Stream)
}

// Is makes errors.Is(err, ErrStreamNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrStreamNotFound }
