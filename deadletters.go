package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durableactor/durable/delivery"
)

// DeadLetter is a message the engine could not deliver and will not retry
// by itself: an event an orchestration sent to an instance that does not
// exist or has ended, or a message that cannot be decoded. Nothing is
// dropped silently; an operator lists dead letters, and redrives or
// discards them. (A message that only could not be delivered yet, because
// the store was down say, is never a dead letter: it is retried until it is
// delivered.)
type DeadLetter struct {
	// ID numbers the dead letter; RedriveDeadLetter and DiscardDeadLetter
	// take it.
	ID uint64
	// InstanceID is the instance the message was for, and Type what it is
	// ("EventRaised", "TimerFired", ...). MessageID identifies the message.
	InstanceID string
	Type       string
	MessageID  string
	// Reason is why it could not be delivered.
	Reason string
	// Attempts is how many deliveries were tried (0 for a message its
	// sender found refused).
	Attempts int
	// At is when it became a dead letter.
	At time.Time
}

// DeadLetters returns up to limit dead letters, oldest first (limit <= 0:
// all of them).
func (c *Client) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	if c.e.isStopped() {
		return nil, ErrStopped
	}
	poisoned, err := c.e.bus.Poisoned(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(poisoned))
	for i, p := range poisoned {
		out[i] = DeadLetter{
			ID: p.Seq, InstanceID: p.Message.Identity, Type: p.Message.Type, MessageID: p.Message.ID,
			Reason: p.Error, Attempts: p.Attempts, At: p.At,
		}
	}
	return out, nil
}

// RedriveDeadLetter delivers a dead letter again, now (its instance drops
// it if it already has it), and removes it from the dead letters. An ID
// that is not a dead letter is ErrDeadLetterNotFound.
func (c *Client) RedriveDeadLetter(ctx context.Context, id uint64) error {
	if c.e.isStopped() {
		return ErrStopped
	}
	return deadLetterError(id, c.e.bus.Redrive(ctx, id))
}

// DiscardDeadLetter removes a dead letter for good. An ID that is not a
// dead letter is ErrDeadLetterNotFound.
func (c *Client) DiscardDeadLetter(ctx context.Context, id uint64) error {
	if c.e.isStopped() {
		return ErrStopped
	}
	return deadLetterError(id, c.e.bus.Discard(ctx, id))
}

func deadLetterError(id uint64, err error) error {
	if errors.Is(err, delivery.ErrNotPoisoned) {
		return fmt.Errorf("%w: %d", ErrDeadLetterNotFound, id)
	}
	return err
}
