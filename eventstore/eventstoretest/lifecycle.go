package eventstoretest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/durableactor/durable/eventstore"
)

// testClose checks that a closed store ends its subscriptions and refuses
// every operation with ErrClosed. It opens a store of its own, since it
// closes it.
func (su *suite) testClose(t *testing.T) {
	t.Parallel()
	e := su.env(t)
	s := e.stream("s")
	e.append(s, eventstore.NoStream, newEvents(2, "T")...)

	// Live subscriptions, caught up and waiting for more.
	byStream := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
	byAll := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
	byStream.waitFor(2)
	byAll.waitFor(2)

	if err := e.store().Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.holder.closed = true
	for name, c := range map[string]*collector{"SubscribeToStream": byStream, "SubscribeToAll": byAll} {
		if err := c.wait(); err == nil {
			t.Errorf("%s ended without an error when the store closed", name)
		}
	}

	wantClosed := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
	_, err := e.store().Append(e.ctx(), s, eventstore.Any, newEvent("T"))
	wantClosed("Append", err)
	_, err = e.readStream(s, eventstore.ReadStreamOptions{})
	wantClosed("ReadStream", err)
	_, err = collect(t, e.store().ReadAll(e.ctx(), eventstore.ReadAllOptions{Filter: e.ours()}))
	wantClosed("ReadAll", err)
	wantClosed("SubscribeToStream", e.subscribeStream(s, eventstore.SubscribeStreamOptions{}).wait())
	wantClosed("SubscribeToAll", e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()}).wait())
	wantClosed("DeleteStream", e.store().DeleteStream(e.ctx(), s, eventstore.Any))
	wantClosed("TombstoneStream", e.store().TombstoneStream(e.ctx(), s, eventstore.Any))
	wantClosed("TruncateBefore", e.store().TruncateBefore(e.ctx(), s, 1))
}

// testPersistence checks, for persistent backends, that everything the
// contract promises survives closing and reopening the store.
func (su *suite) testPersistence(t *testing.T) {
	if su.f.Reopen == nil {
		t.Skip("the backend keeps nothing across restarts (Features.Reopen is nil)")
	}
	t.Parallel()
	e := su.env(t)
	plain, deleted, tombstoned, truncated := e.stream("plain"), e.stream("deleted"), e.stream("tombstoned"), e.stream("truncated")
	last := newEvents(2, "T")
	e.append(plain, eventstore.NoStream, newEvents(3, "T")...)
	lastRes := e.append(plain, eventstore.Exact(2), last...)
	e.append(deleted, eventstore.NoStream, newEvents(3, "T")...)
	e.append(tombstoned, eventstore.NoStream, newEvents(2, "T")...)
	e.append(truncated, eventstore.NoStream, newEvents(6, "T")...)
	if err := e.store().DeleteStream(e.ctx(), deleted, eventstore.Exact(2)); err != nil {
		t.Fatal(err)
	}
	if err := e.store().TombstoneStream(e.ctx(), tombstoned, eventstore.Any); err != nil {
		t.Fatal(err)
	}
	if err := e.store().TruncateBefore(e.ctx(), truncated, 4); err != nil {
		t.Fatal(err)
	}
	plainBefore := e.mustReadStream(plain, eventstore.ReadStreamOptions{})
	truncatedBefore := recs(e.mustReadStream(truncated, eventstore.ReadStreamOptions{}))
	allBefore := e.readAll(eventstore.ReadAllOptions{})

	for round := range 2 {
		e.holder.store = su.f.Reopen(t, e.store())

		if diff := cmp.Diff(recs(plainBefore), recs(e.mustReadStream(plain, eventstore.ReadStreamOptions{}))); diff != "" {
			t.Fatalf("round %d: %s after reopening (-before +after):\n%s", round, plain, diff)
		}
		for i, ev := range e.mustReadStream(plain, eventstore.ReadStreamOptions{}) {
			if !ev.Created.Equal(plainBefore[i].Created) {
				t.Fatalf("round %d: Created of %s@%d changed from %v to %v", round, plain, i, plainBefore[i].Created, ev.Created)
			}
		}
		if diff := cmp.Diff(truncatedBefore, recs(e.mustReadStream(truncated, eventstore.ReadStreamOptions{}))); diff != "" {
			t.Fatalf("round %d: %s after reopening (-before +after):\n%s", round, truncated, diff)
		}
		_, err := e.readStream(deleted, eventstore.ReadStreamOptions{})
		wantNotFound(t, err, deleted)
		_, err = e.readStream(tombstoned, eventstore.ReadStreamOptions{})
		wantTombstoned(t, err, tombstoned)
		if diff := cmp.Diff(recs(allBefore), recs(e.readAll(eventstore.ReadAllOptions{}))); diff != "" {
			t.Fatalf("round %d: global log after reopening (-before +after):\n%s", round, diff)
		}

		if round == 0 {
			// A retry of an append from before the restart is still
			// recognised.
			res, err := e.store().Append(e.ctx(), plain, eventstore.Exact(2), last...)
			if err != nil || res != lastRes {
				t.Fatalf("retry after reopening: %+v, %v; want the first result %+v", res, err, lastRes)
			}
			// New appends go on at the right revisions and higher positions.
			top := allBefore[len(allBefore)-1].Position
			r1 := e.append(plain, eventstore.Exact(4), newEvent("T"))
			r2 := e.append(deleted, eventstore.NoStream, newEvent("T"))
			r3 := e.append(truncated, eventstore.Exact(5), newEvent("T"))
			if r1.Revision != 5 || r2.Revision != 3 || r3.Revision != 6 {
				t.Fatalf("revisions after reopening: %d, %d, %d; want 5, 3, 6", r1.Revision, r2.Revision, r3.Revision)
			}
			if r1.Position <= top || r2.Position <= r1.Position || r3.Position <= r2.Position {
				t.Fatalf("positions after reopening %d, %d, %d do not grow past %d", r1.Position, r2.Position, r3.Position, top)
			}
			_, err = e.store().Append(e.ctx(), tombstoned, eventstore.Any, newEvent("T"))
			wantTombstoned(t, err, tombstoned)
			plainBefore = e.mustReadStream(plain, eventstore.ReadStreamOptions{})
			truncatedBefore = recs(e.mustReadStream(truncated, eventstore.ReadStreamOptions{}))
			allBefore = e.readAll(eventstore.ReadAllOptions{})
			// The deleted stream now reads as its recreated part.
			if got := e.mustReadStream(deleted, eventstore.ReadStreamOptions{}); len(got) != 1 || got[0].Revision != 3 {
				t.Fatalf("recreated stream after reopening reads %v", recs(got))
			}
			deleted = e.stream("deleted-after-reopen")
			e.append(deleted, eventstore.NoStream, newEvent("T"))
			if err := e.store().DeleteStream(e.ctx(), deleted, eventstore.Any); err != nil {
				t.Fatal(err)
			}
			allBefore = e.readAll(eventstore.ReadAllOptions{})
		}
	}
}
