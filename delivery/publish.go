package delivery

import (
	"context"
	"fmt"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publish stores msgs on topic and returns once JetStream has acknowledged
// every one of them, so they survive a crash from then on. Several messages
// are sent without waiting for each other's acknowledgement, so their order
// in the stream is not guaranteed (nor is the order of delivery, see Run).
// On an error some of them may be stored and others not; publishing them
// again is safe, because a message whose ID was published within
// Config.DuplicateWindow is acknowledged by JetStream but stored only once.
func (b *Bus) Publish(ctx context.Context, topic Topic, msgs ...Message) error {
	if topic != Events && topic != Timers {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	subject := b.names.subject(topic)
	nms := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return err
		}
		nms[i] = encode(subject, m.toWatermill())
	}
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()

	if err := b.publish(ctx, b.names.streamOf(topic), nms); err != nil {
		return fmt.Errorf("delivery: publish to %s: %w", topic, err)
	}
	return nil
}

// publishPoison stores wm on the poison topic; the poison-queue middleware
// calls it from Run.
func (b *Bus) publishPoison(wm *message.Message) error {
	ctx, cancel := b.requestContext(context.Background())
	defer cancel()
	return b.publish(ctx, b.names.stream("poison"), []*nats.Msg{encode(b.names.poisonSubject(), wm)})
}

// encode is codec{}.Marshal, which cannot fail.
func encode(subject string, wm *message.Message) *nats.Msg {
	msg, _ := codec{}.Marshal(subject, wm)
	return msg
}

// publish stores msgs, encoded by the codec, in stream and waits until
// JetStream has acknowledged all of them or ctx, which must have a
// deadline, ends.
//
// Each message's ID, as the codec wrote it in the Watermill UUID header, is
// its Nats-Msg-Id: that is what lets JetStream drop a duplicate publish, and
// it is the header watermill-nats' TrackMsgId would send. One message is a
// single request; several are published asynchronously and their
// acknowledgements awaited together, one round trip for the batch instead of
// one per message.
func (b *Bus) publish(ctx context.Context, stream string, msgs []*nats.Msg) error {
	opts := func(m *nats.Msg) []jetstream.PublishOpt {
		opts := []jetstream.PublishOpt{jetstream.WithExpectStream(stream)}
		if id := m.Header.Get(wmnats.WatermillUUIDHdr); id != "" {
			opts = append(opts, jetstream.WithMsgID(id))
		}
		return opts
	}
	if len(msgs) == 1 {
		_, err := b.js.PublishMsg(ctx, msgs[0], opts(msgs[0])...)
		return err
	}

	// Past the client's limit of pending acknowledgements (4000) a send
	// waits for a free slot, at most until the deadline.
	deadline, _ := ctx.Deadline()
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	var first error
	failed := 0
	for i, m := range msgs {
		stall := time.Until(deadline)
		err := ctx.Err()
		if err == nil && stall <= 0 {
			err = context.DeadlineExceeded
		}
		if err == nil {
			var ack jetstream.PubAckFuture
			if ack, err = b.js.PublishMsgAsync(m, append(opts(m), jetstream.WithStallWait(stall))...); err == nil {
				acks = append(acks, ack)
				continue
			}
		}
		first, failed = err, len(msgs)-i
		break
	}
	for i, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			if first == nil {
				first = err
			}
			failed++
		case <-ctx.Done():
			if first == nil {
				first = ctx.Err()
			}
			failed += len(acks) - i
			return fmt.Errorf("%d of %d messages not acknowledged: %w", failed, len(msgs), first)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d messages not acknowledged: %w", failed, len(msgs), first)
	}
	return nil
}
