package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
)

// An orchestration's history is one stream: the first append expects no
// stream, the next ones the revision the writer last saw, so a second writer
// is refused instead of forking the history.
func Example() {
	ctx := context.Background()
	store := memory.New(memory.Config{})
	defer store.Close()

	const stream = "orchestration-order-42"
	res, err := store.Append(ctx, stream, eventstore.NoStream,
		eventstore.EventData{Type: "ExecutionStarted", ContentType: eventstore.ContentTypeJSON, Data: []byte(`{"input":42}`)},
		eventstore.EventData{Type: "TaskScheduled", ContentType: eventstore.ContentTypeJSON, Data: []byte(`{"name":"charge"}`)},
	)
	if err != nil {
		panic(err)
	}
	fmt.Println("appended up to revision", res.Revision)

	if _, err := store.Append(ctx, stream, eventstore.Exact(res.Revision),
		eventstore.EventData{Type: "TaskCompleted", ContentType: eventstore.ContentTypeJSON, Data: []byte(`{"ok":true}`)},
	); err != nil {
		panic(err)
	}

	// A writer that still thinks the stream ends at revision 1 is refused.
	_, err = store.Append(ctx, stream, eventstore.Exact(1), eventstore.EventData{Type: "TaskCompleted"})
	var wrong *eventstore.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		fmt.Println("stale writer refused: stream is at revision", wrong.Actual)
	}

	for ev, err := range store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d %s %s\n", ev.Revision, ev.Type, ev.Data)
	}
	// Output:
	// appended up to revision 1
	// stale writer refused: stream is at revision 2
	// 0 ExecutionStarted {"input":42}
	// 1 TaskScheduled {"name":"charge"}
	// 2 TaskCompleted {"ok":true}
}
