package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// collector drains a subscription in a goroutine of its own, keeping what it
// receives, so that a test can append while the subscriber keeps up and
// then wait for the events it expects.
type collector struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	// progress gets a value (without blocking) after each event.
	progress chan struct{}

	mu     sync.Mutex
	events []eventstore.RecordedEvent
	err    error
}

// subscribeWith starts a collector on the subscription that open returns for
// a context the collector cancels when stopped. The collector is stopped when
// the test ends at the latest.
func (e *env) subscribeWith(open func(ctx context.Context) iter.Seq2[eventstore.RecordedEvent, error]) *collector {
	ctx, cancel := context.WithCancel(e.ctx())
	c := &collector{t: e.t, cancel: cancel, done: make(chan struct{}), progress: make(chan struct{}, 1)}
	seq := open(ctx)
	go func() {
		defer close(c.done)
		for ev, err := range seq {
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.events = append(c.events, ev)
			}
			c.mu.Unlock()
			select {
			case c.progress <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	e.t.Cleanup(c.stopQuietly)
	return c
}

func (e *env) subscribeStream(stream string, opts eventstore.SubscribeStreamOptions) *collector {
	return e.subscribeWith(func(ctx context.Context) iter.Seq2[eventstore.RecordedEvent, error] {
		return e.store().SubscribeToStream(ctx, stream, opts)
	})
}

func (e *env) subscribeAll(opts eventstore.SubscribeAllOptions) *collector {
	return e.subscribeWith(func(ctx context.Context) iter.Seq2[eventstore.RecordedEvent, error] {
		return e.store().SubscribeToAll(ctx, opts)
	})
}

// snapshot returns what the collector has received so far and the error
// that ended the subscription, if any.
func (c *collector) snapshot() ([]eventstore.RecordedEvent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events), c.err
}

// waitFor waits until the collector holds at least n events and returns all
// it holds. It fails the test if the subscription ends first, or if no event
// arrives for waitTimeout (the timeout restarts with each event, so a long
// catch-up that makes progress is not cut short).
func (c *collector) waitFor(n int) []eventstore.RecordedEvent {
	c.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		evs, err := c.snapshot()
		if len(evs) >= n {
			return evs
		}
		if err != nil {
			c.t.Fatalf("subscription ended after %d of %d events: %v", len(evs), n, err)
		}
		select {
		case <-c.progress:
			timer.Reset(waitTimeout)
		case <-c.done:
			if evs, err := c.snapshot(); len(evs) < n && err == nil {
				c.t.Fatalf("subscription ended after %d of %d events without an error", len(evs), n)
			}
		case <-timer.C:
			c.t.Fatalf("no event for %v; %d of %d events arrived", waitTimeout, len(evs), n)
		}
	}
}

// wait waits for the subscription to end by itself and returns its error.
func (c *collector) wait() error {
	c.t.Helper()
	waitDone(c.t, c.done, "the subscription to end")
	_, err := c.snapshot()
	return err
}

// stop cancels the subscription and waits for its goroutine to return.
func (c *collector) stop() {
	c.t.Helper()
	c.cancel()
	waitDone(c.t, c.done, "the subscription to stop")
}

func (c *collector) stopQuietly() {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		c.t.Errorf("a subscription did not end within %v of its context being cancelled", waitTimeout)
	}
}

// goLive makes sure a subscription from the end is running: it appends probe
// events (with probe) until the first comes through, because the contract
// has no signal for "the subscription has started". It returns the IDs of
// the probes appended, in order.
//
// Before the first probe it gives the subscription one probeInterval to
// start. That is not needed for correctness, since any interleaving is
// checked exactly, but it makes it likely that the subscription starts
// while the old events are the stream's last ones, which is when a store
// that wrongly delivers the event at the end is caught. Anything that
// arrives in that interval is returned to checkFromEnd as is.
func goLive(t testing.TB, c *collector, probe func() uuid.UUID) []uuid.UUID {
	t.Helper()
	quiet := time.NewTimer(probeInterval)
	select {
	case <-c.progress:
		quiet.Stop()
		return nil
	case <-quiet.C:
	}
	deadline := time.Now().Add(waitTimeout)
	var probes []uuid.UUID
	for time.Now().Before(deadline) {
		probes = append(probes, probe())
		timer := time.NewTimer(probeInterval)
		select {
		case <-c.progress:
		case <-timer.C:
		}
		timer.Stop()
		if evs, err := c.snapshot(); len(evs) > 0 || err != nil {
			if err != nil {
				t.Fatalf("subscription ended while going live: %v", err)
			}
			return probes
		}
	}
	t.Fatalf("no probe reached the subscription within %v", waitTimeout)
	return nil
}

// checkFromEnd waits for what a subscription from the end must receive
// after goLive and the later appends, and checks it: not one event appended
// before it started, and from its first event (a probe) on, every later
// event in order.
func checkFromEnd(t testing.TB, c *collector, old, probes, later []uuid.UUID) {
	t.Helper()
	got := c.waitFor(1)
	if k := slices.Index(probes, got[0].ID); k >= 0 {
		got = c.waitFor(len(probes) - k + len(later))
	}
	for _, ev := range got {
		if slices.Contains(old, ev.ID) {
			t.Fatalf("a subscription from the end received event %v, appended before it started", ev.ID)
		}
	}
	first := slices.Index(probes, got[0].ID)
	if first < 0 {
		t.Fatalf("the first event received, %v, is not a probe", got[0].ID)
	}
	want := append(slices.Clone(probes[first:]), later...)
	if diff := cmp.Diff(want, ids(got)); diff != "" {
		t.Fatalf("events after going live (-want +got):\n%s", diff)
	}
}

// wantCancelled checks that err ends a subscription whose context was
// cancelled.
func wantCancelled(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("subscription ended with %v, want an error matching context.Canceled", err)
	}
}

// testSubscribeToStream covers stream subscriptions.
func (su *suite) testSubscribeToStream(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("FromStartCatchesUpThenFollows", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		first := newEvents(5, "T")
		e.append(s, eventstore.NoStream, first...)
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{From: eventstore.StreamStart})
		c.waitFor(5)
		later := newEvents(3, "T")
		e.append(s, eventstore.Exact(4), later[:1]...)
		e.append(s, eventstore.Exact(5), later[1:]...)
		got := c.waitFor(8)
		if diff := cmp.Diff(span(0, 7), revisions(got)); diff != "" {
			t.Fatalf("revisions (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(append(dataIDs(first), dataIDs(later)...), ids(got)); diff != "" {
			t.Fatalf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("FromCheckpointIsExclusive", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		evs := newEvents(5, "T")
		e.append(s, eventstore.NoStream, evs...)
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{From: eventstore.FromRevision(2)})
		c.waitFor(2)
		more := newEvents(2, "T")
		e.append(s, eventstore.Exact(4), more...)
		got := c.waitFor(4)
		if diff := cmp.Diff(span(3, 6), revisions(got)); diff != "" {
			t.Fatalf("revisions after checkpoint 2 (-want +got):\n%s", diff)
		}
	})

	t.Run("FromEndGetsOnlyNewEvents", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		old := newEvents(3, "T")
		e.append(s, eventstore.NoStream, old...)
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{From: eventstore.StreamEnd})
		probes := goLive(t, c, func() uuid.UUID {
			ev := newEvent("Probe")
			e.append(s, eventstore.Any, ev)
			return ev.ID
		})
		later := newEvents(3, "T")
		e.append(s, eventstore.Any, later...)
		checkFromEnd(t, c, dataIDs(old), probes, dataIDs(later))
	})

	t.Run("StreamCreatedLater", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("later")
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
		evs := newEvents(3, "T")
		e.append(s, eventstore.NoStream, evs...)
		got := c.waitFor(3)
		if diff := cmp.Diff(dataIDs(evs), ids(got)); diff != "" {
			t.Fatalf("events (-want +got):\n%s", diff)
		}
		// A subscription from the end of a missing stream follows it once
		// it is created.
		s2 := e.stream("later-from-end")
		c2 := e.subscribeStream(s2, eventstore.SubscribeStreamOptions{From: eventstore.StreamEnd})
		probes := goLive(t, c2, func() uuid.UUID {
			ev := newEvent("Probe")
			e.append(s2, eventstore.Any, ev)
			return ev.ID
		})
		later := newEvents(2, "T")
		e.append(s2, eventstore.Any, later...)
		checkFromEnd(t, c2, nil, probes, dataIDs(later))
	})

	t.Run("HandoverUnderConcurrentAppends", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("busy")
		testStreamHandover(t, e, s)
	})

	t.Run("CancelEndsWithContextError", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		e.append(s, eventstore.NoStream, newEvents(2, "T")...)
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
		c.waitFor(2)
		c.cancel()
		wantCancelled(t, c.wait())
		// Also while waiting for a stream that does not exist.
		c2 := e.subscribeStream(e.stream("missing"), eventstore.SubscribeStreamOptions{})
		c2.cancel()
		wantCancelled(t, c2.wait())
	})

	t.Run("BreakEnds", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		e.append(s, eventstore.NoStream, newEvents(4, "T")...)
		n := 0
		for _, err := range e.store().SubscribeToStream(e.ctx(), s, eventstore.SubscribeStreamOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 2 {
				break
			}
		}
		e.append(s, eventstore.Exact(3), newEvent("T"))
	})

	t.Run("TombstonedStream", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		e.append(s, eventstore.NoStream, newEvents(1, "T")...)
		if err := e.store().TombstoneStream(e.ctx(), s, eventstore.Any); err != nil {
			t.Fatal(err)
		}
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
		wantTombstoned(t, c.wait(), s)
	})

	t.Run("SlowSubscriberDoesNotBlockWriters", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		testSlowSubscriber(t, e, func(ctx context.Context) iter.Seq2[eventstore.RecordedEvent, error] {
			return e.store().SubscribeToStream(ctx, s, eventstore.SubscribeStreamOptions{})
		}, func(evs []eventstore.EventData) error {
			_, err := e.store().Append(e.ctx(), s, eventstore.Any, evs...)
			return err
		})
	})
}

// testStreamHandover starts a subscription to a stream from its start while
// writers append to it, so that the subscription moves from catching up to
// following in the middle of the appends, and checks it receives the stream
// exactly: every revision once, in order.
func testStreamHandover(t *testing.T, e *env, s string) {
	writers, perWriter := 4, 150
	if testing.Short() {
		writers, perWriter = 3, 50
	}
	e.append(s, eventstore.NoStream, newEvents(50, "Initial")...)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	started := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-started
			for i := 0; i < perWriter; {
				n := min(1+i%3, perWriter-i)
				if _, err := e.store().Append(e.ctx(), s, eventstore.Any, newEvents(n, "Live")...); err != nil {
					errs <- err
					return
				}
				i += n
			}
		})
	}
	close(started)
	c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{From: eventstore.StreamStart})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 50 + writers*perWriter
	got := c.waitFor(total)
	c.stop()
	if diff := cmp.Diff(span(0, uint64(total)-1), revisions(got)); diff != "" {
		t.Fatalf("the subscription skipped, repeated or reordered revisions (-want +got):\n%s", diff)
	}
	want := e.mustReadStream(s, eventstore.ReadStreamOptions{})
	if diff := cmp.Diff(ids(want), ids(got)); diff != "" {
		t.Fatalf("the subscription differs from a read of the stream (-read +subscription):\n%s", diff)
	}
}

// testSlowSubscriber stalls a subscriber after its first event and checks
// that thousands of appends still complete while it does not read, and that
// it then receives everything in order.
func testSlowSubscriber(t *testing.T, e *env, open func(ctx context.Context) iter.Seq2[eventstore.RecordedEvent, error], appendEvents func([]eventstore.EventData) error) {
	total, batch := 5000, 10
	if testing.Short() {
		total = 2000
	}
	first := newEvent("First")
	if err := appendEvents([]eventstore.EventData{first}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(e.ctx())
	defer cancel()
	received := make(chan eventstore.RecordedEvent) // unbuffered: the subscriber stalls until the test reads
	subErr := make(chan error, 1)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		for ev, err := range open(ctx) {
			if err != nil {
				subErr <- err
				return
			}
			select {
			case received <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	next := func() eventstore.RecordedEvent {
		t.Helper()
		select {
		case ev := <-received:
			return ev
		case err := <-subErr:
			t.Fatalf("subscription ended: %v", err)
		case <-timer.C:
			t.Fatalf("timed out waiting for the subscription")
		}
		panic("unreachable")
	}
	if ev := next(); ev.ID != first.ID {
		t.Fatalf("first event %v, want %v", ev.ID, first.ID)
	}

	// The subscriber now blocks handing over its next event. The appends
	// must all complete regardless; a store that pushes into a bounded
	// buffer per subscriber would hang here until the timeout.
	appended := make([]uuid.UUID, 0, total)
	appendsDone := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += batch {
			evs := newEvents(batch, "Bulk")
			if err := appendEvents(evs); err != nil {
				appendsDone <- err
				return
			}
			appended = append(appended, dataIDs(evs)...)
		}
		appendsDone <- nil
	}()
	select {
	case err := <-appendsDone:
		if err != nil {
			t.Fatalf("append while a subscriber was stalled: %v", err)
		}
	case <-timer.C:
		t.Fatalf("%d appends did not complete within %v while a subscriber was stalled", total/batch, waitTimeout)
	}

	for i, id := range appended {
		if ev := next(); ev.ID != id {
			t.Fatalf("after the stall, event %d is %v, want %v", i, ev.ID, id)
		}
	}
	cancel()
	waitDone(t, subDone, "the stalled subscription to end")
}

// testSubscribeToAll covers subscriptions to the global log.
func (su *suite) testSubscribeToAll(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("FromStartCatchesUpThenFollows", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		a, b := e.stream("a"), e.stream("b")
		var want []uuid.UUID
		for i := range 4 {
			evs := newEvents(1+i, "T")
			e.append([]string{a, b}[i%2], eventstore.Any, evs...)
			want = append(want, dataIDs(evs)...)
		}
		c := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
		c.waitFor(len(want))
		for i := range 3 {
			evs := newEvents(2, "T")
			e.append([]string{a, b}[i%2], eventstore.Any, evs...)
			want = append(want, dataIDs(evs)...)
		}
		got := c.waitFor(len(want))
		if diff := cmp.Diff(want, ids(got)); diff != "" {
			t.Fatalf("events (-want +got):\n%s", diff)
		}
		e.checkPositions(got)
		if diff := cmp.Diff(recs(e.readAll(eventstore.ReadAllOptions{})), recs(got)); diff != "" {
			t.Fatalf("subscription differs from ReadAll (-read +subscription):\n%s", diff)
		}
	})

	t.Run("FromCheckpointIsExclusive", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		e.append(s, eventstore.NoStream, newEvents(5, "T")...)
		all := e.readAll(eventstore.ReadAllOptions{})
		c := e.subscribeAll(eventstore.SubscribeAllOptions{From: eventstore.FromPosition(all[2].Position), Filter: e.ours()})
		got := c.waitFor(2)
		if diff := cmp.Diff(ids(all[3:]), ids(got)); diff != "" {
			t.Fatalf("events after checkpoint (-want +got):\n%s", diff)
		}
	})

	t.Run("FromEndGetsOnlyNewEvents", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		old := newEvents(3, "T")
		e.append(s, eventstore.NoStream, old...)
		c := e.subscribeAll(eventstore.SubscribeAllOptions{From: eventstore.AllEnd, Filter: e.ours()})
		probes := goLive(t, c, func() uuid.UUID {
			ev := newEvent("Probe")
			e.append(e.stream("probes"), eventstore.Any, ev)
			return ev.ID
		})
		later := newEvents(3, "T")
		e.append(s, eventstore.Any, later...)
		checkFromEnd(t, c, dataIDs(old), probes, dataIDs(later))
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		tag := e.tag()
		keepStream, otherStream := e.stream("keep-1"), e.stream("other-1")
		keepType, otherType := tag+".Keep.Happened", tag+".Other.Happened"
		byStream := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{e.stream("keep-")}}})
		byType := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: eventstore.Filter{EventTypePrefixes: []string{tag + ".Keep."}}})
		both := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{e.stream("keep-")}, EventTypePrefixes: []string{tag + ".Keep."}}})

		var wantStream, wantType, wantBoth []uuid.UUID
		for i := range 12 {
			stream := []string{keepStream, otherStream}[i%2]
			typ := []string{keepType, otherType}[i/2%2]
			ev := newEvent(typ)
			e.append(stream, eventstore.Any, ev)
			if stream == keepStream {
				wantStream = append(wantStream, ev.ID)
			}
			if typ == keepType {
				wantType = append(wantType, ev.ID)
			}
			if stream == keepStream && typ == keepType {
				wantBoth = append(wantBoth, ev.ID)
			}
		}
		// A last event that matches every filter marks the end.
		last := newEvent(keepType)
		e.append(keepStream, eventstore.Any, last)
		wantStream, wantType, wantBoth = append(wantStream, last.ID), append(wantType, last.ID), append(wantBoth, last.ID)
		for name, c := range map[string]struct {
			c    *collector
			want []uuid.UUID
		}{"stream prefix": {byStream, wantStream}, "type prefix": {byType, wantType}, "both": {both, wantBoth}} {
			got := c.c.waitFor(len(c.want))
			if diff := cmp.Diff(c.want, ids(got)); diff != "" {
				t.Errorf("filter by %s (-want +got):\n%s", name, diff)
			}
		}
	})

	t.Run("HandoverUnderConcurrentAppends", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		testAllHandover(t, e)
	})

	t.Run("CancelEndsWithContextError", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		e.append(e.stream("s"), eventstore.NoStream, newEvents(2, "T")...)
		c := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
		c.waitFor(2)
		c.cancel()
		wantCancelled(t, c.wait())
		c2 := e.subscribeAll(eventstore.SubscribeAllOptions{From: eventstore.AllEnd, Filter: e.ours()})
		c2.cancel()
		wantCancelled(t, c2.wait())
	})

	t.Run("BreakEnds", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		e.append(e.stream("s"), eventstore.NoStream, newEvents(4, "T")...)
		n := 0
		for _, err := range e.store().SubscribeToAll(e.ctx(), eventstore.SubscribeAllOptions{Filter: e.ours()}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 2 {
				break
			}
		}
		if n != 2 {
			t.Fatalf("received %d events before breaking, want 2", n)
		}
	})

	t.Run("SlowSubscriberDoesNotBlockWriters", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		var i int
		testSlowSubscriber(t, e, func(ctx context.Context) iter.Seq2[eventstore.RecordedEvent, error] {
			return e.store().SubscribeToAll(ctx, eventstore.SubscribeAllOptions{Filter: e.ours()})
		}, func(evs []eventstore.EventData) error {
			i++
			_, err := e.store().Append(e.ctx(), e.stream(fmt.Sprint("s", i%7)), eventstore.Any, evs...)
			return err
		})
	})
}

// testAllHandover starts subscriptions to the global log while writers
// append to many streams, and checks that each receives exactly the test's
// part of the global log: every event once, in strictly increasing position.
func testAllHandover(t *testing.T, e *env) {
	writers, perWriter := 6, 120
	if testing.Short() {
		writers, perWriter = 3, 40
	}
	for i := range 4 {
		e.append(e.stream(fmt.Sprint("initial-", i)), eventstore.NoStream, newEvents(25, "Initial")...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	subs := make(chan *collector, 1)
	for w := range writers {
		wg.Go(func() {
			s := e.stream(fmt.Sprint("w", w))
			joined := w != 0
			for i := 0; i < perWriter; {
				if !joined && i >= perWriter/2 {
					// A second subscriber joins half way through.
					subs <- e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
					joined = true
				}
				n := min(1+i%4, perWriter-i)
				if _, err := e.store().Append(e.ctx(), s, eventstore.Any, newEvents(n, "Live")...); err != nil {
					errs <- err
					return
				}
				i += n
			}
		})
	}
	first := e.subscribeAll(eventstore.SubscribeAllOptions{Filter: e.ours()})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	second := <-subs
	total := 100 + writers*perWriter
	want := recs(e.readAll(eventstore.ReadAllOptions{}))
	if len(want) != total {
		t.Fatalf("ReadAll holds %d events of the test, want %d", len(want), total)
	}
	for name, c := range map[string]*collector{"first": first, "second": second} {
		got := c.waitFor(total)
		c.stop()
		got, _ = c.snapshot()
		e.checkPositions(got)
		if diff := cmp.Diff(want, recs(got)); diff != "" {
			t.Fatalf("%s subscription differs from ReadAll (-read +subscription):\n%s", name, diff)
		}
	}
}
