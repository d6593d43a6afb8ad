package eventstoretest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// seedEnv names the environment variable that fixes the seed of the
// model-based tests, to replay a failure.
const seedEnv = "EVENTSTORETEST_SEED"

// modelSeed returns the seed of a model-based test and logs it, so that a
// failure names the seed that reproduces it.
func modelSeed(t testing.TB) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
		seed = s
	}
	t.Logf("seed %d (rerun with %s=%d)", seed, seedEnv, seed)
	return seed
}

// testModel runs the model-based tests, each on a store of its own.
func (su *suite) testModel(t *testing.T) {
	t.Parallel()
	t.Run("Sequential", func(t *testing.T) {
		t.Parallel()
		su.testModelSequential(t)
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		su.testModelConcurrent(t)
	})
}

// model is the contract written as plainly as possible, for the streams of
// one test. The sequential model-based test applies every operation to the
// store and to the model and compares the outcomes.
//
// The model does not choose positions (a backend may leave gaps); it learns
// each event's position when the event is appended, after checking it is
// higher than every position before.
type model struct {
	f       Features
	streams map[string]*modelStream
	// live holds the readable events of every stream in position order.
	live []rec
	// dead holds deleted and truncated events by ID: a backend without
	// DeletesFromAll may still show them in the global log.
	dead    map[uuid.UUID]rec
	lastPos uint64
	// appends are the successful appends, which later operations retry.
	appends []modelAppend
}

type modelStream struct {
	// events are the readable events in revision order.
	events []rec
	// last is the revision of the last event ever written, NoRevision if none.
	last       int64
	deleted    bool
	tombstoned bool
}

type modelAppend struct {
	stream   string
	expected eventstore.ExpectedRevision
	events   []eventstore.EventData
	res      eventstore.AppendResult
}

func newModel(f Features) *model {
	return &model{f: f, streams: map[string]*modelStream{}, dead: map[uuid.UUID]rec{}}
}

// current is the revision an expected-revision check compares with.
func (st *modelStream) current() int64 {
	if st == nil || st.deleted || st.tombstoned {
		return eventstore.NoRevision
	}
	return st.last
}

// matches is the expected-revision rule, written out again here so that the
// model does not trust the code it checks.
func matches(x eventstore.ExpectedRevision, current int64) bool {
	if rev, ok := x.Revision(); ok {
		return current == int64(rev)
	}
	switch {
	case x.IsNoStream():
		return current == eventstore.NoRevision
	case x.IsStreamExists():
		return current != eventstore.NoRevision
	}
	return true
}

// check returns the error an operation on stream must fail with before it
// touches anything, or nil.
func (m *model) check(stream string, x eventstore.ExpectedRevision) error {
	st := m.streams[stream]
	if st != nil && st.tombstoned {
		return &eventstore.TombstonedError{Stream: stream}
	}
	if cur := st.current(); !matches(x, cur) {
		return &eventstore.WrongExpectedRevisionError{Stream: stream, Expected: x, Actual: cur}
	}
	return nil
}

// mayRecreate reports whether an append at x to stream may succeed although
// check refuses it: x is Exact(the last revision) of a soft-deleted stream
// and the backend lacks Features.DeletedStreamRejectsExact. The append then
// recreates the stream, its revisions continuing, like any append to a
// deleted stream; refused, it is the WrongExpectedRevisionError check says.
func (m *model) mayRecreate(stream string, x eventstore.ExpectedRevision) bool {
	st := m.streams[stream]
	rev, exact := x.Revision()
	return !m.f.DeletedStreamRejectsExact && st != nil && st.deleted && !st.tombstoned &&
		exact && st.last >= 0 && rev == uint64(st.last)
}

// kill moves events from the live log to the dead set.
func (m *model) kill(events []rec) {
	for _, ev := range events {
		m.dead[ev.ID] = ev
	}
	m.live = slices.DeleteFunc(m.live, func(ev rec) bool { _, gone := m.dead[ev.ID]; return gone })
}

// sameError reports how got differs from the error the model wants, or "".
func sameError(got, want error) string {
	switch w := want.(type) {
	case nil:
		if got != nil {
			return fmt.Sprintf("got error %v, want success", got)
		}
		return ""
	case *eventstore.WrongExpectedRevisionError:
		var g *eventstore.WrongExpectedRevisionError
		if !errors.As(got, &g) || !errors.Is(got, eventstore.ErrWrongExpectedRevision) ||
			g.Stream != w.Stream || g.Expected != w.Expected || g.Actual != w.Actual {
			return fmt.Sprintf("got error %v, want %v", got, want)
		}
	case *eventstore.TombstonedError:
		var g *eventstore.TombstonedError
		if !errors.As(got, &g) || !errors.Is(got, eventstore.ErrStreamTombstoned) || g.Stream != w.Stream {
			return fmt.Sprintf("got error %v, want %v", got, want)
		}
	case *eventstore.NotFoundError:
		var g *eventstore.NotFoundError
		if !errors.As(got, &g) || !errors.Is(got, eventstore.ErrStreamNotFound) || g.Stream != w.Stream {
			return fmt.Sprintf("got error %v, want %v", got, want)
		}
	default:
		panic(fmt.Sprintf("model: unexpected error type %T", want))
	}
	return ""
}

// readStream is what ReadStream must yield.
func (m *model) readStream(stream string, opts eventstore.ReadStreamOptions) ([]rec, error) {
	st := m.streams[stream]
	switch {
	case st != nil && st.tombstoned:
		return nil, &eventstore.TombstonedError{Stream: stream}
	case st.current() == eventstore.NoRevision:
		return nil, &eventstore.NotFoundError{Stream: stream}
	}
	var out []rec
	keep := func(ev rec) bool {
		if opts.Limit > 0 && uint64(len(out)) == opts.Limit {
			return false
		}
		out = append(out, ev)
		return true
	}
	rev, at := opts.From.Revision()
	if opts.Direction == eventstore.Backwards {
		for _, ev := range slices.Backward(st.events) {
			if at && ev.Revision > rev || opts.From.IsStart() && ev.Revision > st.events[0].Revision {
				continue
			}
			if !keep(ev) {
				break
			}
		}
		return out, nil
	}
	if opts.From.IsEnd() {
		return nil, nil
	}
	for _, ev := range st.events {
		if at && ev.Revision < rev {
			continue
		}
		if !keep(ev) {
			break
		}
	}
	return out, nil
}

// selects reports whether a read of the global log with opts, without its
// limit, yields ev. Backwards reads from AllStart yield at most the log's
// first event, which may be another test's; readAllFromStart checks them.
func selects(opts eventstore.ReadAllOptions, ev rec) bool {
	if !opts.Filter.Match(ev.Stream, ev.Type) {
		return false
	}
	if pos, at := opts.From.Position(); at {
		if opts.Direction == eventstore.Backwards {
			return ev.Position <= pos
		}
		return ev.Position >= pos
	}
	return !(opts.From.IsEnd() && opts.Direction == eventstore.Forwards)
}

// readAll is what ReadAll must yield of the live events.
func (m *model) readAll(opts eventstore.ReadAllOptions) []rec {
	var out []rec
	events := m.live
	if opts.Direction == eventstore.Backwards {
		events = reversed(m.live)
	}
	for _, ev := range events {
		if !selects(opts, ev) {
			continue
		}
		if opts.Limit > 0 && uint64(len(out)) == opts.Limit {
			break
		}
		out = append(out, ev)
	}
	return out
}

// compareAll compares events read from the global log with the model. With
// DeletesFromAll the match is exact. Without it, dead events may appear;
// they are checked against what was written and set aside, and the live
// events must be the model's, cut short only where a limit was reached.
func (m *model) compareAll(got []eventstore.RecordedEvent, opts eventstore.ReadAllOptions) string {
	if m.f.DeletesFromAll {
		return diffRecs(m.readAll(opts), recs(got))
	}
	var live []rec
	for _, ev := range got {
		if d, ok := m.dead[ev.ID]; ok {
			if got := toRec(ev); got != d {
				return "a removed event reads differently (-written +read):\n" + cmp.Diff(d, got)
			}
			if !selects(opts, d) {
				return fmt.Sprintf("removed event %s@%d (position %d) does not match the read", d.Stream, d.Revision, d.Position)
			}
			continue
		}
		live = append(live, toRec(ev))
	}
	unlimited := opts
	unlimited.Limit = 0
	want := m.readAll(unlimited)
	if opts.Limit > 0 && uint64(len(got)) == opts.Limit && len(live) <= len(want) {
		want = want[:len(live)]
	}
	return diffRecs(want, live)
}

// modelRun is one sequential model-based run.
type modelRun struct {
	e       *env
	m       *model
	rng     *rand.Rand
	streams []string
	types   []string
}

func (su *suite) testModelSequential(t *testing.T) {
	seed := modelSeed(t)
	e := su.env(t)
	r := &modelRun{
		e:     e,
		m:     newModel(e.f),
		rng:   rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)),
		types: []string{"A.x", "A.y", "B.z", "C"},
	}
	for i := range 6 {
		r.streams = append(r.streams, e.stream(fmt.Sprint("m", i)))
	}
	ops := 3000
	if testing.Short() {
		ops = 600
	}
	for i := range ops {
		var what, problem string
		switch n := r.rng.IntN(100); {
		case n < 35:
			what, problem = r.append()
		case n < 45:
			what, problem = r.retry()
		case n < 63:
			what, problem = r.readStream()
		case n < 78:
			what, problem = r.readAll()
		case n < 85:
			what, problem = r.remove(false)
		case n < 86:
			what, problem = r.remove(true)
		case n < 94:
			what, problem = r.truncate()
		default:
			what, problem = r.subscribe()
		}
		if problem == "" && i%100 == 99 {
			what, problem = r.checkEverything()
		}
		if problem != "" {
			t.Fatalf("seed %d, operation %d: %s: %s", seed, i, what, problem)
		}
	}
	if what, problem := r.checkEverything(); problem != "" {
		t.Fatalf("seed %d, at the end: %s: %s", seed, what, problem)
	}
}

func (r *modelRun) stream() string {
	// Now and then a stream nobody used yet, so creation is exercised
	// throughout and tombstones do not end the run's interest.
	if r.rng.IntN(40) == 0 {
		r.streams = append(r.streams, r.e.stream(fmt.Sprint("m", len(r.streams))))
		return r.streams[len(r.streams)-1]
	}
	return r.streams[r.rng.IntN(len(r.streams))]
}

func (r *modelRun) randomBytes() []byte {
	switch r.rng.IntN(5) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, r.rng.IntN(48))
	for i := range b {
		b[i] = byte(r.rng.UintN(256))
	}
	return b
}

func (r *modelRun) newEvents() []eventstore.EventData {
	evs := make([]eventstore.EventData, 1+r.rng.IntN(4))
	for i := range evs {
		evs[i] = eventstore.EventData{
			ID:          uuid.New(),
			Type:        r.types[r.rng.IntN(len(r.types))],
			ContentType: []string{"", eventstore.ContentTypeJSON, eventstore.ContentTypeBinary}[r.rng.IntN(3)],
			Data:        r.randomBytes(),
			Metadata:    r.randomBytes(),
		}
	}
	return evs
}

// expected picks an expected revision for stream: mostly one that matches,
// often one that does not. On a soft-deleted stream it often picks its last
// revision, which the contract refuses but a backend without
// Features.DeletedStreamRejectsExact may accept for an append.
func (r *modelRun) expected(stream string, noStream bool) eventstore.ExpectedRevision {
	st := r.m.streams[stream]
	cur := st.current()
	if st != nil && st.deleted && !st.tombstoned && st.last >= 0 && r.rng.IntN(4) == 0 {
		return eventstore.Exact(uint64(st.last))
	}
	switch n := r.rng.IntN(10); {
	case n < 2:
		return eventstore.Any
	case n < 3 && noStream:
		return eventstore.NoStream
	case n < 4:
		return eventstore.StreamExists
	case n < 8 && cur != eventstore.NoRevision:
		return eventstore.Exact(uint64(cur))
	case n < 8 && noStream:
		return eventstore.NoStream
	}
	return eventstore.Exact(uint64(r.rng.Int64N(max(cur, 0) + 3)))
}

func (r *modelRun) append() (string, string) {
	stream := r.stream()
	x := r.expected(stream, true)
	evs := r.newEvents()
	what := fmt.Sprintf("Append(%s, %s, %d events)", stream, x, len(evs))
	res, err := r.e.store().Append(r.e.ctx(), stream, x, evs...)
	want := r.m.check(stream, x)
	if want != nil && err == nil && r.m.mayRecreate(stream, x) {
		what += " (accepted: recreates the deleted stream)"
		want = nil
	}
	if p := sameError(err, want); p != "" || want != nil {
		return what, p
	}
	return what, r.applyAppend(stream, x, evs, res)
}

// applyAppend checks a successful append's result, learns the positions of
// its events and adds them to the model.
func (r *modelRun) applyAppend(stream string, x eventstore.ExpectedRevision, evs []eventstore.EventData, res eventstore.AppendResult) string {
	m := r.m
	st := m.streams[stream]
	if st == nil {
		st = &modelStream{last: eventstore.NoRevision}
		m.streams[stream] = st
	}
	first := uint64(st.last + 1)
	if want := first + uint64(len(evs)) - 1; res.Revision != want {
		return fmt.Sprintf("result revision %d, want %d", res.Revision, want)
	}
	read, err := collect(r.e.t, r.e.store().ReadStream(r.e.ctx(), stream, eventstore.ReadStreamOptions{From: eventstore.FromRevision(first)}))
	if err != nil {
		return fmt.Sprintf("reading the appended events back: %v", err)
	}
	if len(read) != len(evs) {
		return fmt.Sprintf("read back %d events after the append, want %d", len(read), len(evs))
	}
	if st.deleted {
		st.deleted = false
		st.events = nil
	}
	prev := m.lastPos
	for i, ev := range evs {
		p := read[i].Position
		if p <= prev || (i > 0 && r.e.f.GapFreePositions && p != prev+1) {
			return fmt.Sprintf("event %d got position %d after %d", i, p, prev)
		}
		prev = p
		ct := ev.ContentType
		if ct == "" {
			ct = eventstore.ContentTypeBinary
		}
		want := rec{Stream: stream, Revision: first + uint64(i), Position: p, ID: ev.ID,
			Type: ev.Type, ContentType: ct, Data: string(ev.Data), Metadata: string(ev.Metadata)}
		if got := toRec(read[i]); got != want {
			return fmt.Sprintf("event %d reads back differently (-want +got):\n%s", i, cmp.Diff(want, got))
		}
		st.events = append(st.events, want)
		m.live = append(m.live, want)
	}
	if res.Position != prev {
		return fmt.Sprintf("result position %d, but the last event is at %d", res.Position, prev)
	}
	m.lastPos = prev
	st.last = int64(res.Revision)
	m.appends = append(m.appends, modelAppend{stream, x, evs, res})
	return ""
}

// retry repeats an earlier successful append, as is or with one event ID
// changed. It only picks retries whose outcome the contract fixes: the
// events must still be readable where they were written, and for Any and
// StreamExists they must still be the stream's last events. A retry with
// NoStream looks for its events from revision 0, so that of an append that
// recreated a deleted stream, whose events follow the deleted ones, is a
// conflict.
func (r *modelRun) retry() (string, string) {
	if len(r.m.appends) == 0 {
		return "retry", ""
	}
	a := r.m.appends[r.rng.IntN(len(r.m.appends))]
	st := r.m.streams[a.stream]
	evs := a.events
	_, exact := a.expected.Revision()
	partial := r.rng.IntN(3) == 0 && (a.expected.IsNoStream() || exact)
	if partial {
		evs = slices.Clone(evs)
		evs[r.rng.IntN(len(evs))].ID = uuid.New()
	}
	what := fmt.Sprintf("retry of Append(%s, %s, %d events) partial=%v", a.stream, a.expected, len(evs), partial)
	var want error
	switch {
	case st.tombstoned:
		want = &eventstore.TombstonedError{Stream: a.stream}
	case st.deleted:
		return what + " skipped: the stream was deleted", ""
	default:
		first := a.res.Revision + 1 - uint64(len(a.events))
		for i, ev := range a.events {
			j := slices.IndexFunc(st.events, func(e rec) bool { return e.Revision == first+uint64(i) })
			if j < 0 || st.events[j].ID != ev.ID {
				return what + " skipped: the events are gone", ""
			}
		}
		if (a.expected.IsAny() || a.expected.IsStreamExists()) && int64(a.res.Revision) != st.last {
			return what + " skipped: the events are no longer the last", ""
		}
		if partial || a.expected.IsNoStream() && first != 0 {
			want = &eventstore.WrongExpectedRevisionError{Stream: a.stream, Expected: a.expected, Actual: st.current()}
		}
	}
	res, err := r.e.store().Append(r.e.ctx(), a.stream, a.expected, evs...)
	if p := sameError(err, want); p != "" {
		return what, p
	}
	if want == nil && res != a.res {
		return what, fmt.Sprintf("result %+v, want the first result %+v", res, a.res)
	}
	// Nothing was written: the stream's end is where it was.
	if _, p := r.readStreamCompare(a.stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.StreamEnd, Limit: 2}); p != "" {
		return what, "after the retry: " + p
	}
	return what, ""
}

func (r *modelRun) readStreamCompare(stream string, opts eventstore.ReadStreamOptions) (string, string) {
	what := fmt.Sprintf("ReadStream(%s, %+v)", stream, opts)
	got, err := collect(r.e.t, r.e.store().ReadStream(r.e.ctx(), stream, opts))
	want, wantErr := r.m.readStream(stream, opts)
	if p := sameError(err, wantErr); p != "" {
		return what, p
	}
	if diff := diffRecs(want, recs(got)); diff != "" {
		return what, "events differ (-model +store):\n" + diff
	}
	return what, ""
}

func (r *modelRun) readStream() (string, string) {
	stream := r.stream()
	opts := eventstore.ReadStreamOptions{Limit: uint64(r.rng.IntN(6))}
	if r.rng.IntN(2) == 0 {
		opts.Direction = eventstore.Backwards
	}
	last := max(r.m.streams[stream].current(), 0)
	switch r.rng.IntN(3) {
	case 0:
		opts.From = eventstore.StreamEnd
	case 1:
		opts.From = eventstore.FromRevision(uint64(r.rng.Int64N(last + 3)))
	}
	return r.readStreamCompare(stream, opts)
}

func (r *modelRun) randomFilter() eventstore.Filter {
	f := eventstore.Filter{StreamPrefixes: []string{r.e.prefix}}
	switch r.rng.IntN(4) {
	case 1:
		f.StreamPrefixes = []string{r.streams[r.rng.IntN(len(r.streams))]}
	case 2:
		f.StreamPrefixes = []string{r.streams[r.rng.IntN(len(r.streams))], r.streams[r.rng.IntN(len(r.streams))]}
	}
	switch r.rng.IntN(4) {
	case 1:
		f.EventTypePrefixes = []string{"A."}
	case 2:
		f.EventTypePrefixes = []string{"B", "A.x"}
	case 3:
		f.EventTypePrefixes = []string{"C"}
	}
	return f
}

// randomPosition returns the position of a known event (live or removed),
// or, when positions are gap-free, also one next to it.
func (r *modelRun) randomPosition() (uint64, bool) {
	var known []uint64
	for _, ev := range r.m.live {
		known = append(known, ev.Position)
	}
	for _, ev := range r.m.dead {
		known = append(known, ev.Position)
	}
	if len(known) == 0 {
		return 0, false
	}
	slices.Sort(known) // the dead set is a map: sort so that the seed replays

	p := known[r.rng.IntN(len(known))]
	if r.e.f.GapFreePositions {
		p += uint64(r.rng.IntN(3))
	}
	return p, true
}

func (r *modelRun) readAll() (string, string) {
	opts := eventstore.ReadAllOptions{Filter: r.randomFilter(), Limit: uint64(r.rng.IntN(8))}
	if r.rng.IntN(2) == 0 {
		opts.Direction = eventstore.Backwards
		opts.From = eventstore.AllEnd
	}
	if p, ok := r.randomPosition(); ok && r.rng.IntN(2) == 0 {
		opts.From = eventstore.FromPosition(p)
	} else if r.rng.IntN(8) == 0 {
		if opts.Direction == eventstore.Forwards {
			opts.From = eventstore.AllEnd
		} else {
			opts.From = eventstore.AllStart
		}
	}
	what := fmt.Sprintf("ReadAll(%+v)", opts)
	got, err := collect(r.e.t, r.e.store().ReadAll(r.e.ctx(), opts))
	if err != nil {
		return what, err.Error()
	}
	if opts.Direction == eventstore.Backwards && opts.From.IsStart() {
		return what, r.readAllFromStart(opts, got)
	}
	if p := r.m.compareAll(got, opts); p != "" {
		return what, "events differ (-model +store):\n" + p
	}
	return what, ""
}

// readAllFromStart checks what a backwards read from AllStart yielded: the
// first event of the global log if it passes the filter, and nothing else.
// The store may hold other tests' events before this one's, so the first
// event is learned from a forwards read; if it is one of the test's, it must
// be the model's first.
func (r *modelRun) readAllFromStart(opts eventstore.ReadAllOptions, got []eventstore.RecordedEvent) string {
	first, err := collect(r.e.t, r.e.store().ReadAll(r.e.ctx(), eventstore.ReadAllOptions{Limit: 1}))
	if err != nil {
		return "reading the first event forwards: " + err.Error()
	}
	var want []rec
	if len(first) == 1 {
		f := toRec(first[0])
		_, dead := r.m.dead[f.ID]
		live := slices.ContainsFunc(r.m.live, func(ev rec) bool { return ev.ID == f.ID })
		switch {
		case live && f != r.m.live[0]:
			return fmt.Sprintf("the log's first event %s@%d is not the model's first live event", f.Stream, f.Revision)
		case dead && r.m.f.DeletesFromAll:
			return fmt.Sprintf("the log's first event %s@%d was removed", f.Stream, f.Revision)
		}
		if opts.Filter.Match(f.Stream, f.Type) {
			want = []rec{f}
		}
	}
	if diff := diffRecs(want, recs(got)); diff != "" {
		return "events differ (-first event of the log +store):\n" + diff
	}
	return ""
}

// remove deletes or tombstones a stream. NoStream is not used: what it
// means for a removal of a missing stream is left to the backend.
func (r *modelRun) remove(tombstone bool) (string, string) {
	stream := r.stream()
	x := r.expected(stream, false)
	var err error
	what := fmt.Sprintf("DeleteStream(%s, %s)", stream, x)
	if tombstone {
		what = fmt.Sprintf("TombstoneStream(%s, %s)", stream, x)
		err = r.e.store().TombstoneStream(r.e.ctx(), stream, x)
	} else {
		err = r.e.store().DeleteStream(r.e.ctx(), stream, x)
	}
	want := r.m.check(stream, x)
	if p := sameError(err, want); p != "" || want != nil {
		return what, p
	}
	st := r.m.streams[stream]
	if st == nil {
		if !tombstone {
			return what, ""
		}
		st = &modelStream{last: eventstore.NoRevision}
		r.m.streams[stream] = st
	}
	r.m.kill(st.events)
	st.events = nil
	st.deleted = true
	st.tombstoned = tombstone
	return what, ""
}

func (r *modelRun) truncate() (string, string) {
	stream := r.stream()
	before := uint64(r.rng.Int64N(max(r.m.streams[stream].current(), 0) + 2))
	what := fmt.Sprintf("TruncateBefore(%s, %d)", stream, before)
	err := r.e.store().TruncateBefore(r.e.ctx(), stream, before)
	st := r.m.streams[stream]
	var want error
	switch {
	case st != nil && st.tombstoned:
		want = &eventstore.TombstonedError{Stream: stream}
	case st.current() == eventstore.NoRevision:
		want = &eventstore.NotFoundError{Stream: stream}
	}
	if p := sameError(err, want); p != "" || want != nil {
		return what, p
	}
	n := 0
	for n < len(st.events) && st.events[n].Revision < before {
		n++
	}
	r.m.kill(st.events[:n])
	st.events = slices.Clone(st.events[n:])
	return what, ""
}

// subscribe catches a subscription up on what is stored and compares it
// with the model: a stream subscription from a random checkpoint, or a
// filtered global one.
func (r *modelRun) subscribe() (string, string) {
	if r.rng.IntN(2) == 0 {
		stream := r.stream()
		want, err := r.m.readStream(stream, eventstore.ReadStreamOptions{})
		if err != nil || len(want) == 0 {
			return "SubscribeToStream skipped: nothing to read", ""
		}
		from := eventstore.StreamStart
		if k := r.rng.IntN(len(want) + 1); k > 0 {
			from = eventstore.FromRevision(want[k-1].Revision)
			want = want[k:]
		}
		what := fmt.Sprintf("SubscribeToStream(%s, %+v)", stream, from)
		if len(want) == 0 {
			return what + " skipped: nothing after the checkpoint", ""
		}
		c := r.e.subscribeStream(stream, eventstore.SubscribeStreamOptions{From: from})
		c.waitFor(len(want))
		c.stop()
		got, _ := c.snapshot()
		if diff := diffRecs(want, recs(got)); diff != "" {
			return what, "events differ (-model +store):\n" + diff
		}
		return what, ""
	}

	opts := eventstore.SubscribeAllOptions{Filter: r.randomFilter()}
	if p, ok := r.randomPosition(); ok && r.rng.IntN(2) == 0 {
		opts.From = eventstore.FromPosition(p)
	}
	after, _ := opts.From.Position()
	var want []rec
	for _, ev := range r.m.live {
		if ev.Position > after && opts.Filter.Match(ev.Stream, ev.Type) {
			want = append(want, ev)
		}
	}
	what := fmt.Sprintf("SubscribeToAll(%+v)", opts)
	if len(want) == 0 {
		return what + " skipped: nothing to receive", ""
	}
	c := r.e.subscribeAll(opts)
	// Removed events may come too when the store keeps them in the global
	// log, so wait until the last live one has arrived.
	lastID := want[len(want)-1].ID
	for n := len(want); ; {
		got := c.waitFor(n)
		if slices.ContainsFunc(got, func(ev eventstore.RecordedEvent) bool { return ev.ID == lastID }) {
			break
		}
		n = len(got) + 1
	}
	c.stop()
	got, _ := c.snapshot()
	var live []rec
	for _, ev := range got {
		if d, dead := r.m.dead[ev.ID]; dead && !r.e.f.DeletesFromAll && d.Position > after && opts.Filter.Match(d.Stream, d.Type) {
			continue
		}
		live = append(live, toRec(ev))
	}
	if diff := diffRecs(want, live); diff != "" {
		return what, "events differ (-model +store):\n" + diff
	}
	return what, ""
}

// checkEverything reads every stream and the whole of the test's global log
// and compares them with the model.
func (r *modelRun) checkEverything() (string, string) {
	for _, s := range r.streams {
		if what, p := r.readStreamCompare(s, eventstore.ReadStreamOptions{}); p != "" {
			return "full check: " + what, p
		}
	}
	opts := eventstore.ReadAllOptions{Filter: r.e.ours()}
	got, err := collect(r.e.t, r.e.store().ReadAll(r.e.ctx(), opts))
	if err != nil {
		return "full check: ReadAll", err.Error()
	}
	if p := r.m.compareAll(got, opts); p != "" {
		return "full check: ReadAll", "events differ (-model +store):\n" + p
	}
	return "", ""
}

// diffRecs is cmp.Diff for event lists, treating nil and empty alike. It
// compares with == first: the model compares thousands of lists, and cmp's
// reflection is only worth paying for the one that differs.
func diffRecs(want, got []rec) string {
	if slices.Equal(want, got) {
		return ""
	}
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}
