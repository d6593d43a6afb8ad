package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
)

// Run consumes Events and Timers and calls h for each message, until ctx ends
// or the Bus is closed; then it stops gracefully and returns nil. It returns
// an error if it cannot start, or if consumption stops on its own.
//
// h returning nil acknowledges the message. An error (or a panic) nacks it:
// JetStream delivers it again after Config.RetryBackoff, doubling per failure
// up to Config.RetryBackoffMax, for as long as it takes. An error marked
// Permanent, a message that cannot be decoded, and a handler that panics on
// Config.MaxDeliveries deliveries move the message to the poison topic, with
// the error's text, and acknowledge it; Poisoned lists it, Redrive and
// Discard take it off.
//
// Delivery is at least once: a message may come again after a crash, after
// an ack that did not reach the server, or when a handler runs longer than
// Config.AckWait. Order is not guaranteed, not even per grain: up to
// Config.Concurrency messages per topic are handled at once, and a message
// that failed comes back after the ones behind it. Receivers drop duplicates
// by Message.ID and must not depend on arrival order.
//
// Several Runs, on this Bus or on other processes' Buses with the same
// Prefix, share the work: each message goes to one of them at a time.
//
// Stopping: Run first stops taking new messages, then lets the ones already
// handed to it be handled and acknowledged (up to Config.ShutdownTimeout),
// and only then closes the router and cancels the handlers' ctx. So an
// acknowledged handler call is never redone because of a clean stop.
func (b *Bus) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("delivery: Run needs a handler")
	}
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()

	// A connection of its own: stopping drains it (see below), and the
	// watermill-nats subscriber drains whatever connection it is given when
	// it closes, which must not be the one Publish and Schedule use.
	closed := make(chan struct{})
	nc, err := b.connect("durable-delivery-run", closed)
	if err != nil {
		return err
	}
	router, err := b.newRouter(nc, h)
	if err != nil {
		nc.Close()
		<-closed
		return err
	}

	// The router gets a context that the caller's cancellation does not end,
	// so that handlers in flight keep a live ctx while we drain; values pass.
	rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer rcancel()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(rctx) }()

	var runErr error
	select {
	case <-router.Running():
	case err := <-routerDone:
		// Run returns before Running only if it could not subscribe. Closing
		// the router below then waits ShutdownTimeout for the handlers it
		// never started: Watermill counts them from AddHandler on.
		routerDone <- err
		runErr = fmt.Errorf("delivery: start router: %w", err)
	}
	if runErr == nil {
		b.log.Debug("run started", "prefix", b.cfg.Prefix)
		select {
		case <-ctx.Done():
		case <-b.closing:
		case <-closed:
			runErr = errors.New("delivery: NATS connection closed")
		case err := <-routerDone:
			routerDone <- err
			if err == nil {
				err = errors.New("all subscriptions ended")
			}
			runErr = fmt.Errorf("delivery: router stopped: %w", err)
		}
	}

	// Drain: the server stops pushing to our subscriptions, the messages
	// already pushed are handled to the end, their acks and nacks are sent
	// and confirmed (watermill-nats acks synchronously), then the connection
	// closes. Only after that is the router closed: watermill-nats drops the
	// ack of a message whose handler finishes while the subscriber closes.
	start := time.Now()
	if err := nc.Drain(); err != nil && !shutdownNoise(err) {
		b.log.Warn("drain", "error", err)
	}
	// The connection's DrainTimeout is ShutdownTimeout: past it the client
	// closes the connection itself and reports ErrDrainTimeout; the messages
	// still in flight are then redelivered after AckWait.
	<-closed
	if err := router.Close(); err != nil {
		b.log.Warn("close router", "error", err)
	}
	rcancel()
	if err := <-routerDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("delivery: router: %w", err)
	}
	b.log.Debug("run stopped", "took", time.Since(start).Round(time.Millisecond))
	return runErr
}

// newRouter builds the Watermill router: one handler per topic on a
// watermill-nats subscriber in JetStream mode bound to the consumers that
// Open created, and this middleware chain, outermost first:
//
//	PoisonQueue   (Watermill's) publishes a message whose failure is final
//	              to the poison topic and turns the failure into success (ack)
//	finalAttempt  decides when a failure is final: a Permanent error, a
//	              message we cannot decode, or a handler that panicked
//	              MaxDeliveries times
//	Recoverer     (Watermill's) turns a handler panic into an error
//
// Watermill's Retry middleware is not used: it retries inside one delivery,
// holding the message (and its AckWait) for as long as the retries last,
// whereas a failure here may last as long as a store outage. A nack with a
// growing delay (NakDelay, see backoff) lets JetStream keep the message and
// deliver it again, for as long as it takes.
func (b *Bus) newRouter(nc *nats.Conn, h Handler) (*message.Router, error) {
	n := b.names
	sub, err := wmnats.NewSubscriberWithNatsConn(nc, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler:      codec{},
		SubscribersCount: b.cfg.Concurrency,
		// watermill-nats' own wait for the handler; past it the message is
		// left for JetStream to redeliver after the consumer's AckWait.
		AckWaitTimeout: b.cfg.AckWait,
		CloseTimeout:   b.cfg.ShutdownTimeout,
		// The Watermill topic is the NATS subject; the queue group is the
		// consumer's deliver group, so every Run joins the same group.
		SubjectCalculator: func(_, subject string) *wmnats.SubjectDetail {
			return &wmnats.SubjectDetail{Primary: subject, QueueGroup: n.consumer(n.topicOf(subject))}
		},
		NakDelay: backoff{min: b.cfg.RetryBackoff, max: b.cfg.RetryBackoffMax},
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false,
			// Bind by durable name to the consumer Open created.
			DurableCalculator: func(_, subject string) string { return n.consumer(n.topicOf(subject)) },
			SubscribeOptions:  []nats.SubOpt{nats.ManualAck()},
			// Ack synchronously: Run's drain relies on an ack being confirmed
			// by the server before the subscription callback returns.
			AckAsync: false,
		},
	}, b.wmLog)
	if err != nil {
		return nil, fmt.Errorf("delivery: watermill subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: b.cfg.ShutdownTimeout}, b.wmLog)
	if err != nil {
		return nil, fmt.Errorf("delivery: watermill router: %w", err)
	}
	poison, err := middleware.PoisonQueueWithFilter(poisonPublisher{b}, n.poisonSubject(), func(err error) bool {
		var final *finalError
		return errors.As(err, &final)
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: poison queue: %w", err)
	}
	router.AddMiddleware(poison, b.finalAttempt, middleware.Recoverer)

	for _, t := range []Topic{Events, Timers} {
		router.AddConsumerHandler("durable-"+string(t), n.subject(t), sub, handlerFunc(t, h))
	}
	return router, nil
}

// handlerFunc adapts h to Watermill.
func handlerFunc(t Topic, h Handler) message.NoPublishHandlerFunc {
	return func(wm *message.Message) error {
		m, err := fromWatermill(wm)
		if err != nil {
			return err
		}
		return h(wm.Context(), t, m)
	}
}

// finalError marks the error of a message's last delivery. Its text is the
// handler's, which is what the poison queue records.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }
func (e *finalError) Unwrap() error { return e.err }

// finalAttempt is the middleware that decides when a failure is final. A
// message is given up only when no delivery can ever succeed: the handler
// said so (Permanent), the message cannot be decoded, or the handler
// panicked on MaxDeliveries deliveries (JetStream counts them, recorded by
// codec.Unmarshal). Every other failure is delivered again, however many
// times it takes, so an outage of the handler's dependencies delays a
// message but never moves it aside.
func (b *Bus) finalAttempt(next message.HandlerFunc) message.HandlerFunc {
	return func(wm *message.Message) ([]*message.Message, error) {
		out, err := next(wm)
		if err == nil {
			return out, nil
		}
		if wm.Context().Err() != nil {
			// The handler's ctx was cancelled: Run stopped past its
			// ShutdownTimeout, or watermill-nats stopped waiting after
			// AckWait. Not the message's fault.
			return nil, err
		}
		attempt := attemptOf(wm)
		topic := message.SubscribeTopicFromCtx(wm.Context())
		var panicked middleware.RecoveredPanicError
		if errors.Is(err, ErrInvalidMessage) || IsPermanent(err) || errors.As(err, &panicked) && attempt >= b.cfg.MaxDeliveries {
			b.log.Error("a message cannot be handled; moving it to the poison topic",
				"subject", topic, "id", wm.UUID, "attempt", attempt, "error", err)
			return nil, &finalError{err: err}
		}
		b.log.Warn("delivery failed; will retry",
			"subject", topic, "id", wm.UUID, "attempt", attempt,
			"retry_in", backoff{b.cfg.RetryBackoff, b.cfg.RetryBackoffMax}.WaitTime(uint64(attempt)), "error", err)
		return nil, err
	}
}

// backoff is the nack delay: min after the first failed delivery, doubling
// with each further one, at most max. It never asks watermill-nats to
// terminate a message (TermSignal): the poison queue handles the last one.
type backoff struct{ min, max time.Duration }

var _ wmnats.Delay = backoff{}

func (d backoff) WaitTime(delivered uint64) time.Duration {
	w := d.min
	for i := uint64(1); i < delivered && w < d.max; i++ {
		w *= 2
	}
	return min(w, d.max)
}

// Metadata keys of a poisoned message, as Watermill's PoisonQueue middleware
// names them.
const (
	reasonPoisonedKey = middleware.ReasonForPoisonedKey
	topicPoisonedKey  = middleware.PoisonedTopicKey
)

// poisonPublisher is the message.Publisher the PoisonQueue middleware
// publishes to: the poison stream, with our codec and message IDs.
type poisonPublisher struct{ b *Bus }

func (p poisonPublisher) Publish(_ string, msgs ...*message.Message) error {
	for _, wm := range msgs {
		if err := p.b.publishPoison(wm); err != nil {
			return err
		}
	}
	return nil
}

func (poisonPublisher) Close() error { return nil }
