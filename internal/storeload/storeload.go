// Package storeload generates load on an eventstore.Store and measures it.
//
// It is the shared workload behind eventstoretest.Benchmark and the bench/
// program, so both measure the same thing on every backend. It does not
// import testing. Every function checks the answer it gets (counts,
// revisions, order) and returns an error on a wrong one: a fast store that
// loses or reorders events must not produce a number.
//
// Stream names start with a random prefix per call, so the functions can run
// against a shared server that holds other data.
package storeload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// Result is what a load run measured.
type Result struct {
	// Events is how many events were written or read.
	Events  int
	Elapsed time.Duration
	// P50 and P99 are latencies of single operations (one Append); they
	// are zero for reads and subscriptions, which are one long operation.
	P50, P99 time.Duration
	// Latencies are the latencies of every single operation, sorted, so
	// that the percentiles of several runs can be taken together; nil for
	// reads and subscriptions.
	Latencies []time.Duration
}

// Percentile returns the pct-th percentile (0 to 100) of sorted latencies,
// or zero when there are none.
func Percentile(sorted []time.Duration, pct int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)*pct/100, len(sorted)-1)]
}

// EventsPerSecond is the throughput of the run.
func (r Result) EventsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// PayloadSize is the size of each event's data.
const PayloadSize = 100

// eventType is the type of every generated event.
const eventType = "storeload.Event"

func newPrefix() string {
	return fmt.Sprintf("load%012x-", rand.Uint64()&(1<<48-1))
}

// payload returns PayloadSize bytes of JSON naming the event's place, so
// that payloads differ like real ones do.
func payload(writer, seq int) []byte {
	b := make([]byte, 0, PayloadSize)
	b = fmt.Appendf(b, `{"writer":%d,"seq":%d,"pad":"`, writer, seq)
	for len(b) < PayloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

func newEvents(writer, seq, n int) []eventstore.EventData {
	evs := make([]eventstore.EventData, n)
	for i := range evs {
		evs[i] = eventstore.EventData{
			ID:          uuid.New(),
			Type:        eventType,
			ContentType: eventstore.ContentTypeJSON,
			Data:        payload(writer, seq+i),
		}
	}
	return evs
}

// Append runs writers goroutines, each appending batches of eventsPerAppend
// events (payload ~100 bytes) to its own stream with the exact expected
// revision, as an orchestration grain does, until total events are written.
// It returns the throughput and the latency percentiles of the appends, and
// checks that every stream holds exactly what its writer appended.
func Append(ctx context.Context, s eventstore.Store, writers, eventsPerAppend, total int) (Result, error) {
	_, res, err := appendLoad(ctx, s, newPrefix(), writers, eventsPerAppend, total)
	return res, err
}

func appendLoad(ctx context.Context, s eventstore.Store, prefix string, writers, eventsPerAppend, total int) ([]string, Result, error) {
	if writers < 1 || eventsPerAppend < 1 || total < 0 {
		return nil, Result{}, fmt.Errorf("storeload: invalid load: %d writers, %d events per append, %d in total", writers, eventsPerAppend, total)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		claimed   atomic.Int64 // events handed out to writers so far
		wg        sync.WaitGroup
		latencies = make([][]time.Duration, writers)
		written   = make([]int, writers)
		streams   = make([]string, writers)
	)
	// claim hands out the next batch, shorter at the very end so that
	// exactly total events are written.
	claim := func() int {
		for {
			c := claimed.Load()
			n := min(int64(eventsPerAppend), int64(total)-c)
			if n <= 0 {
				return 0
			}
			if claimed.CompareAndSwap(c, c+n) {
				return int(n)
			}
		}
	}
	start := time.Now()
	for w := range writers {
		streams[w] = fmt.Sprintf("%sw%d", prefix, w)
		wg.Go(func() {
			expected := eventstore.NoStream
			for n := claim(); n > 0; n = claim() {
				evs := newEvents(w, written[w], n)
				t0 := time.Now()
				res, err := s.Append(ctx, streams[w], expected, evs...)
				latencies[w] = append(latencies[w], time.Since(t0))
				if err != nil {
					cancel(fmt.Errorf("storeload: writer %d: %w", w, err))
					return
				}
				written[w] += n
				if want := uint64(written[w] - 1); res.Revision != want {
					cancel(fmt.Errorf("storeload: writer %d: append returned revision %d, want %d", w, res.Revision, want))
					return
				}
				expected = eventstore.Exact(res.Revision)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, Result{}, err
	}

	sum := 0
	for w, n := range written {
		sum += n
		if n == 0 {
			continue
		}
		last, err := lastRevision(ctx, s, streams[w])
		if err != nil {
			return nil, Result{}, err
		}
		if last != uint64(n-1) {
			return nil, Result{}, fmt.Errorf("storeload: %s ends at revision %d after %d events were appended", streams[w], last, n)
		}
	}
	if sum != total {
		return nil, Result{}, fmt.Errorf("storeload: %d events written, want %d", sum, total)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	res := Result{
		Events:    total,
		Elapsed:   elapsed,
		P50:       Percentile(all, 50),
		P99:       Percentile(all, 99),
		Latencies: all,
	}
	return streams, res, nil
}

func lastRevision(ctx context.Context, s eventstore.Store, stream string) (uint64, error) {
	for ev, err := range s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{
		Direction: eventstore.Backwards, From: eventstore.StreamEnd, Limit: 1,
	}) {
		if err != nil {
			return 0, fmt.Errorf("storeload: reading the end of %s: %w", stream, err)
		}
		return ev.Revision, nil
	}
	return 0, fmt.Errorf("storeload: %s is empty", stream)
}

// fillBatch is how many events the fill functions append at once: large
// enough to fill quickly, far below the default append size limit.
const fillBatch = 1000

// FillStream writes n events into one new stream and returns its name.
func FillStream(ctx context.Context, s eventstore.Store, n int) (string, error) {
	streams, _, err := appendLoad(ctx, s, newPrefix(), 1, fillBatch, n)
	if err != nil {
		return "", err
	}
	return streams[0], nil
}

// ReadStream reads stream from its start to its end and checks that it
// holds exactly n events, in revision order from 0.
func ReadStream(ctx context.Context, s eventstore.Store, stream string, n int) (Result, error) {
	start := time.Now()
	count := 0
	for ev, err := range s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
		if err != nil {
			return Result{}, fmt.Errorf("storeload: reading %s: %w", stream, err)
		}
		if ev.Revision != uint64(count) {
			return Result{}, fmt.Errorf("storeload: event %d of %s has revision %d", count, stream, ev.Revision)
		}
		if len(ev.Data) != PayloadSize {
			return Result{}, fmt.Errorf("storeload: event %d of %s has %d bytes of data, want %d", count, stream, len(ev.Data), PayloadSize)
		}
		count++
	}
	elapsed := time.Since(start)
	if count != n {
		return Result{}, fmt.Errorf("storeload: read %d events of %s, want %d", count, stream, n)
	}
	return Result{Events: n, Elapsed: elapsed}, nil
}

// FillAll writes n events to the global log, spread over several streams
// written concurrently, and returns the filter that selects exactly them.
func FillAll(ctx context.Context, s eventstore.Store, n int) (eventstore.Filter, error) {
	prefix := newPrefix()
	if _, _, err := appendLoad(ctx, s, prefix, 8, 100, n); err != nil {
		return eventstore.Filter{}, err
	}
	return eventstore.Filter{StreamPrefixes: []string{prefix}}, nil
}

// CatchUp subscribes to the global log from its start with filter and
// measures how fast the subscription delivers the first n matching events.
// It checks that they come in strictly increasing position, each matching
// the filter, and that no stream's revisions go backwards or repeat.
func CatchUp(ctx context.Context, s eventstore.Store, filter eventstore.Filter, n int) (Result, error) {
	if n <= 0 {
		return Result{}, fmt.Errorf("storeload: a catch-up needs at least one event, got %d", n)
	}
	// Breaking out of the loop ends the subscription; the context only
	// bounds it if the store never delivers.
	start := time.Now()
	count := 0
	var last uint64
	next := map[string]uint64{}
	for ev, err := range s.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{Filter: filter}) {
		if err != nil {
			return Result{}, fmt.Errorf("storeload: subscription after %d of %d events: %w", count, n, err)
		}
		switch {
		case count > 0 && ev.Position <= last:
			return Result{}, fmt.Errorf("storeload: event %d at position %d after %d", count, ev.Position, last)
		case !filter.Match(ev.Stream, ev.Type):
			return Result{}, fmt.Errorf("storeload: event %d of stream %q does not match the filter", count, ev.Stream)
		case ev.Revision != next[ev.Stream]:
			return Result{}, fmt.Errorf("storeload: %s@%d came when revision %d was due", ev.Stream, ev.Revision, next[ev.Stream])
		}
		last = ev.Position
		next[ev.Stream] = ev.Revision + 1
		if count++; count == n {
			break
		}
	}
	elapsed := time.Since(start)
	if count != n {
		return Result{}, fmt.Errorf("storeload: subscription ended after %d of %d events", count, n)
	}
	return Result{Events: n, Elapsed: elapsed}, nil
}
