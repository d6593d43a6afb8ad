package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// gate holds the committer inside the next append it writes: the committer
// asks the clock for the events' creation time once it has decided to write
// them. Requests that arrive meanwhile wait in the queue.
type gate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) clock() time.Time {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return time.Now()
}

// hold arms the gate, starts an append to stream and returns once the
// committer is held inside it, with the append's outcome to come on the
// channel.
func (g *gate) hold(t *testing.T, ctx context.Context, s *Store, stream string, ev eventstore.EventData) <-chan error {
	t.Helper()
	g.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, stream, eventstore.Any, ev)
		done <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the committer never reached the held append")
	}
	return done
}

// queued waits until n requests wait in the committer's queue.
func queued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.requests) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(s.requests), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func openGated(t *testing.T) (*Store, *gate) {
	t.Helper()
	g := newGate()
	s, err := Open(Config{Dir: t.TempDir(), Clock: g.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, g
}

func readIDs(t *testing.T, s *Store, stream string) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for ev, err := range s.ReadStream(context.Background(), stream, eventstore.ReadStreamOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestCancelledAppendWhileQueued checks that an append whose context ends
// while it waits in the queue is withdrawn: it returns the context's error,
// writes nothing, and the committer never reads its events, whose buffers
// the caller may reuse at once.
func TestCancelledAppendWhileQueued(t *testing.T) {
	s, g := openGated(t)
	ctx := context.Background()
	first := eventstore.EventData{ID: uuid.New(), Type: "First"}
	held := g.hold(t, ctx, s, "s", first)

	cctx, cancel := context.WithCancel(ctx)
	data := []byte("original")
	cancelled := eventstore.EventData{ID: uuid.New(), Type: "Cancelled", Data: data}
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(cctx, "s", eventstore.Any, cancelled)
		done <- err
	}()
	queued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Append returned %v, want context.Canceled", err)
	}
	// The caller owns its buffer again, while the committer goes on.
	close(g.release)
	copy(data, "reused!!")
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	// A later append goes through the committer after the withdrawn one.
	last := eventstore.EventData{ID: uuid.New(), Type: "Last"}
	if _, err := s.Append(ctx, "s", eventstore.Any, last); err != nil {
		t.Fatal(err)
	}
	if got, want := readIDs(t, s, "s"), []uuid.UUID{first.ID, last.ID}; !slices.Equal(got, want) {
		t.Fatalf("stream holds %v, want %v: a cancelled append that reported its error was written", got, want)
	}
}

// TestCancelledAppendOnceTaken checks that an append whose context ends
// after the committer took it reports what happened to it, rather than an
// error for events that were written.
func TestCancelledAppendOnceTaken(t *testing.T) {
	s, g := openGated(t)
	ctx, cancel := context.WithCancel(context.Background())
	ev := eventstore.EventData{ID: uuid.New(), Type: "Taken"}
	held := g.hold(t, ctx, s, "s", ev)
	cancel()
	time.Sleep(10 * time.Millisecond) // let a wrong Append return early
	close(g.release)
	if err := <-held; err != nil {
		t.Fatalf("Append returned %v for an event it wrote", err)
	}
	if got, want := readIDs(t, s, "s"), []uuid.UUID{ev.ID}; !slices.Equal(got, want) {
		t.Fatalf("stream holds %v, want %v", got, want)
	}
}

// TestStreamFilterRebuildFails checks that a failed rebuild of the stream
// filter, which happens after a commit, neither fails the writes of that
// commit nor the store: the full filter stays in use.
func TestStreamFilterRebuildFails(t *testing.T) {
	var loads atomic.Int32
	loadFilter = func(db *pebble.DB, capacity int) (*streamFilter, error) {
		if loads.Add(1) > 1 {
			return nil, errors.New("injected failure")
		}
		f, err := loadStreamFilter(db, capacity)
		if err == nil {
			f.capacity = 2 // full after the third new stream
		}
		return f, err
	}
	t.Cleanup(func() { loadFilter = loadStreamFilter })
	var logged bytes.Buffer
	s, err := Open(Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 6 {
		if _, err := s.Append(ctx, fmt.Sprint("s-", i), eventstore.NoStream, eventstore.EventData{Type: "x"}); err != nil {
			t.Fatalf("append to new stream %d: %v", i, err)
		}
	}
	for i := range 6 {
		_, err := s.Append(ctx, fmt.Sprint("s-", i), eventstore.NoStream, eventstore.EventData{Type: "x"})
		if !errors.Is(err, eventstore.ErrWrongExpectedRevision) {
			t.Fatalf("stream s-%d: a second NoStream append gave %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if loads.Load() < 2 {
		t.Fatal("the filter was never rebuilt")
	}
	if !strings.Contains(logged.String(), "injected failure") {
		t.Fatalf("the failed rebuild was not logged; the log holds:\n%s", logged.String())
	}
}

// TestFailedRemovalChangesNothing checks that a removal that fails while it
// reads the events to drop (here on a damaged event) leaves the stream as it
// was: no events gone from the stream or the global log, and no change to
// its state.
func TestFailedRemovalChangesNothing(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		remove func(*Store) error
	}{
		{"TruncateBefore", func(s *Store) error { return s.TruncateBefore(ctx, "s", 3) }},
		{"DeleteStream", func(s *Store) error { return s.DeleteStream(ctx, "s", eventstore.Any) }},
		{"TombstoneStream", func(s *Store) error { return s.TombstoneStream(ctx, "s", eventstore.Any) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			evs := []eventstore.EventData{{ID: uuid.New(), Type: "x"}, {ID: uuid.New(), Type: "x"}, {ID: uuid.New(), Type: "x"}}
			if _, err := s.Append(ctx, "s", eventstore.NoStream, evs...); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Set(streamKey("s", 1), []byte("damaged"), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := c.remove(s); err == nil {
				t.Fatal("the removal succeeded over a damaged event")
			}
			// A commit after the failed removal publishes whatever it left.
			if _, err := s.Append(ctx, "other", eventstore.NoStream, eventstore.EventData{Type: "x"}); err != nil {
				t.Fatal(err)
			}
			var first []uuid.UUID
			for ev, err := range s.ReadStream(ctx, "s", eventstore.ReadStreamOptions{Limit: 1}) {
				if err != nil {
					t.Fatalf("reading the stream after the failed removal: %v", err)
				}
				first = append(first, ev.ID)
			}
			if !slices.Equal(first, []uuid.UUID{evs[0].ID}) {
				t.Fatalf("the stream starts with %v after the failed removal, want %v", first, evs[0].ID)
			}
			var logged []uuid.UUID
			for ev, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{Limit: 1}) {
				if err != nil {
					t.Fatal(err)
				}
				logged = append(logged, ev.ID)
			}
			if !slices.Equal(logged, []uuid.UUID{evs[0].ID}) {
				t.Fatalf("the global log starts with %v after the failed removal, want %v", logged, evs[0].ID)
			}
			if _, err := s.Append(ctx, "s", eventstore.Exact(2), eventstore.EventData{Type: "x"}); err != nil {
				t.Fatalf("appending at the stream's last revision after the failed removal: %v", err)
			}
		})
	}
}
