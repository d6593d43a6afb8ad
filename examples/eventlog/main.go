// Command eventlog shows the embedded event store at work: it appends to a
// few streams with optimistic concurrency, is refused a stale write, reads
// a stream back, closes the store, reopens it and replays the global log
// from disk, then follows new appends live.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
)

func main() {
	dir, err := os.MkdirTemp("", "durable-eventlog-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), dir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string) error {
	store, err := pebble.Open(pebble.Config{Dir: dir})
	if err != nil {
		return err
	}
	event := func(typ, data string) eventstore.EventData {
		return eventstore.EventData{Type: typ, ContentType: eventstore.ContentTypeJSON, Data: []byte(data)}
	}

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
	if err := store.Close(); err != nil {
		return err
	}

	// Everything survives a restart: reopen and replay the global log.
	store, err = pebble.Open(pebble.Config{Dir: dir})
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Println("reopened; the global log in commit order:")
	var checkpoint uint64
	for ev, err := range store.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			return err
		}
		fmt.Printf("  position %d: %s@%d %s\n", ev.Position, ev.Stream, ev.Revision, ev.Type)
		checkpoint = ev.Position
	}

	// A subscription from that checkpoint receives only what comes next.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := store.Append(ctx, "order-2", eventstore.StreamExists, event("OrderPaid", `{"amount":30}`)); err != nil {
		return err
	}
	for ev, err := range store.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{From: eventstore.FromPosition(checkpoint)}) {
		if err != nil {
			return err
		}
		fmt.Printf("subscription after position %d received: %s@%d %s\n", checkpoint, ev.Stream, ev.Revision, ev.Type)
		break
	}
	return nil
}
