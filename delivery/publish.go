package delivery

import (
	"context"
	"fmt"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
)

// Publish stores msgs on topic and returns once JetStream has acknowledged
// every one of them, so they survive a crash from then on. Messages are
// stored in order; on an error the ones before it are stored and the rest are
// not. A message whose ID was published within Config.DuplicateWindow is
// acknowledged by JetStream but stored only once.
func (b *Bus) Publish(ctx context.Context, topic Topic, msgs ...Message) error {
	if topic != Events && topic != Timers {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	wms := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return err
		}
		wms[i] = m.toWatermill()
	}
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()

	pub, err := b.publisher(nats.Context(ctx))
	if err != nil {
		return err
	}
	if err := pub.Publish(b.names.subject(topic), wms...); err != nil {
		return fmt.Errorf("delivery: publish to %s: %w", topic, err)
	}
	return nil
}

// publisher returns a watermill-nats publisher in JetStream mode on the
// shared connection. TrackMsgId makes it send the Watermill UUID (our
// Message.ID) as Nats-Msg-Id, which is what lets JetStream drop duplicates.
//
// It is cheap (no I/O), so Publish makes one per call: that is the only way
// to give watermill-nats the caller's context, as a publish option, since
// message.Publisher.Publish takes none. We never Close these publishers:
// Close would close the shared connection, which the Bus owns.
func (b *Bus) publisher(opts ...nats.PubOpt) (*wmnats.Publisher, error) {
	pub, err := wmnats.NewPublisherWithNatsConn(b.nc, wmnats.PublisherPublishConfig{
		Marshaler:         codec{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			// Streams are created by Open, not on publish.
			AutoProvision: false,
			TrackMsgId:    true,
			ConnectOptions: []nats.JSOpt{
				nats.MaxWait(b.cfg.RequestTimeout),
			},
			PublishOptions: opts,
		},
	}, b.wmLog)
	if err != nil {
		return nil, fmt.Errorf("delivery: watermill publisher: %w", err)
	}
	return pub, nil
}
