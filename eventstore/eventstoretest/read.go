package eventstoretest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// testReadStream covers directions, starting points and limits of stream
// reads, and the errors a read yields.
func (su *suite) testReadStream(t *testing.T) {
	t.Parallel()
	e := su.env(t)
	s := e.stream("ten")
	appended := newEvents(10, "T")
	e.append(s, eventstore.NoStream, appended[:4]...)
	e.append(s, eventstore.Exact(3), appended[4:]...)

	fwd, bwd := eventstore.Forwards, eventstore.Backwards
	cases := []struct {
		name string
		opts eventstore.ReadStreamOptions
		want []uint64
	}{
		{"ForwardsFromStart", eventstore.ReadStreamOptions{}, span(0, 9)},
		{"ForwardsFromStartLimit3", eventstore.ReadStreamOptions{Limit: 3}, span(0, 2)},
		{"ForwardsFromRevision4", eventstore.ReadStreamOptions{From: eventstore.FromRevision(4)}, span(4, 9)},
		{"ForwardsFromRevision4Limit2", eventstore.ReadStreamOptions{From: eventstore.FromRevision(4), Limit: 2}, span(4, 5)},
		{"ForwardsFromLastRevision", eventstore.ReadStreamOptions{From: eventstore.FromRevision(9)}, span(9, 9)},
		{"ForwardsPastTheEnd", eventstore.ReadStreamOptions{From: eventstore.FromRevision(10)}, nil},
		{"ForwardsFromEnd", eventstore.ReadStreamOptions{Direction: fwd, From: eventstore.StreamEnd}, nil},
		{"ForwardsLimitPastTheEnd", eventstore.ReadStreamOptions{Limit: 100}, span(0, 9)},
		{"BackwardsFromEnd", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.StreamEnd}, span(9, 0)},
		{"BackwardsFromEndLimit3", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.StreamEnd, Limit: 3}, span(9, 7)},
		{"BackwardsFromRevision4", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.FromRevision(4)}, span(4, 0)},
		{"BackwardsFromRevision4Limit2", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.FromRevision(4), Limit: 2}, span(4, 3)},
		{"BackwardsFromPastTheEnd", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.FromRevision(100)}, span(9, 0)},
		{"BackwardsFromStart", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.StreamStart}, span(0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := e.with(t).mustReadStream(s, c.opts)
			if diff := cmp.Diff(c.want, revisions(got), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("revisions (-want +got):\n%s", diff)
			}
			for _, ev := range got {
				if ev.ID != appended[ev.Revision].ID || ev.Stream != s {
					t.Fatalf("event at revision %d is %s/%v, want %s/%v", ev.Revision, ev.Stream, ev.ID, s, appended[ev.Revision].ID)
				}
			}
		})
	}

	t.Run("MissingStream", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		missing := e.stream("missing")
		for _, dir := range []eventstore.Direction{fwd, bwd} {
			evs, err := e.readStream(missing, eventstore.ReadStreamOptions{Direction: dir})
			if len(evs) != 0 {
				t.Fatalf("read %d events of a missing stream", len(evs))
			}
			wantNotFound(t, err, missing)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		evs, err := collect(t, e.store().ReadStream(ctx, s, eventstore.ReadStreamOptions{}))
		if err == nil {
			t.Fatalf("ReadStream with a cancelled context read %d events and no error", len(evs))
		}
	})

	t.Run("BreakEarly", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		n := 0
		for _, err := range e.store().ReadStream(e.ctx(), s, eventstore.ReadStreamOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 2 {
				break
			}
		}
		// The store works on after an abandoned read.
		other := e.stream("after-break")
		e.append(other, eventstore.NoStream, newEvent("T"))
		if got := e.mustReadStream(other, eventstore.ReadStreamOptions{}); len(got) != 1 {
			t.Fatalf("read %d events after an abandoned read, want 1", len(got))
		}
	})
}

// testReadAll covers the global log: commit order, directions, inclusive
// starting positions, limits and filters.
func (su *suite) testReadAll(t *testing.T) {
	t.Parallel()
	e := su.env(t)
	tag := e.tag()
	order1, order2, user1 := e.stream("order-1"), e.stream("order-2"), e.stream("user-1")
	placed, paid, shipped := tag+".Order.Placed", tag+".Order.Paid", tag+".Order.Shipped"
	registered, renamed := tag+".User.Registered", tag+".User.Renamed"
	var commit []eventstore.EventData // every appended event, in commit order
	streamOf := map[uuid.UUID]string{}
	add := func(stream string, types ...string) {
		var evs []eventstore.EventData
		for _, typ := range types {
			ev := newEvent(typ)
			evs = append(evs, ev)
			streamOf[ev.ID] = stream
		}
		e.append(stream, eventstore.Any, evs...)
		commit = append(commit, evs...)
	}
	add(order1, placed, paid)
	add(user1, registered)
	add(order2, placed)
	add(order1, shipped)
	add(user1, renamed)
	add(order2, paid, shipped)
	// commit is now:
	//	0 order-1 Placed    1 order-1 Paid    2 user-1 Registered   3 order-2 Placed
	//	4 order-1 Shipped   5 user-1 Renamed  6 order-2 Paid        7 order-2 Shipped

	all := e.readAll(eventstore.ReadAllOptions{})
	if diff := cmp.Diff(dataIDs(commit), ids(all)); diff != "" {
		t.Fatalf("global log is not in commit order (-want +got):\n%s", diff)
	}
	e.checkPositions(all)
	pos := func(i int) uint64 { return all[i].Position }

	// pick returns the IDs of the events of commit at the given indexes.
	pick := func(idx ...int) []uuid.UUID {
		out := make([]uuid.UUID, len(idx))
		for i, j := range idx {
			out[i] = commit[j].ID
		}
		return out
	}
	matching := func(keep func(i int) bool) []uuid.UUID {
		var out []uuid.UUID
		for i, ev := range commit {
			if keep(i) {
				out = append(out, ev.ID)
			}
		}
		return out
	}
	isType := func(prefix string) func(int) bool {
		return func(i int) bool { return strings.HasPrefix(commit[i].Type, prefix) }
	}
	inStream := func(streams ...string) func(int) bool {
		return func(i int) bool {
			for _, s := range streams {
				if streamOf[commit[i].ID] == s {
					return true
				}
			}
			return false
		}
	}

	ours := e.ours()
	fwd, bwd := eventstore.Forwards, eventstore.Backwards
	cases := []struct {
		name string
		opts eventstore.ReadAllOptions
		want []uuid.UUID
	}{
		{"ForwardsFromStart", eventstore.ReadAllOptions{Filter: ours}, pick(0, 1, 2, 3, 4, 5, 6, 7)},
		{"BackwardsFromEnd", eventstore.ReadAllOptions{Direction: bwd, From: eventstore.AllEnd, Filter: ours}, pick(7, 6, 5, 4, 3, 2, 1, 0)},
		{"ForwardsFromPositionIsInclusive", eventstore.ReadAllOptions{From: eventstore.FromPosition(pos(3)), Filter: ours}, pick(3, 4, 5, 6, 7)},
		{"BackwardsFromPositionIsInclusive", eventstore.ReadAllOptions{Direction: bwd, From: eventstore.FromPosition(pos(3)), Filter: ours}, pick(3, 2, 1, 0)},
		{"ForwardsLimit", eventstore.ReadAllOptions{Limit: 4, Filter: ours}, pick(0, 1, 2, 3)},
		{"BackwardsLimit", eventstore.ReadAllOptions{Direction: bwd, From: eventstore.AllEnd, Limit: 4, Filter: ours}, pick(7, 6, 5, 4)},
		{"ForwardsFromPositionWithLimit", eventstore.ReadAllOptions{From: eventstore.FromPosition(pos(2)), Limit: 3, Filter: ours}, pick(2, 3, 4)},
		{"ForwardsFromEnd", eventstore.ReadAllOptions{Direction: fwd, From: eventstore.AllEnd, Filter: ours}, nil},
		{"StreamPrefix", eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{e.stream("order-")}}},
			matching(inStream(order1, order2))},
		{"StreamPrefixesAreAlternatives", eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{order1, e.stream("user-")}}},
			matching(inStream(order1, user1))},
		{"EventTypePrefixAlone", eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypePrefixes: []string{tag + ".Order.Pa"}}},
			matching(isType(paid))},
		{"EventTypePrefixesAreAlternatives", eventstore.ReadAllOptions{Filter: eventstore.Filter{EventTypePrefixes: []string{placed, renamed}}},
			matching(func(i int) bool { return isType(placed)(i) || isType(renamed)(i) })},
		{"StreamAndTypePrefix", eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{e.prefix}, EventTypePrefixes: []string{tag + ".User."}}},
			matching(inStream(user1))},
		{"StreamAndTypeMustBothMatch", eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{order1}, EventTypePrefixes: []string{tag + ".User."}}},
			nil},
		{"StreamAndTypeWithPaid", eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{order2}, EventTypePrefixes: []string{paid}}},
			matching(func(i int) bool { return inStream(order2)(i) && isType(paid)(i) })},
		{"FilterWithLimitCountsMatches", eventstore.ReadAllOptions{Limit: 2, Filter: eventstore.Filter{StreamPrefixes: []string{e.stream("order-")}}},
			matching(inStream(order1, order2))[:2]},
		{"FilterBackwardsWithLimit", eventstore.ReadAllOptions{Direction: bwd, From: eventstore.AllEnd, Limit: 2, Filter: eventstore.Filter{StreamPrefixes: []string{user1}}},
			pick(5, 2)},
		{"FilterFromANonMatchingPosition", eventstore.ReadAllOptions{From: eventstore.FromPosition(pos(2)), Filter: eventstore.Filter{StreamPrefixes: []string{e.stream("order-")}}},
			pick(3, 4, 6, 7)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			got, err := collect(t, e.store().ReadAll(e.ctx(), c.opts))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			for _, ev := range got {
				if streamOf[ev.ID] != ev.Stream {
					t.Fatalf("event %v read with stream %q, want %q", ev.ID, ev.Stream, streamOf[ev.ID])
				}
			}
		})
	}

	// AllStart is the first event of the global log: a backwards read from
	// it yields that event if it passes the filter, and nothing else. The
	// store may hold other events before the test's, so the first event is
	// learned from a forwards read.
	t.Run("BackwardsFromStart", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		first, err := collect(t, e.store().ReadAll(e.ctx(), eventstore.ReadAllOptions{Limit: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != 1 {
			t.Fatalf("a forwards read of the whole log with limit 1 read %d events", len(first))
		}
		for _, f := range []eventstore.Filter{{}, ours, {StreamPrefixes: []string{user1}}} {
			var want []uuid.UUID
			if f.Match(first[0].Stream, first[0].Type) {
				want = ids(first)
			}
			got, err := collect(t, e.store().ReadAll(e.ctx(), eventstore.ReadAllOptions{Direction: bwd, From: eventstore.AllStart, Filter: f}))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("filter %+v: events (-want +got):\n%s", f, diff)
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		evs, err := collect(t, e.store().ReadAll(ctx, eventstore.ReadAllOptions{Filter: ours}))
		if err == nil {
			t.Fatalf("ReadAll with a cancelled context read %d events and no error", len(evs))
		}
	})

	t.Run("BreakEarly", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		n := 0
		for _, err := range e.store().ReadAll(e.ctx(), eventstore.ReadAllOptions{Filter: ours}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 3 {
				break
			}
		}
		if n != 3 {
			t.Fatalf("read %d events before breaking, want 3", n)
		}
	})

	t.Run("CommitOrderAcrossConcurrentAppends", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		testGlobalOrder(t, e)
	})
}

// testGlobalOrder appends from many goroutines to many streams and checks
// that the global log orders the appends as they committed: an append that
// returned before another began has the lower positions, the log holds each
// event once, and its positions agree with the stream reads and the append
// results.
func testGlobalOrder(t *testing.T, e *env) {
	writers, appends := 8, 40
	if testing.Short() {
		writers, appends = 4, 15
	}
	type done struct {
		stream     string
		events     []eventstore.EventData
		res        eventstore.AppendResult
		start, end int64 // ticks of a shared clock around the append
	}
	var (
		clock atomic.Int64
		mu    sync.Mutex
		log   []done
		wg    sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			s := e.stream(fmt.Sprint("w", w))
			for i := range appends {
				evs := newEvents(1+i%3, "T")
				start := clock.Add(1)
				res, err := e.store().Append(e.ctx(), s, eventstore.Any, evs...)
				end := clock.Add(1)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				log = append(log, done{s, evs, res, start, end})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	all := e.readAll(eventstore.ReadAllOptions{})
	e.checkPositions(all)
	at := map[uuid.UUID]eventstore.RecordedEvent{}
	for _, ev := range all {
		if _, dup := at[ev.ID]; dup {
			t.Fatalf("event %v is in the global log twice", ev.ID)
		}
		at[ev.ID] = ev
	}
	total := 0
	for _, d := range log {
		total += len(d.events)
		batch := make([]eventstore.RecordedEvent, len(d.events))
		for i, ev := range d.events {
			batch[i] = at[ev.ID]
		}
		e.checkBatchPositions(batch)
		last, ok := at[d.events[len(d.events)-1].ID]
		if !ok || last.Position != d.res.Position || last.Revision != d.res.Revision {
			t.Fatalf("append to %s reported %+v; the global log has its last event at position %d revision %d (found %v)",
				d.stream, d.res, last.Position, last.Revision, ok)
		}
	}
	if len(all) != total {
		t.Fatalf("global log holds %d events, %d were appended", len(all), total)
	}
	for _, a := range log {
		for _, b := range log {
			if a.end < b.start && a.res.Position >= at[b.events[0].ID].Position {
				t.Fatalf("append to %s finished before an append to %s began, but its position %d is not below %d",
					a.stream, b.stream, a.res.Position, at[b.events[0].ID].Position)
			}
		}
	}
	for w := range writers {
		s := e.stream(fmt.Sprint("w", w))
		for _, ev := range e.mustReadStream(s, eventstore.ReadStreamOptions{}) {
			if g := at[ev.ID]; g.Position != ev.Position || g.Revision != ev.Revision || g.Stream != s {
				t.Fatalf("%s@%d: ReadStream says position %d, ReadAll says %s@%d position %d", s, ev.Revision, ev.Position, g.Stream, g.Revision, g.Position)
			}
		}
	}
}
