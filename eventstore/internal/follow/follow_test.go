package follow

import (
	"context"
	"errors"
	"testing"

	"github.com/durableactor/durable/eventstore"
)

// pages is a store of n events read a page of size at a time, with a change
// channel that is never closed.
func pages(n, size int) (Page, func() <-chan struct{}) {
	next := 0
	page := func(yield func(eventstore.RecordedEvent) bool) (bool, error) {
		end := min(next+size, n)
		for ; next < end; next++ {
			if !yield(eventstore.RecordedEvent{Position: uint64(next + 1)}) {
				next++
				return false, nil
			}
		}
		return end < n, nil
	}
	never := make(chan struct{})
	return page, func() <-chan struct{} { return never }
}

func TestRunStopsWhenTheLoopDoes(t *testing.T) {
	page, changed := pages(10, 3)
	var got []uint64
	Run(context.Background(), changed, page, func(ev eventstore.RecordedEvent, err error) bool {
		if err != nil {
			t.Fatalf("yielded %v", err)
		}
		got = append(got, ev.Position)
		return len(got) < 5
	})
	if len(got) != 5 || got[4] != 5 {
		t.Fatalf("yielded %v, want positions 1 to 5", got)
	}
}

func TestRunEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	page, changed := pages(10, 3)
	var (
		got  []uint64
		errs []error
	)
	Run(ctx, changed, page, func(ev eventstore.RecordedEvent, err error) bool {
		if err != nil {
			errs = append(errs, err)
			return true
		}
		got = append(got, ev.Position)
		if len(got) == 4 {
			cancel()
		}
		return true
	})
	// The page in progress is delivered, then the context's error, once.
	if len(got) != 6 || len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("yielded %d events and errors %v, want 6 events and context.Canceled", len(got), errs)
	}

	page, changed = pages(2, 3)
	errs = nil
	Run(ctx, changed, page, func(ev eventstore.RecordedEvent, err error) bool {
		if err == nil {
			t.Fatal("yielded an event after the context ended")
		}
		errs = append(errs, err)
		return true
	})
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("with an ended context Run yielded %v", errs)
	}
}

func TestRunWaitsForChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 2
	wake := make(chan struct{})
	next := 0
	page := func(yield func(eventstore.RecordedEvent) bool) (bool, error) {
		for ; next < n; next++ {
			if !yield(eventstore.RecordedEvent{Position: uint64(next + 1)}) {
				next++
				return false, nil
			}
		}
		return false, nil
	}
	changed := func() <-chan struct{} { return wake }
	var got []uint64
	Run(ctx, changed, page, func(ev eventstore.RecordedEvent, err error) bool {
		if err != nil {
			t.Fatalf("yielded %v", err)
		}
		got = append(got, ev.Position)
		if len(got) == 2 {
			// A commit: one more event, and the channel closes.
			n = 3
			close(wake)
		}
		return len(got) < 3
	})
	if len(got) != 3 {
		t.Fatalf("yielded %v, want three events", got)
	}
}

func TestRunYieldsThePageError(t *testing.T) {
	boom := errors.New("boom")
	var errs []error
	Run(context.Background(), func() <-chan struct{} { return nil }, func(func(eventstore.RecordedEvent) bool) (bool, error) {
		return false, boom
	}, func(_ eventstore.RecordedEvent, err error) bool {
		errs = append(errs, err)
		return true
	})
	if len(errs) != 1 || errs[0] != boom {
		t.Fatalf("yielded %v, want boom once", errs)
	}
}
