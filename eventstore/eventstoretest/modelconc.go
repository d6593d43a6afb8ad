package eventstoretest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// attempt is one append of the concurrent model-based test and its outcome.
type attempt struct {
	stream   string
	expected eventstore.ExpectedRevision
	events   []eventstore.EventData
	res      eventstore.AppendResult
	err      error
}

// testModelConcurrent runs random appends, retries and reads from several
// goroutines on a few shared streams while subscribers follow, then checks
// the outcome as a whole: every successful append is stored exactly once at
// the revision and position it reported, failed ones are absent, the global
// log is the union of the successes in position order, and every subscriber
// saw exactly that.
func (su *suite) testModelConcurrent(t *testing.T) {
	seed := modelSeed(t)
	e := su.env(t)
	workers, ops := 6, 250
	if testing.Short() {
		workers, ops = 3, 60
	}
	streams := make([]string, 4)
	for i := range streams {
		streams[i] = e.stream(fmt.Sprint("c", i))
	}

	early := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
	byStream := e.subscribeStream(streams[0], eventstore.SubscribeStreamOptions{})
	var late *collector

	var (
		mu       sync.Mutex
		attempts []attempt
		wg       sync.WaitGroup
	)
	record := func(a attempt) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, a)
	}
	problems := make(chan string, workers)
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			if p := concurrentWorker(e, w, rng, ops, streams, record, func() {
				late = e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
			}); p != "" {
				problems <- fmt.Sprintf("seed %d, worker %d: %s", seed, w, p)
			}
		})
	}
	wg.Wait()
	close(problems)
	for p := range problems {
		t.Fatal(p)
	}

	// The stored state, as the reads see it.
	all := e.readAll(eventstore.ReadAllOptions{})
	e.checkPositions(all)
	at := map[uuid.UUID]eventstore.RecordedEvent{}
	for _, ev := range all {
		if _, dup := at[ev.ID]; dup {
			t.Fatalf("seed %d: event %v is in the global log twice", seed, ev.ID)
		}
		at[ev.ID] = ev
	}
	perStream := map[string][]eventstore.RecordedEvent{}
	for _, s := range streams {
		evs, err := e.readStream(s, eventstore.ReadStreamOptions{})
		if err != nil && !isNotFound(err) {
			t.Fatal(err)
		}
		if diff := cmp.Diff(span(0, uint64(len(evs))-1), revisions(evs)); len(evs) > 0 && diff != "" {
			t.Fatalf("seed %d: %s has gaps (-want +got):\n%s", seed, s, diff)
		}
		perStream[s] = evs
	}

	// Every successful append is there once, where it said; failed ones are
	// not there at all.
	var union []eventstore.RecordedEvent
	for i, a := range attempts {
		if a.err != nil {
			// Every attempt has fresh event IDs (retries are not recorded),
			// so none of a failed attempt's events may be stored.
			for _, ev := range a.events {
				if _, found := at[ev.ID]; found {
					t.Fatalf("seed %d: append %d failed (%v) but its event %v is stored", seed, i, a.err, ev.ID)
				}
			}
			continue
		}
		n := uint64(len(a.events))
		for j, ev := range a.events {
			got, ok := at[ev.ID]
			wantRev := a.res.Revision - (n - 1 - uint64(j))
			if !ok || got.Stream != a.stream || got.Revision != wantRev {
				t.Fatalf("seed %d: append %d event %d: stored as %s@%d (found %v), want %s@%d", seed, i, j, got.Stream, got.Revision, ok, a.stream, wantRev)
			}
			if j == len(a.events)-1 && got.Position != a.res.Position {
				t.Fatalf("seed %d: append %d reported position %d, its last event is at %d", seed, i, a.res.Position, got.Position)
			}
			union = append(union, got)
		}
		e.checkBatchPositions(union[len(union)-len(a.events):])
	}
	slices.SortFunc(union, func(a, b eventstore.RecordedEvent) int { return cmpUint(a.Position, b.Position) })
	if diff := cmp.Diff(recs(union), recs(all)); diff != "" {
		t.Fatalf("seed %d: the global log is not the successful appends in position order (-appends +log):\n%s", seed, diff)
	}
	for _, s := range streams {
		var fromAll []eventstore.RecordedEvent
		for _, ev := range all {
			if ev.Stream == s {
				fromAll = append(fromAll, ev)
			}
		}
		if diff := cmp.Diff(recs(fromAll), recs(perStream[s])); diff != "" {
			t.Fatalf("seed %d: %s differs between ReadAll and ReadStream (-all +stream):\n%s", seed, s, diff)
		}
	}

	// Every subscriber saw exactly the same sequence.
	for name, c := range map[string]*collector{"early": early, "late": late} {
		c.waitFor(len(all))
		c.stop()
		got, _ := c.snapshot()
		if diff := cmp.Diff(recs(all), recs(got)); diff != "" {
			t.Fatalf("seed %d: the %s subscription differs from ReadAll (-log +subscription):\n%s", seed, name, diff)
		}
	}
	want := perStream[streams[0]]
	byStream.waitFor(len(want))
	byStream.stop()
	got, _ := byStream.snapshot()
	if diff := cmp.Diff(recs(want), recs(got)); diff != "" {
		t.Fatalf("seed %d: the stream subscription differs from ReadStream (-stream +subscription):\n%s", seed, diff)
	}
	ok, failed := 0, 0
	for _, a := range attempts {
		if a.err == nil {
			ok++
		} else {
			failed++
		}
	}
	t.Logf("%d appends succeeded, %d failed; %d events", ok, failed, len(all))
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// concurrentWorker runs one goroutine's share of the concurrent model-based
// test. It checks what it can on its own (the kind of each error, that reads
// are ordered) and records every append for the final check.
func concurrentWorker(e *env, w int, rng *rand.Rand, ops int, streams []string,
	record func(attempt), halfway func()) string {
	lastSeen := map[string]int64{}
	var mine []attempt // this worker's successful first appends
	for i := range ops {
		if w == 0 && i == ops/2 {
			halfway()
		}
		s := streams[rng.IntN(len(streams))]
		switch n := rng.IntN(100); {
		case n < 55:
			x := eventstore.Any
			switch k := rng.IntN(20); {
			case k < 7:
				if last, ok := lastSeen[s]; ok && last != eventstore.NoRevision {
					x = eventstore.Exact(uint64(last))
				}
			case k < 9:
				x = eventstore.NoStream
			case k < 10:
				x = eventstore.StreamExists
			}
			evs := newEvents(1+rng.IntN(3), fmt.Sprint("W", w))
			res, err := e.store().Append(e.ctx(), s, x, evs...)
			a := attempt{stream: s, expected: x, events: evs, res: res, err: err}
			record(a)
			var werr *eventstore.WrongExpectedRevisionError
			switch {
			case err == nil:
				lastSeen[s] = int64(res.Revision)
				mine = append(mine, a)
			case x.IsAny():
				return fmt.Sprintf("Append(%s, any) failed: %v", s, err)
			case !errors.As(err, &werr) || werr.Stream != s || werr.Expected != x || matches(x, werr.Actual):
				return fmt.Sprintf("Append(%s, %s) failed with %v, want a WrongExpectedRevisionError whose actual revision contradicts the expected one", s, x, err)
			default:
				lastSeen[s] = werr.Actual
			}
		case n < 62 && len(mine) > 0:
			// Retry one of this worker's exact or no-stream appends: with
			// no deletions in this test, its events stay where they are.
			a := mine[rng.IntN(len(mine))]
			if a.expected.IsAny() || a.expected.IsStreamExists() {
				continue
			}
			res, err := e.store().Append(e.ctx(), a.stream, a.expected, a.events...)
			if err != nil {
				return fmt.Sprintf("retry of Append(%s, %s): %v", a.stream, a.expected, err)
			}
			if res != a.res {
				return fmt.Sprintf("retry of Append(%s, %s) returned %+v, the first %+v", a.stream, a.expected, res, a.res)
			}
		case n < 85:
			evs, err := collect(e.t, e.store().ReadStream(e.ctx(), s, eventstore.ReadStreamOptions{}))
			if err != nil && !isNotFound(err) {
				return fmt.Sprintf("ReadStream(%s): %v", s, err)
			}
			for j, ev := range evs {
				if ev.Revision != uint64(j) || j > 0 && ev.Position <= evs[j-1].Position {
					return fmt.Sprintf("ReadStream(%s) event %d is revision %d at position %d", s, j, ev.Revision, ev.Position)
				}
			}
			if len(evs) > 0 {
				lastSeen[s] = int64(evs[len(evs)-1].Revision)
			}
		default:
			opts := eventstore.ReadAllOptions{Filter: e.ours(), Limit: uint64(rng.IntN(50))}
			if rng.IntN(2) == 0 {
				opts.Direction, opts.From = eventstore.Backwards, eventstore.AllEnd
			}
			evs, err := collect(e.t, e.store().ReadAll(e.ctx(), opts))
			if err != nil {
				return fmt.Sprintf("ReadAll: %v", err)
			}
			for j := 1; j < len(evs); j++ {
				if (opts.Direction == eventstore.Forwards) != (evs[j].Position > evs[j-1].Position) {
					return fmt.Sprintf("ReadAll(%+v) out of order at %d", opts, j)
				}
			}
		}
	}
	return ""
}
