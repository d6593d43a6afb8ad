// Command eventlog shows the embedded event store at work: it appends to a
// few streams with optimistic concurrency, is refused a stale write, reads
// a stream back, closes the store, reopens it and replays the global log
// from disk, then subscribes from a checkpoint: the subscription catches up
// on the events stored after it and then receives a new append live.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "durable-eventlog-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := write(ctx, dir); err != nil {
		return err
	}
	// Everything survives a restart: reopen the store.
	return replayAndFollow(ctx, dir)
}

func event(typ, data string) eventstore.EventData {
	return eventstore.EventData{Type: typ, ContentType: eventstore.ContentTypeJSON, Data: []byte(data)}
}

// write opens a store in dir, appends to it, reads a stream back and closes
// the store.
func write(ctx context.Context, dir string) (err error) {
	store, err := pebble.Open(pebble.Config{Dir: dir})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()

	res, err := store.Append(ctx, "order-1", eventstore.NoStream,
		event("OrderPlaced", `{"item":"book"}`), event("OrderPaid", `{"amount":12}`))
	if err != nil {
		return err
	}
	fmt.Printf("appended 2 events to order-1: last revision %d, position %d\n", res.Revision, res.Position)

	if _, err := store.Append(ctx, "order-2", eventstore.NoStream, event("OrderPlaced", `{"item":"lamp"}`)); err != nil {
		return err
	}
	fmt.Println("appended 1 event to order-2")

	// A writer that still thinks order-1 is at revision 0 is refused.
	_, err = store.Append(ctx, "order-1", eventstore.Exact(0), event("OrderCancelled", `{}`))
	var wrong *eventstore.WrongExpectedRevisionError
	if !errors.As(err, &wrong) {
		return fmt.Errorf("a stale append was not refused: %v", err)
	}
	fmt.Printf("stale append refused: expected %s, actual %d\n", wrong.Expected, wrong.Actual)

	if _, err := store.Append(ctx, "order-1", eventstore.Exact(1), event("OrderShipped", `{"carrier":"post"}`)); err != nil {
		return err
	}
	fmt.Println("order-1, read back:")
	for ev, err := range store.ReadStream(ctx, "order-1", eventstore.ReadStreamOptions{}) {
		if err != nil {
			return err
		}
		fmt.Printf("  %d %s %s\n", ev.Revision, ev.Type, ev.Data)
	}
	return nil
}

// replayAndFollow reopens the store in dir, replays the global log, and
// follows it from a checkpoint while a new event is appended.
func replayAndFollow(ctx context.Context, dir string) (err error) {
	store, err := pebble.Open(pebble.Config{Dir: dir})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()

	fmt.Println("reopened; the global log in commit order:")
	var positions []uint64
	for ev, err := range store.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			return err
		}
		fmt.Printf("  position %d: %s@%d %s\n", ev.Position, ev.Stream, ev.Revision, ev.Type)
		positions = append(positions, ev.Position)
	}
	if len(positions) < 2 {
		return fmt.Errorf("the global log holds %d events, want at least 2", len(positions))
	}

	// A subscriber that had processed the first two events resumes from
	// that checkpoint: it catches up on the events stored after it, then
	// waits for new ones.
	checkpoint, last := positions[1], positions[len(positions)-1]
	fmt.Printf("subscribing after position %d:\n", checkpoint)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Runs first: stop the subscription, then wait for it, before the
	// store closes.
	defer wg.Wait()
	defer cancel()
	caughtUp := make(chan struct{})
	received := make(chan error, 1)
	wg.Go(func() {
		for ev, err := range store.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{From: eventstore.FromPosition(checkpoint)}) {
			if err != nil {
				received <- err
				return
			}
			if ev.Position <= last {
				fmt.Printf("  caught up: position %d: %s@%d %s\n", ev.Position, ev.Stream, ev.Revision, ev.Type)
				if ev.Position == last {
					close(caughtUp)
				}
				continue
			}
			fmt.Printf("  live:      position %d: %s@%d %s\n", ev.Position, ev.Stream, ev.Revision, ev.Type)
			received <- nil
			return
		}
		received <- errors.New("the subscription ended")
	})

	// Append only once the subscriber has caught up, so that it receives
	// this event as it happens.
	select {
	case <-caughtUp:
	case err := <-received:
		return err
	}
	fmt.Println("  (appending an event to order-2)")
	if _, err := store.Append(ctx, "order-2", eventstore.StreamExists, event("OrderPaid", `{"amount":30}`)); err != nil {
		return err
	}
	return <-received
}
