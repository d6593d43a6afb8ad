package delivery

import "errors"

// Permanent marks a handler's error as final: the message can never be
// handled (it is malformed, or its receiver refuses it for good), so it
// moves to the poison topic at once instead of being delivered again. Any
// other error is taken as passing and the message is delivered again,
// with backoff, for as long as it takes: a store outage of an hour must not
// lose a timer.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("delivery: bus closed")

	// ErrInvalidConfig wraps what is wrong with a Config given to Open.
	ErrInvalidConfig = errors.New("delivery: invalid config")

	// ErrInvalidMessage wraps what is wrong with a Message: an empty ID,
	// Kind, Identity or Type. A delivered message that cannot be decoded is
	// moved to the poison topic at once with this error.
	ErrInvalidMessage = errors.New("delivery: invalid message")

	// ErrUnknownTopic is returned for a Topic other than Events and Timers.
	ErrUnknownTopic = errors.New("delivery: unknown topic")

	// ErrNotPoisoned is returned by Redrive and Discard for a sequence
	// number the poison topic does not hold (any more).
	ErrNotPoisoned = errors.New("delivery: no such message on the poison topic")

	// ErrSchedulesUnsupported is returned by Open when the NATS server does
	// not support message schedules (ADR-51, nats-server 2.12 and later), and
	// by Schedule and Unschedule on a bus opened WithoutTimers.
	ErrSchedulesUnsupported = errors.New("delivery: NATS server does not support message schedules (ADR-51, nats-server >= 2.12)")
)
