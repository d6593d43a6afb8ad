package eventstoretest

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// streamState is a state a stream can be in before an operation, with how
// to get it there.
type streamState struct {
	name string
	// setup brings stream into the state.
	setup func(e *env, stream string)
	// actual is the revision a WrongExpectedRevisionError reports.
	actual int64
	// next is the revision the next appended event gets.
	next uint64
	// deleted marks the soft-deleted state, whose last revision (next-1)
	// only Features.DeletedStreamRejectsExact pins down for appends.
	deleted    bool
	tombstoned bool
}

// streamStates are the four states every expected-revision check is tried
// against. The existing, deleted and tombstoned streams had two events
// (revisions 0 and 1).
func streamStates() []streamState {
	twoEvents := func(e *env, s string) { e.append(s, eventstore.NoStream, newEvents(2, "Setup")...) }
	return []streamState{
		{name: "missing", setup: func(*env, string) {}, actual: eventstore.NoRevision, next: 0},
		{name: "existing", setup: twoEvents, actual: 1, next: 2},
		{name: "deleted", setup: func(e *env, s string) {
			twoEvents(e, s)
			if err := e.store().DeleteStream(e.ctx(), s, eventstore.Any); err != nil {
				e.t.Fatalf("DeleteStream: %v", err)
			}
		}, actual: eventstore.NoRevision, next: 2, deleted: true},
		{name: "tombstoned", setup: func(e *env, s string) {
			twoEvents(e, s)
			if err := e.store().TombstoneStream(e.ctx(), s, eventstore.Any); err != nil {
				e.t.Fatalf("TombstoneStream: %v", err)
			}
		}, tombstoned: true},
	}
}

// snapshot is what the suite can see of a stream: its readable events or
// the error reading it gives, and the test's part of the global log.
type snapshot struct {
	ids    []uuid.UUID
	err    string
	global []uuid.UUID
}

func (e *env) snapshot(stream string) snapshot {
	e.t.Helper()
	evs, err := e.readStream(stream, eventstore.ReadStreamOptions{})
	s := snapshot{ids: ids(evs), global: ids(e.readAll(eventstore.ReadAllOptions{}))}
	if err != nil {
		s.err = err.Error()
	}
	return s
}

// checkUnchanged fails the test if a rejected operation changed anything.
func (e *env) checkUnchanged(stream string, before snapshot) {
	e.t.Helper()
	if diff := cmp.Diff(before, e.snapshot(stream), cmp.AllowUnexported(snapshot{})); diff != "" {
		e.t.Fatalf("a rejected operation changed the store (-before +after):\n%s", diff)
	}
}

// exactAtDeletedEnd reports whether x is Exact(the last revision) of a
// soft-deleted stream in state: the one append whose outcome a backend
// without Features.DeletedStreamRejectsExact may choose.
func (state streamState) exactAtDeletedEnd(x eventstore.ExpectedRevision) bool {
	rev, exact := x.Revision()
	return state.deleted && exact && rev+1 == state.next
}

// testExpectedRevision checks every expected-revision kind against every
// stream state. The table is written out rather than derived from
// ExpectedRevision.Matches so that a mistake there cannot hide here.
//
// Without Features.DeletedStreamRejectsExact, an append at the last revision
// of a soft-deleted stream may succeed, recreating the stream with its
// revisions continuing as any recreation does, or fail as the table says;
// either outcome is checked in full.
func (su *suite) testExpectedRevision(t *testing.T) {
	t.Parallel()
	e := su.env(t)
	expectations := []struct {
		name     string
		expected eventstore.ExpectedRevision
		// ok says, per state (missing, existing, deleted), whether the
		// append succeeds. Tombstoned streams always refuse.
		ok [3]bool
	}{
		{"Any", eventstore.Any, [3]bool{true, true, true}},
		{"NoStream", eventstore.NoStream, [3]bool{true, false, true}},
		{"StreamExists", eventstore.StreamExists, [3]bool{false, true, false}},
		{"Exact0", eventstore.Exact(0), [3]bool{false, false, false}},
		{"Exact1", eventstore.Exact(1), [3]bool{false, true, false}},
		{"Exact7", eventstore.Exact(7), [3]bool{false, false, false}},
	}
	for si, state := range streamStates() {
		for _, x := range expectations {
			t.Run(state.name+"/"+x.name, func(t *testing.T) {
				t.Parallel()
				e := e.with(t)
				s := e.stream("s")
				state.setup(e, s)
				before := e.snapshot(s)
				evs := newEvents(2, "T")
				res, err := e.store().Append(e.ctx(), s, x.expected, evs...)
				// recreated: the backend chose to accept the one append
				// whose outcome is up to it.
				recreated := err == nil && !e.f.DeletedStreamRejectsExact && state.exactAtDeletedEnd(x.expected)
				switch {
				case state.tombstoned:
					wantTombstoned(t, err, s)
					e.checkUnchanged(s, before)
				case x.ok[si] || recreated:
					if err != nil {
						t.Fatalf("Append with %s to a %s stream: %v", x.expected, state.name, err)
					}
					if res.Revision != state.next+1 {
						t.Fatalf("result revision = %d, want %d", res.Revision, state.next+1)
					}
					// An existing stream keeps its events; a deleted one shows
					// only the new ones.
					got := e.mustReadStream(s, eventstore.ReadStreamOptions{})
					first := state.next
					if state.actual != eventstore.NoRevision {
						first = 0
					}
					if diff := cmp.Diff(span(first, state.next+1), revisions(got)); diff != "" {
						t.Fatalf("revisions after the append (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(dataIDs(evs), ids(got[len(got)-2:])); diff != "" {
						t.Fatalf("events after the append (-want +got):\n%s", diff)
					}
				default:
					wantWrongRevision(t, err, s, x.expected, state.actual)
					e.checkUnchanged(s, before)
				}
			})
		}
	}
}

// testIdempotency checks that an append retried with the same event IDs and
// expected revision returns the first result and writes nothing, for every
// kind of expected revision, and that anything else is a conflict.
func (su *suite) testIdempotency(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("SameIDsReturnTheFirstResult", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		retry := func(expected eventstore.ExpectedRevision, evs []eventstore.EventData, want eventstore.AppendResult) {
			t.Helper()
			before := e.snapshot(s)
			got, err := e.store().Append(e.ctx(), s, expected, evs...)
			if err != nil {
				t.Fatalf("retry with %s: %v", expected, err)
			}
			if got != want {
				t.Fatalf("retry with %s returned %+v, want the first result %+v", expected, got, want)
			}
			e.checkUnchanged(s, before)
		}

		first := newEvents(2, "T")
		r1 := e.append(s, eventstore.NoStream, first...)
		retry(eventstore.NoStream, first, r1)

		second := newEvents(3, "T")
		r2 := e.append(s, eventstore.Exact(1), second...)
		retry(eventstore.Exact(1), second, r2)

		third := newEvents(1, "T")
		r3 := e.append(s, eventstore.Any, third...)
		retry(eventstore.Any, third, r3)

		fourth := newEvents(2, "T")
		r4 := e.append(s, eventstore.StreamExists, fourth...)
		retry(eventstore.StreamExists, fourth, r4)

		// An exact or no-stream retry is recognised by the events at the
		// revisions after expected, even once the stream has moved on.
		retry(eventstore.Exact(1), second, r2)
		retry(eventstore.NoStream, first, r1)

		if n := len(e.mustReadStream(s, eventstore.ReadStreamOptions{})); n != 8 {
			t.Fatalf("stream holds %d events after the retries, want 8", n)
		}
	})

	t.Run("PartlyMatchingRetryIsAConflict", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		first := newEvents(2, "T")
		e.append(s, eventstore.NoStream, first...)
		second := newEvents(2, "T")
		e.append(s, eventstore.Exact(1), second...)

		cases := []struct {
			name     string
			expected eventstore.ExpectedRevision
			events   []eventstore.EventData
		}{
			{"NoStreamSecondIDDiffers", eventstore.NoStream, []eventstore.EventData{first[0], newEvent("T")}},
			{"ExactFirstIDDiffers", eventstore.Exact(1), []eventstore.EventData{newEvent("T"), second[1]}},
			{"ExactOneEventMore", eventstore.Exact(1), append(second[:2:2], newEvent("T"))},
			{"ExactShiftedByOne", eventstore.Exact(0), second},
			{"ExactNewIDsAtAStaleRevision", eventstore.Exact(1), newEvents(2, "T")},
			{"NoStreamNewIDs", eventstore.NoStream, newEvents(1, "T")},
		}
		for _, c := range cases {
			before := e.snapshot(s)
			_, err := e.store().Append(e.ctx(), s, c.expected, c.events...)
			if err == nil {
				t.Fatalf("%s: append succeeded, want a wrong expected revision error", c.name)
			}
			wantWrongRevision(t, err, s, c.expected, 3)
			e.checkUnchanged(s, before)
		}
	})

	// NoStream names revision 0 as where its events go, as on a new stream,
	// so a retry with NoStream looks for its events from there. Events
	// written elsewhere do not make it a retry: not those of the NoStream
	// append that recreated a deleted stream, which follow the deleted
	// events, nor the first readable ones of a truncated stream.
	t.Run("NoStreamRetryLooksFromRevisionZero", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		recreated, truncated := e.stream("recreated"), e.stream("truncated")
		e.append(recreated, eventstore.NoStream, newEvents(2, "T")...)
		if err := e.store().DeleteStream(e.ctx(), recreated, eventstore.Any); err != nil {
			t.Fatal(err)
		}
		again := newEvents(2, "T")
		if res := e.append(recreated, eventstore.NoStream, again...); res.Revision != 3 {
			t.Fatalf("recreating append got revision %d, want 3", res.Revision)
		}
		e.append(truncated, eventstore.NoStream, newEvents(2, "T")...)
		later := newEvents(2, "T")
		e.append(truncated, eventstore.Exact(1), later...)
		if err := e.store().TruncateBefore(e.ctx(), truncated, 2); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			stream string
			events []eventstore.EventData
		}{{recreated, again}, {truncated, later}} {
			before := e.snapshot(c.stream)
			_, err := e.store().Append(e.ctx(), c.stream, eventstore.NoStream, c.events...)
			wantWrongRevision(t, err, c.stream, eventstore.NoStream, 3)
			e.checkUnchanged(c.stream, before)
		}
	})
}

// testConcurrentWriters races writers on one stream, each reading the last
// revision and appending at it: exactly one append may win each revision.
func (su *suite) testConcurrentWriters(t *testing.T) {
	t.Parallel()
	e := su.env(t)
	s := e.stream("contended")
	writers, target := 8, 200
	if testing.Short() {
		writers, target = 4, 60
	}

	type win struct {
		writer int
		res    eventstore.AppendResult
		id     uuid.UUID
	}
	var (
		mu     sync.Mutex
		wins   []win
		losses int
		wg     sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for {
				last, err := lastRevision(e, s)
				if err != nil {
					errs <- err
					return
				}
				if last >= int64(target)-1 {
					return
				}
				// Let the other writers read the same revision, so that
				// they race for it.
				runtime.Gosched()
				expected := eventstore.NoStream
				if last != eventstore.NoRevision {
					expected = eventstore.Exact(uint64(last))
				}
				ev := newEvent(fmt.Sprint("Writer", w))
				res, err := e.store().Append(e.ctx(), s, expected, ev)
				var werr *eventstore.WrongExpectedRevisionError
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, win{w, res, ev.ID})
					mu.Unlock()
				case errors.As(err, &werr):
					if werr.Actual <= last {
						errs <- fmt.Errorf("writer %d lost at %s but the stream was reported at %d, not past %d", w, expected, werr.Actual, last)
						return
					}
					mu.Lock()
					losses++
					mu.Unlock()
				default:
					errs <- fmt.Errorf("writer %d: append at %s: %w", w, expected, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	got := e.mustReadStream(s, eventstore.ReadStreamOptions{})
	if diff := cmp.Diff(span(0, uint64(len(got))-1), revisions(got)); diff != "" {
		t.Fatalf("the stream has gaps (-want +got):\n%s", diff)
	}
	if len(got) != target || len(wins) != len(got) {
		t.Fatalf("stream holds %d events, %d appends won, target %d", len(got), len(wins), target)
	}
	byRevision := map[uint64]win{}
	for _, w := range wins {
		if other, dup := byRevision[w.res.Revision]; dup {
			t.Fatalf("writers %d and %d both won revision %d", other.writer, w.writer, w.res.Revision)
		}
		byRevision[w.res.Revision] = w
	}
	for _, ev := range got {
		w, ok := byRevision[ev.Revision]
		if !ok || w.id != ev.ID || w.res.Position != ev.Position {
			t.Fatalf("event %d (id %v, position %d) is not the winner's append %+v", ev.Revision, ev.ID, ev.Position, w)
		}
	}
	t.Logf("%d writers: %d appends won, %d lost", writers, len(wins), losses)
}

// lastRevision returns the stream's last revision, or NoRevision when it does
// not exist.
func lastRevision(e *env, s string) (int64, error) {
	evs, err := collect(e.t, e.store().ReadStream(e.ctx(), s, eventstore.ReadStreamOptions{
		Direction: eventstore.Backwards, From: eventstore.StreamEnd, Limit: 1,
	}))
	switch {
	case isNotFound(err):
		return eventstore.NoRevision, nil
	case err != nil:
		return 0, fmt.Errorf("reading the last revision of %s: %w", s, err)
	case len(evs) != 1:
		return 0, fmt.Errorf("reading the last revision of %s: got %d events", s, len(evs))
	}
	return int64(evs[0].Revision), nil
}

func isNotFound(err error) bool { return errors.Is(err, eventstore.ErrStreamNotFound) }
