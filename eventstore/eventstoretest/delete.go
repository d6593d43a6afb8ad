package eventstoretest

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// removal is an operation that ends a stream: DeleteStream or TombstoneStream.
type removal struct {
	name string
	do   func(e *env, stream string, expected eventstore.ExpectedRevision) error
	// check verifies the stream reads as removed.
	check func(e *env, stream string)
}

func deleteRemoval() removal {
	return removal{
		name: "DeleteStream",
		do: func(e *env, s string, x eventstore.ExpectedRevision) error {
			return e.store().DeleteStream(e.ctx(), s, x)
		},
		check: func(e *env, s string) {
			e.t.Helper()
			_, err := e.readStream(s, eventstore.ReadStreamOptions{})
			wantNotFound(e.t, err, s)
		},
	}
}

func tombstoneRemoval() removal {
	return removal{
		name: "TombstoneStream",
		do: func(e *env, s string, x eventstore.ExpectedRevision) error {
			return e.store().TombstoneStream(e.ctx(), s, x)
		},
		check: func(e *env, s string) {
			e.t.Helper()
			_, err := e.readStream(s, eventstore.ReadStreamOptions{})
			wantTombstoned(e.t, err, s)
			_, err = e.store().Append(e.ctx(), s, eventstore.Any, newEvent("T"))
			wantTombstoned(e.t, err, s)
		},
	}
}

// testRemovalExpectedRevision checks the expected-revision rule of a
// removal against every stream state. Deleting or tombstoning with NoStream
// is only tried on an existing stream, where it must fail; what it means on
// a missing stream is left to the backend.
func testRemovalExpectedRevision(t *testing.T, parent *env, r removal) {
	const ok, wer, skip = "ok", "wrong expected revision", ""
	expectations := []struct {
		name     string
		expected eventstore.ExpectedRevision
		// want per state: missing, existing, deleted. Tombstoned streams
		// always refuse.
		want [3]string
	}{
		{"Any", eventstore.Any, [3]string{ok, ok, ok}},
		{"NoStream", eventstore.NoStream, [3]string{skip, wer, skip}},
		{"StreamExists", eventstore.StreamExists, [3]string{wer, ok, wer}},
		{"Exact1", eventstore.Exact(1), [3]string{wer, ok, wer}},
		{"Exact0", eventstore.Exact(0), [3]string{wer, wer, wer}},
	}
	for si, state := range streamStates() {
		for _, x := range expectations {
			if !state.tombstoned && x.want[si] == skip {
				continue
			}
			t.Run(state.name+"/"+x.name, func(t *testing.T) {
				t.Parallel()
				e := parent.with(t)
				s := e.stream("s")
				state.setup(e, s)
				before := e.snapshot(s)
				err := r.do(e, s, x.expected)
				switch {
				case state.tombstoned:
					wantTombstoned(t, err, s)
					e.checkUnchanged(s, before)
				case x.want[si] == ok:
					if err != nil {
						t.Fatalf("%s with %s on a %s stream: %v", r.name, x.expected, state.name, err)
					}
					r.check(e, s)
				default:
					wantWrongRevision(t, err, s, x.expected, state.actual)
					e.checkUnchanged(s, before)
				}
			})
		}
	}
}

// checkGoneFromAll checks the test's part of the global log after events
// were deleted or truncated: live must be there in order; gone must be
// absent when the store deletes from the global log at once, and may remain
// otherwise.
func (e *env) checkGoneFromAll(live, gone []uuid.UUID) {
	e.t.Helper()
	got := ids(e.readAll(eventstore.ReadAllOptions{}))
	var kept []uuid.UUID
	for _, id := range got {
		switch {
		case slices.Contains(gone, id):
			if e.f.DeletesFromAll {
				e.t.Fatalf("removed event %v is still in the global log", id)
			}
		case slices.Contains(live, id):
			kept = append(kept, id)
		default:
			e.t.Fatalf("the global log holds an unknown event %v", id)
		}
	}
	if diff := cmp.Diff(live, kept, cmpopts.EquateEmpty()); diff != "" {
		e.t.Fatalf("live events in the global log (-want +got):\n%s", diff)
	}
}

// testDeleteStream covers soft deletion.
func (su *suite) testDeleteStream(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("ExpectedRevision", func(t *testing.T) { testRemovalExpectedRevision(t, e, deleteRemoval()) })

	t.Run("RecreateContinuesRevisions", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s, other := e.stream("s"), e.stream("other")
		old := newEvents(3, "T")
		e.append(s, eventstore.NoStream, old...)
		keep := newEvents(1, "T")
		e.append(other, eventstore.NoStream, keep...)

		if err := e.store().DeleteStream(e.ctx(), s, eventstore.Exact(2)); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
			_, err := e.readStream(s, eventstore.ReadStreamOptions{Direction: dir})
			wantNotFound(t, err, s)
		}
		wantNotFound(t, e.store().TruncateBefore(e.ctx(), s, 1), s)
		e.checkGoneFromAll(dataIDs(keep), dataIDs(old))

		// Recreating continues after the deleted revisions, and only the new
		// events are readable.
		fresh := newEvents(2, "T")
		if res := e.append(s, eventstore.Any, fresh...); res.Revision != 4 {
			t.Fatalf("recreating append got revision %d, want 4 (the deleted stream ended at 2)", res.Revision)
		}
		got := e.mustReadStream(s, eventstore.ReadStreamOptions{})
		if diff := cmp.Diff(span(3, 4), revisions(got)); diff != "" {
			t.Fatalf("revisions after recreating (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(dataIDs(fresh), ids(got)); diff != "" {
			t.Fatalf("events after recreating (-want +got):\n%s", diff)
		}
		back := e.mustReadStream(s, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.StreamEnd})
		if diff := cmp.Diff(span(4, 3), revisions(back)); diff != "" {
			t.Fatalf("revisions read backwards after recreating (-want +got):\n%s", diff)
		}
		e.checkGoneFromAll(append(dataIDs(keep), dataIDs(fresh)...), dataIDs(old))

		// Once more, recreating with NoStream.
		if err := e.store().DeleteStream(e.ctx(), s, eventstore.Exact(4)); err != nil {
			t.Fatal(err)
		}
		again := newEvents(1, "T")
		if res := e.append(s, eventstore.NoStream, again...); res.Revision != 5 {
			t.Fatalf("second recreating append got revision %d, want 5", res.Revision)
		}
		if got := e.mustReadStream(s, eventstore.ReadStreamOptions{}); len(got) != 1 || got[0].ID != again[0].ID || got[0].Revision != 5 {
			t.Fatalf("after the second recreation the stream reads %v", recs(got))
		}
		e.checkGoneFromAll(append(dataIDs(keep), dataIDs(again)...), append(dataIDs(old), dataIDs(fresh)...))
	})

	t.Run("MissingStreamWithAny", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("never")
		if err := e.store().DeleteStream(e.ctx(), s, eventstore.Any); err != nil {
			t.Fatalf("deleting a missing stream with Any: %v", err)
		}
		_, err := e.readStream(s, eventstore.ReadStreamOptions{})
		wantNotFound(t, err, s)
		if res := e.append(s, eventstore.NoStream, newEvent("T")); res.Revision != 0 {
			t.Fatalf("first append after deleting a missing stream got revision %d, want 0", res.Revision)
		}
	})

	t.Run("DeletedStreamWithAny", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		e.append(s, eventstore.NoStream, newEvents(2, "T")...)
		for i := range 2 {
			if err := e.store().DeleteStream(e.ctx(), s, eventstore.Any); err != nil {
				t.Fatalf("delete %d: %v", i+1, err)
			}
		}
		if res := e.append(s, eventstore.Any, newEvent("T")); res.Revision != 2 {
			t.Fatalf("append after deleting twice got revision %d, want 2", res.Revision)
		}
	})
}

// testTombstoneStream covers permanent deletion.
func (su *suite) testTombstoneStream(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("ExpectedRevision", func(t *testing.T) { testRemovalExpectedRevision(t, e, tombstoneRemoval()) })

	t.Run("EveryOperationFails", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s, other := e.stream("s"), e.stream("other")
		old := newEvents(2, "T")
		e.append(s, eventstore.NoStream, old...)
		keep := newEvents(1, "T")
		e.append(other, eventstore.NoStream, keep...)
		if err := e.store().TombstoneStream(e.ctx(), s, eventstore.Exact(1)); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
			_, err := e.readStream(s, eventstore.ReadStreamOptions{Direction: dir})
			wantTombstoned(t, err, s)
		}
		for _, x := range []eventstore.ExpectedRevision{eventstore.Any, eventstore.NoStream, eventstore.StreamExists, eventstore.Exact(1)} {
			_, err := e.store().Append(e.ctx(), s, x, newEvent("T"))
			wantTombstoned(t, err, s)
		}
		wantTombstoned(t, e.store().DeleteStream(e.ctx(), s, eventstore.Any), s)
		wantTombstoned(t, e.store().TombstoneStream(e.ctx(), s, eventstore.Any), s)
		wantTombstoned(t, e.store().TruncateBefore(e.ctx(), s, 1), s)
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
		wantTombstoned(t, c.wait(), s)
		e.checkGoneFromAll(dataIDs(keep), dataIDs(old))
	})

	t.Run("NeverExisted", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("never")
		if err := e.store().TombstoneStream(e.ctx(), s, eventstore.Any); err != nil {
			t.Fatalf("tombstoning a missing stream: %v", err)
		}
		_, err := e.store().Append(e.ctx(), s, eventstore.NoStream, newEvent("T"))
		wantTombstoned(t, err, s)
		_, err = e.readStream(s, eventstore.ReadStreamOptions{})
		wantTombstoned(t, err, s)
	})

	t.Run("AfterSoftDelete", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		e.append(s, eventstore.NoStream, newEvents(2, "T")...)
		if err := e.store().DeleteStream(e.ctx(), s, eventstore.Any); err != nil {
			t.Fatal(err)
		}
		if err := e.store().TombstoneStream(e.ctx(), s, eventstore.Any); err != nil {
			t.Fatalf("tombstoning a soft-deleted stream: %v", err)
		}
		_, err := e.store().Append(e.ctx(), s, eventstore.Any, newEvent("T"))
		wantTombstoned(t, err, s)
	})
}

// testTruncateBefore covers truncation.
func (su *suite) testTruncateBefore(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("ReadsStartAtTheRevision", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		evs := newEvents(10, "T")
		e.append(s, eventstore.NoStream, evs...)
		before := recs(e.mustReadStream(s, eventstore.ReadStreamOptions{}))
		if err := e.store().TruncateBefore(e.ctx(), s, 4); err != nil {
			t.Fatal(err)
		}
		bwd := eventstore.Backwards
		for _, c := range []struct {
			name string
			opts eventstore.ReadStreamOptions
			want []rec
		}{
			{"forwards", eventstore.ReadStreamOptions{}, before[4:]},
			{"forwards from a truncated revision", eventstore.ReadStreamOptions{From: eventstore.FromRevision(2)}, before[4:]},
			{"forwards from 6 limit 2", eventstore.ReadStreamOptions{From: eventstore.FromRevision(6), Limit: 2}, before[6:8]},
			{"backwards from the end", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.StreamEnd}, reversed(before[4:])},
			{"backwards from 6", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.FromRevision(6)}, reversed(before[4:7])},
			{"backwards from a truncated revision", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.FromRevision(2)}, nil},
			{"backwards from the start", eventstore.ReadStreamOptions{Direction: bwd, From: eventstore.StreamStart}, before[4:5]},
		} {
			got := recs(e.mustReadStream(s, c.opts))
			if diff := cmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%s (-want +got):\n%s", c.name, diff)
			}
		}
		e.checkGoneFromAll(dataIDs(evs[4:]), dataIDs(evs[:4]))

		// Appends go on at the old end; subscriptions start at the first
		// readable event.
		next := newEvent("T")
		if res := e.append(s, eventstore.Exact(9), next); res.Revision != 10 {
			t.Fatalf("append after truncation got revision %d, want 10", res.Revision)
		}
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
		if diff := cmp.Diff(span(4, 10), revisions(c.waitFor(7))); diff != "" {
			t.Fatalf("subscription after truncation (-want +got):\n%s", diff)
		}
		if err := e.store().TruncateBefore(e.ctx(), s, 0); err != nil {
			t.Fatalf("TruncateBefore(0): %v", err)
		}
		if got := e.mustReadStream(s, eventstore.ReadStreamOptions{}); len(got) != 7 {
			t.Fatalf("TruncateBefore(0) changed the stream to %d events, want 7", len(got))
		}
	})

	t.Run("Everything", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		evs := newEvents(5, "T")
		e.append(s, eventstore.NoStream, evs...)
		if err := e.store().TruncateBefore(e.ctx(), s, 5); err != nil {
			t.Fatal(err)
		}
		got, err := e.readStream(s, eventstore.ReadStreamOptions{})
		if err != nil || len(got) != 0 {
			t.Fatalf("a fully truncated stream read %d events and error %v, want none and no error (it still exists)", len(got), err)
		}
		e.checkGoneFromAll(nil, dataIDs(evs))
		_, err = e.store().Append(e.ctx(), s, eventstore.NoStream, newEvent("T"))
		wantWrongRevision(t, err, s, eventstore.NoStream, 4)
		next := newEvent("T")
		if res := e.append(s, eventstore.StreamExists, next); res.Revision != 5 {
			t.Fatalf("append to a fully truncated stream got revision %d, want 5", res.Revision)
		}
		if got := e.mustReadStream(s, eventstore.ReadStreamOptions{}); len(got) != 1 || got[0].ID != next.ID {
			t.Fatalf("after the append the stream reads %v", recs(got))
		}
	})

	t.Run("MissingOrDeletedStream", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		missing, deleted := e.stream("missing"), e.stream("deleted")
		wantNotFound(t, e.store().TruncateBefore(e.ctx(), missing, 1), missing)
		e.append(deleted, eventstore.NoStream, newEvents(3, "T")...)
		if err := e.store().DeleteStream(e.ctx(), deleted, eventstore.Any); err != nil {
			t.Fatal(err)
		}
		wantNotFound(t, e.store().TruncateBefore(e.ctx(), deleted, 1), deleted)
	})
}
