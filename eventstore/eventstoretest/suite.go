package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// Features says what a backend can do, instead of scattered skips.
type Features struct {
	// DeletesFromAll: events of deleted or truncated streams leave the global log at once
	// (true for memory and pebble; false for KurrentDB, which keeps them in $all until a scavenge).
	DeletesFromAll bool
	// ArbitraryContentTypes: content types other than application/json and application/octet-stream are stored as given.
	ArbitraryContentTypes bool
	// GapFreePositions: global positions are consecutive integers (memory, pebble: yes; KurrentDB: no, only increasing).
	GapFreePositions bool
	// DeletedStreamRejectsExact: after DeleteStream, an append with Exact(the deleted stream's last revision)
	// fails with a wrong-expected-revision error (memory, pebble); KurrentDB accepts it and recreates the stream.
	// When false, the suite accepts either outcome and checks whichever happened.
	DeletedStreamRejectsExact bool
	// MaxEventSize is the event size limit the store under test enforces; 0 means eventstore.DefaultMaxEventSize.
	MaxEventSize int
	// Reopen, when set, closes s and opens the same storage again (persistent backends); tests that data survives use it.
	Reopen func(t testing.TB, s eventstore.Store) eventstore.Store
}

func (f Features) maxEventSize() int {
	if f.MaxEventSize > 0 {
		return f.MaxEventSize
	}
	return eventstore.DefaultMaxEventSize
}

// Timeouts of the suite. They are generous because they only bound how long
// a broken backend can hang a test; a correct one never comes near them.
const (
	// waitTimeout bounds every wait for an event, a subscription or a
	// goroutine. Waits for a stream of events restart it with each event.
	waitTimeout = 30 * time.Second
	// probeInterval is how long a test waits for a probe event to come
	// through a subscription before it appends the next probe. It is not a
	// synchronisation by time: the test goes on only once a probe arrived.
	probeInterval = 20 * time.Millisecond
	// clockSkew is how far Created may be from the test's own clock, for a
	// store whose clock is on another machine.
	clockSkew = 5 * time.Second
)

// Exercise runs the conformance suite against the store that open returns.
// open is called once per test or group of parallel subtests, which then
// share the store; the suite closes every store it opened (Close returning
// ErrClosed is accepted, for stores a test closed itself).
//
// What the suite expects beyond the eventstore contract, so that it can run
// against a shared server:
//
//   - Stores returned by open may hold other events and serve other clients.
//     The suite only reads the global log through a filter on its own stream
//     prefixes (or on event types unique to a test).
//   - A backend hides its own bookkeeping events: an event the backend writes
//     into a user's stream (such as KurrentDB's $streamDeleted tombstone
//     event) must not be yielded by reads or subscriptions.
//   - With GapFreePositions, the suite checks that the events of one append
//     have consecutive positions, and that appends follow each other without
//     gaps in a test that has a store to itself; such a store must not be
//     written by anyone else while the test runs.
//
// The model-based tests log their random seed; setting EVENTSTORETEST_SEED
// replays a run.
func Exercise(t *testing.T, open func(t testing.TB) eventstore.Store, f Features) {
	su := &suite{openStore: open, f: f}
	t.Run("Append", su.testAppend)
	t.Run("ExpectedRevision", su.testExpectedRevision)
	t.Run("Idempotency", su.testIdempotency)
	t.Run("ConcurrentWriters", su.testConcurrentWriters)
	t.Run("ReadStream", su.testReadStream)
	t.Run("ReadAll", su.testReadAll)
	t.Run("SubscribeToStream", su.testSubscribeToStream)
	t.Run("SubscribeToAll", su.testSubscribeToAll)
	t.Run("DeleteStream", su.testDeleteStream)
	t.Run("TombstoneStream", su.testTombstoneStream)
	t.Run("TruncateBefore", su.testTruncateBefore)
	t.Run("Limits", su.testLimits)
	t.Run("Close", su.testClose)
	t.Run("Persistence", su.testPersistence)
	t.Run("Model", su.testModel)
}

type suite struct {
	openStore func(t testing.TB) eventstore.Store
	f         Features
}

// env is one test's view of a store: the store, the random prefix of the
// test's streams, and the features of the backend.
type env struct {
	t testing.TB
	// holder is shared by every env that uses the same store, so that a
	// Reopen is seen by all of them and the cleanup closes the latest store.
	holder *storeHolder
	prefix string
	f      Features
}

type storeHolder struct {
	store  eventstore.Store
	closed bool
}

// env opens a store for t and closes it when t and its subtests are done.
func (su *suite) env(t testing.TB) *env {
	h := &storeHolder{store: su.openStore(t)}
	t.Cleanup(func() {
		if h.closed {
			return
		}
		if err := h.store.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, holder: h, prefix: newPrefix(), f: su.f}
}

// with returns an env for the subtest t that shares e's store but names its
// streams with a prefix of its own.
func (e *env) with(t testing.TB) *env {
	return &env{t: t, holder: e.holder, prefix: newPrefix(), f: e.f}
}

func (e *env) store() eventstore.Store { return e.holder.store }

// ctx ends just before the test's cleanups run.
func (e *env) ctx() context.Context { return e.t.Context() }

// stream returns the full name of the test's stream called name.
func (e *env) stream(name string) string { return e.prefix + name }

// tag is the prefix without its trailing dash, used to make event types
// unique to a test where a test filters by event type alone.
func (e *env) tag() string { return e.prefix[:len(e.prefix)-1] }

// ours is the filter that keeps the global log to this test's streams.
func (e *env) ours() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{e.prefix}}
}

// newPrefix returns a stream name prefix that no other test, and no earlier
// run against the same server, uses.
func newPrefix() string {
	return fmt.Sprintf("t%012x-", rand.Uint64()&(1<<48-1))
}

// newEvents returns n events of type typ with fresh IDs and distinct data.
func newEvents(n int, typ string) []eventstore.EventData {
	evs := make([]eventstore.EventData, n)
	for i := range evs {
		evs[i] = newEvent(typ)
	}
	return evs
}

func newEvent(typ string) eventstore.EventData {
	id := uuid.New()
	return eventstore.EventData{
		ID:          id,
		Type:        typ,
		ContentType: eventstore.ContentTypeJSON,
		Data:        fmt.Appendf(nil, `{"id":%q}`, id),
		Metadata:    []byte(`{"test":true}`),
	}
}

// append appends and fails the test on error.
func (e *env) append(stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) eventstore.AppendResult {
	e.t.Helper()
	res, err := e.store().Append(e.ctx(), stream, expected, events...)
	if err != nil {
		e.t.Fatalf("Append(%q, %s, %d events): %v", stream, expected, len(events), err)
	}
	return res
}

// collect drains seq, returning the events before the first error and that
// error. It also fails the test if the iterator goes on after an error,
// which the contract forbids.
func collect(t testing.TB, seq iter.Seq2[eventstore.RecordedEvent, error]) ([]eventstore.RecordedEvent, error) {
	t.Helper()
	var (
		events []eventstore.RecordedEvent
		first  error
		extra  int
	)
	for ev, err := range seq {
		switch {
		case first != nil:
			extra++
		case err != nil:
			first = err
		default:
			events = append(events, ev)
		}
	}
	if extra > 0 {
		t.Errorf("iterator yielded %d more values after the error %v", extra, first)
	}
	return events, first
}

func (e *env) readStream(stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	e.t.Helper()
	return collect(e.t, e.store().ReadStream(e.ctx(), stream, opts))
}

func (e *env) mustReadStream(stream string, opts eventstore.ReadStreamOptions) []eventstore.RecordedEvent {
	e.t.Helper()
	evs, err := e.readStream(stream, opts)
	if err != nil {
		e.t.Fatalf("ReadStream(%q): %v", stream, err)
	}
	return evs
}

// readAll reads the global log, restricted to the test's streams unless
// opts names stream prefixes of its own.
func (e *env) readAll(opts eventstore.ReadAllOptions) []eventstore.RecordedEvent {
	e.t.Helper()
	if len(opts.Filter.StreamPrefixes) == 0 && len(opts.Filter.EventTypePrefixes) == 0 {
		opts.Filter = e.ours()
	}
	evs, err := collect(e.t, e.store().ReadAll(e.ctx(), opts))
	if err != nil {
		e.t.Fatalf("ReadAll: %v", err)
	}
	return evs
}

// wantErr checks that err is an E and matches sentinel, and returns it.
func wantErr[E error](t testing.TB, err error, sentinel error) E {
	t.Helper()
	var target E
	if err == nil {
		t.Fatalf("error = nil, want %T", target)
	}
	if !errors.As(err, &target) {
		t.Fatalf("error = %v (%T), want a %T", err, err, target)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("errors.Is(%v, %v) = false", err, sentinel)
	}
	return target
}

func wantWrongRevision(t testing.TB, err error, stream string, expected eventstore.ExpectedRevision, actual int64) {
	t.Helper()
	werr := wantErr[*eventstore.WrongExpectedRevisionError](t, err, eventstore.ErrWrongExpectedRevision)
	if werr.Stream != stream || werr.Expected != expected || werr.Actual != actual {
		t.Fatalf("WrongExpectedRevisionError{Stream: %q, Expected: %s, Actual: %d}, want {%q, %s, %d}",
			werr.Stream, werr.Expected, werr.Actual, stream, expected, actual)
	}
}

func wantNotFound(t testing.TB, err error, stream string) {
	t.Helper()
	nerr := wantErr[*eventstore.NotFoundError](t, err, eventstore.ErrStreamNotFound)
	if nerr.Stream != stream {
		t.Fatalf("NotFoundError.Stream = %q, want %q", nerr.Stream, stream)
	}
}

func wantTombstoned(t testing.TB, err error, stream string) {
	t.Helper()
	terr := wantErr[*eventstore.TombstonedError](t, err, eventstore.ErrStreamTombstoned)
	if terr.Stream != stream {
		t.Fatalf("TombstonedError.Stream = %q, want %q", terr.Stream, stream)
	}
}

func ids(evs []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func dataIDs(evs []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func revisions(evs []eventstore.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Revision
	}
	return out
}

// span returns the revisions from..to inclusive, counting down when to < from.
func span(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for r := from; r <= to; r++ {
			out = append(out, r)
		}
		return out
	}
	for r := from; ; r-- {
		out = append(out, r)
		if r == to {
			return out
		}
	}
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// checkPositions fails the test unless the positions of evs strictly
// increase.
func (e *env) checkPositions(evs []eventstore.RecordedEvent) {
	e.t.Helper()
	for i := 1; i < len(evs); i++ {
		if prev, cur := evs[i-1].Position, evs[i].Position; cur <= prev {
			e.t.Fatalf("event %d has position %d after %d: positions must strictly increase", i, cur, prev)
		}
	}
}

// checkBatchPositions checks the positions of the events of one append, in
// revision order: they increase, and with GapFreePositions they are
// consecutive, since an append commits atomically. Across appends the suite
// checks consecutive positions only where a test has the store to itself.
func (e *env) checkBatchPositions(batch []eventstore.RecordedEvent) {
	e.t.Helper()
	e.checkPositions(batch)
	if n := len(batch); e.f.GapFreePositions && n > 0 && batch[n-1].Position-batch[0].Position != uint64(n-1) {
		e.t.Fatalf("an append of %d events got positions %d..%d: the store promises gap-free positions", n, batch[0].Position, batch[n-1].Position)
	}
}

// waitDone waits for done to close, failing the test after waitTimeout.
func waitDone(t testing.TB, done <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

// rec is the part of a RecordedEvent the suite compares exactly, in a form
// whose cmp diffs read well. Created is left out because the store, not the
// caller, chooses it; it is checked on its own.
type rec struct {
	Stream      string
	Revision    uint64
	Position    uint64
	ID          uuid.UUID
	Type        string
	ContentType string
	Data        string
	Metadata    string
}

func toRec(ev eventstore.RecordedEvent) rec {
	return rec{
		Stream: ev.Stream, Revision: ev.Revision, Position: ev.Position, ID: ev.ID,
		Type: ev.Type, ContentType: ev.ContentType, Data: string(ev.Data), Metadata: string(ev.Metadata),
	}
}

func recs(evs []eventstore.RecordedEvent) []rec {
	out := make([]rec, len(evs))
	for i, ev := range evs {
		out[i] = toRec(ev)
	}
	return out
}
