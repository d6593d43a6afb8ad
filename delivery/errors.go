package delivery

import "errors"

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

	// ErrSchedulesUnsupported is returned by Open when the NATS server does
	// not support message schedules (ADR-51, nats-server 2.12 and later), and
	// by Schedule and Unschedule on a bus opened WithoutTimers.
	ErrSchedulesUnsupported = errors.New("delivery: NATS server does not support message schedules (ADR-51, nats-server >= 2.12)")
)
