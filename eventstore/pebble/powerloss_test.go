package pebble

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// TestPowerLoss simulates losing power: Pebble's crashable in-memory file
// system keeps only what was fsynced (plus a random share of what was not),
// taken at a random moment while many goroutines append. Every append
// acknowledged before that moment must survive, and no append may survive
// in part.
func TestPowerLoss(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			powerLossRound(t, rand.IntN(101))
		})
	}
}

func powerLossRound(t *testing.T, unsyncedPercent int) {
	fs := vfs.NewCrashableMem()
	s, err := Open(Config{Dir: "db", fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		acked   = map[uuid.UUID]eventstore.AppendResult{} // last event ID -> result
		batches = map[uuid.UUID][]uuid.UUID{}             // every event ID -> its append's IDs
	)
	// The power fails once a random number of appends were acknowledged.
	target := 20 + rand.IntN(800)
	reached := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				events := make([]eventstore.EventData, 1+rand.IntN(4))
				ids := make([]uuid.UUID, len(events))
				for i := range events {
					ids[i] = uuid.New()
					events[i] = eventstore.EventData{ID: ids[i], Type: "Powered", Data: make([]byte, rand.IntN(300))}
				}
				mu.Lock()
				for _, id := range ids {
					batches[id] = ids
				}
				mu.Unlock()
				res, err := s.Append(ctx, fmt.Sprintf("w-%d", w%5), eventstore.Any, events...)
				if err != nil {
					return
				}
				mu.Lock()
				acked[ids[len(ids)-1]] = res
				if len(acked) == target {
					close(reached)
				}
				mu.Unlock()
			}
		}()
	}
	<-reached
	mu.Lock()
	mustSurvive := make(map[uuid.UUID]eventstore.AppendResult, len(acked))
	for id, res := range acked {
		mustSurvive[id] = res
	}
	mu.Unlock()
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent, RNG: rand.New(rand.NewPCG(rand.Uint64(), 0))})
	cancel()
	wg.Wait()
	s.Close()

	s, err = Open(Config{Dir: "db", fs: clone})
	if err != nil {
		t.Fatalf("reopen after power loss: %v", err)
	}
	defer s.Close()
	present := map[uuid.UUID]eventstore.RecordedEvent{}
	var want uint64 = 1
	for ev, err := range s.ReadAll(context.Background(), eventstore.ReadAllOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Position != want {
			t.Fatalf("position %d follows %d", ev.Position, want-1)
		}
		want++
		present[ev.ID] = ev
	}
	for id := range present {
		for _, other := range batches[id] {
			if _, ok := present[other]; !ok {
				t.Fatalf("append containing %s survived in part: %s is missing", id, other)
			}
		}
	}
	for id, res := range mustSurvive {
		ev, ok := present[id]
		if !ok {
			t.Fatalf("acknowledged append ending at position %d lost (%d of %d acknowledged, %d%% unsynced kept)", res.Position, len(mustSurvive), len(acked), unsyncedPercent)
		}
		if ev.Position != res.Position || ev.Revision != res.Revision {
			t.Fatalf("acknowledged at %d/%d, found at %d/%d", res.Position, res.Revision, ev.Position, ev.Revision)
		}
	}
}
