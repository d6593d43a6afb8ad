package delivery_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/durableactor/durable/delivery"
)

// A bus on an embedded NATS server: publish an external event, schedule a
// durable timer, and handle both.
func Example() {
	dir, err := os.MkdirTemp("", "delivery-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	bus, err := delivery.Open(ctx, delivery.Config{
		Dir:    dir,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer bus.Close()

	err = bus.Publish(ctx, delivery.Events, delivery.Message{
		ID: "evt-1", Kind: "orchestration", Identity: "order-42",
		Type: "EventRaised", Payload: []byte(`{"approved":true}`),
	})
	if err != nil {
		panic(err)
	}
	err = bus.Schedule(ctx, time.Now().Add(300*time.Millisecond), delivery.Message{
		ID: "order-42/timer-1", Kind: "orchestration", Identity: "order-42", Type: "TimerFired",
	})
	if err != nil {
		panic(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	seen := make(chan struct{}, 2)
	go func() {
		_ = bus.Run(runCtx, func(ctx context.Context, topic delivery.Topic, m delivery.Message) error {
			fmt.Printf("%s: %s %s for %s/%s\n", topic, m.Type, m.ID, m.Kind, m.Identity)
			seen <- struct{}{}
			return nil // acknowledge
		})
	}()
	<-seen
	<-seen
	stop()

	// Output:
	// events: EventRaised evt-1 for orchestration/order-42
	// timers: TimerFired order-42/timer-1 for orchestration/order-42
}
