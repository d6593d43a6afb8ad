package recovery

import (
	"context"
	"sync"
)

// tracker knows up to which global position every recorded decision has
// been carried out (timers scheduled, events sent). Decisions are persisted
// before they are acted on, so a crash between the two leaves decisions
// that nothing will carry out; after a restart, recovery wakes the
// instances whose records lie past the last checkpoint, and they act again
// (idempotently).
//
// Appends and their acts are counted per epoch. A checkpoint reads the
// store's last position L, then opens a new epoch, then waits until every
// operation of the earlier epochs has finished: any append at or below L
// began before L was read, so it belongs to an earlier epoch, and all of
// them are then acted on.
type tracker struct {
	mu       sync.Mutex
	epoch    uint64
	inflight map[uint64]int
	// drained is closed when an epoch drains while a checkpoint waits
	// (watched), and replaced.
	drained chan struct{}
	watched bool
}

func newTracker() *tracker {
	return &tracker{inflight: make(map[uint64]int), drained: make(chan struct{})}
}

// begin registers an operation (an append and its acts) and returns its
// epoch for end.
func (t *tracker) begin() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight[t.epoch]++
	return t.epoch
}

// end marks the operation of the given epoch finished.
func (t *tracker) end(epoch uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight[epoch]--
	if t.inflight[epoch] == 0 {
		delete(t.inflight, epoch)
		if t.watched {
			close(t.drained)
			t.drained, t.watched = make(chan struct{}), false
		}
	}
}

// checkpoint returns a position up to which everything has been acted on.
func (t *tracker) checkpoint(ctx context.Context, lastPosition func(context.Context) (uint64, error)) (uint64, error) {
	last, err := lastPosition(ctx)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	before := t.epoch
	t.epoch++
	t.mu.Unlock()
	for {
		t.mu.Lock()
		busy := false
		for e := range t.inflight {
			if e <= before {
				busy = true
				break
			}
		}
		drained := t.drained
		t.watched = t.watched || busy
		t.mu.Unlock()
		if !busy {
			return last, nil
		}
		select {
		case <-drained:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// busy reports whether any operation is in flight.
func (t *tracker) busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.inflight) > 0
}
