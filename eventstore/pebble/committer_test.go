package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
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

// TestRemovalsJoinTheGroupCommit checks that deletions and truncations
// commit with the appends queued around them, in one fsync, unless the batch
// already writes the stream they remove from: its events must then be
// committed first, since a removal reads them from Pebble.
func TestRemovalsJoinTheGroupCommit(t *testing.T) {
	var syncs atomic.Int64
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if strings.HasSuffix(op.Path, ".log") {
				syncs.Add(1)
			}
		}
		return nil
	}))
	g := newGate()
	s, err := Open(Config{Dir: t.TempDir(), Clock: g.clock, fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	three := func() []eventstore.EventData {
		return []eventstore.EventData{{ID: uuid.New(), Type: "x"}, {ID: uuid.New(), Type: "x"}, {ID: uuid.New(), Type: "x"}}
	}
	for _, name := range []string{"truncated", "deleted", "written"} {
		if _, err := s.Append(ctx, name, eventstore.NoStream, three()...); err != nil {
			t.Fatal(err)
		}
	}

	held := g.hold(t, ctx, s, "first", eventstore.EventData{Type: "x"})
	// Queued in this order while the committer is held, so that they form
	// the next batch.
	ops := []func() error{
		func() error {
			_, err := s.Append(ctx, "a", eventstore.NoStream, eventstore.EventData{Type: "x"})
			return err
		},
		func() error { return s.TruncateBefore(ctx, "truncated", 2) },
		func() error {
			_, err := s.Append(ctx, "b", eventstore.NoStream, eventstore.EventData{Type: "x"})
			return err
		},
		func() error { return s.DeleteStream(ctx, "deleted", eventstore.Exact(2)) },
		func() error {
			_, err := s.Append(ctx, "written", eventstore.Exact(2), eventstore.EventData{Type: "x"})
			return err
		},
		// The batch writes this stream: it commits first.
		func() error { return s.TruncateBefore(ctx, "written", 4) },
		func() error {
			_, err := s.Append(ctx, "c", eventstore.NoStream, eventstore.EventData{Type: "x"})
			return err
		},
	}
	errs := make(chan error, len(ops))
	for i, op := range ops {
		go func() { errs <- op() }()
		queued(t, s, i+1)
	}
	before := syncs.Load()
	close(g.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for range ops {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One commit for the held append, one for the queued requests up to
	// the truncation of the stream they write, one for the rest.
	if n := syncs.Load() - before; n != 3 {
		t.Errorf("the requests took %d fsyncs of the log, want 3", n)
	}

	readable := map[uuid.UUID]bool{}
	revisions := func(stream string) []uint64 {
		var revs []uint64
		for ev, err := range s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
			if err != nil {
				t.Fatalf("%s: %v", stream, err)
			}
			revs = append(revs, ev.Revision)
			readable[ev.ID] = true
		}
		return revs
	}
	for stream, want := range map[string][]uint64{"truncated": {2}, "written": {}, "a": {0}, "b": {0}, "c": {0}, "first": {0}} {
		if got := revisions(stream); !slices.Equal(got, want) {
			t.Errorf("%s holds revisions %v, want %v", stream, got, want)
		}
	}
	for _, err := range s.ReadStream(ctx, "deleted", eventstore.ReadStreamOptions{}) {
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("reading the deleted stream gave %v", err)
		}
	}
	n := 0
	for ev, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if !readable[ev.ID] {
			t.Errorf("the global log holds %s@%d, which was removed", ev.Stream, ev.Revision)
		}
		n++
	}
	if n != len(readable) {
		t.Errorf("the global log holds %d events, the streams %d", n, len(readable))
	}
}

// TestConcurrentAppendsAndRemovals races appends with truncations of the
// same streams and with deletions and recreations of others, so that
// removals share batches with appends to other streams and follow appends to
// their own, and then checks every stream and the global log, also after a
// reopen.
func TestConcurrentAppendsAndRemovals(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ctx := context.Background()
	const (
		appended   = 8 // streams appended to while others truncate them
		recreated  = 3 // streams deleted and recreated by their writer
		truncaters = 4
	)
	rounds := 150
	if testing.Short() {
		rounds = 40
	}
	type stream struct {
		name string
		ids  map[uint64]uuid.UUID // revision -> ID of every event written
		last atomic.Int64         // last acknowledged revision
		// floor is the highest acknowledged truncation (appended streams)
		// or the first revision after the last deletion (recreated ones).
		floor   atomic.Uint64
		deleted bool
	}
	var streams []*stream
	for i := range appended + recreated {
		st := &stream{name: fmt.Sprint("s-", i), ids: map[uint64]uuid.UUID{}}
		st.last.Store(eventstore.NoRevision)
		streams = append(streams, st)
	}
	write := func(st *stream, expected eventstore.ExpectedRevision, n int) error {
		evs := make([]eventstore.EventData, n)
		for i := range evs {
			evs[i] = eventstore.EventData{ID: uuid.New(), Type: "x"}
		}
		res, err := s.Append(ctx, st.name, expected, evs...)
		if err != nil {
			return fmt.Errorf("append to %s: %w", st.name, err)
		}
		for i, ev := range evs {
			st.ids[res.Revision-uint64(n-1-i)] = ev.ID
		}
		st.last.Store(int64(res.Revision))
		return nil
	}

	var wg sync.WaitGroup
	errs := make(chan error, appended+recreated+truncaters)
	var writing atomic.Int32
	for i, st := range streams {
		writing.Add(1)
		wg.Go(func() {
			defer writing.Add(-1)
			for r := range rounds {
				var err error
				switch {
				case i < appended:
					err = write(st, eventstore.Any, 1+r%3)
				case r%4 == 3:
					if err = s.DeleteStream(ctx, st.name, eventstore.Exact(uint64(st.last.Load()))); err == nil {
						st.floor.Store(uint64(st.last.Load() + 1))
						st.deleted = true
					}
				case st.deleted || st.last.Load() == eventstore.NoRevision:
					err = write(st, eventstore.NoStream, 1+r%3)
					st.deleted = false
				default:
					err = write(st, eventstore.Exact(uint64(st.last.Load())), 1+r%3)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for w := range truncaters {
		wg.Go(func() {
			for r := 0; writing.Load() > 0; r++ {
				st := streams[(w+r)%appended]
				last := st.last.Load()
				if last == eventstore.NoRevision {
					continue
				}
				// Mostly at most one past the last acknowledged revision,
				// which the stream has reached; now and then past its end,
				// which truncates whatever it holds by then, also events
				// the batch is still writing.
				before := uint64(r*7) % uint64(last+2)
				if r%5 == 0 {
					before = uint64(last) + 100
				}
				if err := s.TruncateBefore(ctx, st.name, before); err != nil {
					errs <- fmt.Errorf("truncate %s before %d: %w", st.name, before, err)
					return
				}
				// The truncation reached this far at least.
				reached := min(before, uint64(last+1))
				for {
					f := st.floor.Load()
					if reached <= f || st.floor.CompareAndSwap(f, reached) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	check := func() {
		t.Helper()
		// Each stream holds the events written to it from some revision
		// on, no lower than every acknowledged removal reached, to its end.
		want := map[uuid.UUID]string{}
		for _, st := range streams {
			var got, wantIDs []uuid.UUID
			for ev, err := range s.ReadStream(ctx, st.name, eventstore.ReadStreamOptions{}) {
				if errors.Is(err, eventstore.ErrStreamNotFound) && st.deleted {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				got = append(got, ev.ID)
				want[ev.ID] = st.name
			}
			from := uint64(st.last.Load() + 1 - int64(len(got)))
			for rev := from; int64(rev) <= st.last.Load(); rev++ {
				wantIDs = append(wantIDs, st.ids[rev])
			}
			if from < st.floor.Load() || !slices.Equal(got, wantIDs) {
				t.Fatalf("%s holds %d events, not those written to revisions %d to %d with %d or more removed", st.name, len(got), from, st.last.Load(), st.floor.Load())
			}
		}
		// The global log holds exactly the events the streams hold.
		var prev uint64
		n := 0
		for ev, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			if want[ev.ID] != ev.Stream || ev.Position <= prev {
				t.Fatalf("the global log holds %s of %q at position %d after %d, which it should not", ev.ID, ev.Stream, ev.Position, prev)
			}
			prev = ev.Position
			n++
		}
		if n != len(want) {
			t.Fatalf("the global log holds %d events, want %d", n, len(want))
		}
	}
	check()
	s = reopen(t, s).(*Store)
	check()
}
