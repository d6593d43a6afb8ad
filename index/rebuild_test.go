package index

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

type h = orchestration.HistoryEvent

// TestRebuildEqualsIncremental: an index that followed the log while it
// was written, purges, ContinueAsNew truncations, entity removals and
// corrupt records included, holds exactly what an index rebuilt from the
// log afterwards holds, key for key, with a cache small enough that most
// records were read back from disk.
func TestRebuildEqualsIncremental(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := memory.New(memory.Config{})
	ctx := context.Background()
	live, err := Open(ctx, Config{Store: s, Dir: t.TempDir(), Logger: quiet, CacheRecords: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	last := writeHistory(t, s, rand.New(rand.NewPCG(1, 2)), 600)
	if err := live.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	live.sync()
	rebuilt := Config{Store: s, Dir: t.TempDir(), Logger: quiet}
	if err := Rebuild(ctx, rebuilt); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := dump(t, live.db), dump(t, db)
	if len(a) < 1000 {
		t.Fatalf("the index holds only %d keys: the history is too thin to test anything", len(a))
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			t.Errorf("key %q: incremental %x, rebuilt %x (present %v)", k, v, w, ok)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("key %q only in the rebuilt index", k)
		}
	}
}

func dump(t *testing.T, db *pebble.DB) map[string][]byte {
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := make(map[string][]byte)
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = bytes.Clone(it.Value())
	}
	return out
}

// writeHistory writes n instances and n/4 entities through many lives and
// returns the last position.
func writeHistory(t *testing.T, s eventstore.Store, r *rand.Rand, n int) uint64 {
	ctx := context.Background()
	var last uint64
	write := func(stream string, data ...eventstore.EventData) eventstore.AppendResult {
		res, err := s.Append(ctx, stream, eventstore.Any, data...)
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
		return res
	}
	episode := func(id string, events ...h) eventstore.AppendResult {
		return write(history.StreamName(id), history.EpisodeData(events, uuid.New()))
	}
	at := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for step := range n * 6 {
		id := fmt.Sprintf("o%d", r.IntN(n))
		switch r.IntN(10) {
		case 0, 1:
			episode(id, h{Kind: orchestration.OrchestratorStarted}, h{Kind: orchestration.ExecutionStarted, Name: []string{"A", "B", "C"}[r.IntN(3)],
				Input: bytes.Repeat([]byte{'x'}, r.IntN(1000))}, h{Kind: orchestration.TaskScheduled},
				h{Kind: orchestration.OrchestratorCompleted, CustomStatus: fmt.Appendf(nil, "%d", step)})
		case 2:
			episode(id, h{Kind: orchestration.ExecutionStarted, Name: "Later", FireAt: at.Add(time.Duration(step) * time.Second)})
		case 3:
			episode(id, h{Kind: orchestration.OrchestratorStarted}, h{Kind: orchestration.TaskCompleted},
				h{Kind: orchestration.TimerCreated}, h{Kind: orchestration.OrchestratorCompleted, FireAt: at.Add(time.Duration(step) * time.Minute),
					AwaitedEvents: []string{"Approval"}})
		case 4:
			episode(id, h{Kind: orchestration.OrchestratorStarted}, h{Kind: orchestration.ExecutionCompleted,
				Status: []orchestration.Status{orchestration.StatusCompleted, orchestration.StatusFailed, orchestration.StatusTerminated}[r.IntN(3)],
				Result: bytes.Repeat([]byte{'y'}, r.IntN(1000))}, h{Kind: orchestration.OrchestratorCompleted})
		case 5:
			episode(id, h{Kind: orchestration.OrchestratorStarted}, h{Kind: orchestration.ExecutionSuspended}, h{Kind: orchestration.OrchestratorCompleted})
		case 6:
			// ContinueAsNew: two records, then the old generation is
			// truncated.
			episode(id, h{Kind: orchestration.OrchestratorStarted}, h{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusContinuedAsNew})
			res := episode(id, h{Kind: orchestration.OrchestratorStarted}, h{Kind: orchestration.ExecutionStarted, Name: "Loop", Generation: int32(step)})
			s.TruncateBefore(ctx, history.StreamName(id), res.Revision)
		case 7:
			res := write(history.StreamName(id), eventstore.EventData{ID: uuid.New(), Type: history.PurgedType})
			s.TruncateBefore(ctx, history.StreamName(id), res.Revision)
		case 8:
			if r.IntN(20) == 0 {
				write(history.StreamName(id), eventstore.EventData{ID: uuid.New(), Type: history.EpisodeType, Data: []byte{0xff, 0xff}})
			}
		case 9:
			e := entitylog.StreamName(entityID(r.IntN(n / 4)))
			b := &entitylog.Batch{HasState: r.IntN(3) > 0}
			switch r.IntN(5) {
			case 0:
				b.Lock = &entitylog.Lock{Id: "cs", InstanceId: id}
			case 1:
				b.Removed, b.HasState = true, false
			case 2:
				b.Checkpoint = &entitylog.Checkpoint{Queue: make([]*entitylog.Queued, r.IntN(3))}
			}
			data, err := entitylog.BatchData(b, uuid.New())
			if err != nil {
				t.Fatal(err)
			}
			res := write(e, data)
			if b.Removed {
				s.TruncateBefore(ctx, e, res.Revision)
			}
		}
	}
	return last
}

func entityID(i int) entities.ID { return entities.NewID("counter", fmt.Sprint(i)) }

// TestOtherLayout: an index whose checkpoint says another layout made it
// is dropped and rebuilt from the log at Open.
func TestOtherLayout(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := memory.New(memory.Config{})
	last := writeHistory(t, s, rand.New(rand.NewPCG(3, 4)), 50)
	dir := t.TempDir()
	x, err := Open(context.Background(), Config{Store: s, Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want := dump(t, x.db)
	// A stray record of another layout, and its checkpoint.
	x.db.Set([]byte("Ileftover"), []byte{1, 2, 3}, pebble.Sync)
	x.db.Set(keyApplied, append([]byte{formatVersion + 1}, make([]byte, 8)...), pebble.Sync)
	x.Close()
	x, err = Open(context.Background(), Config{Store: s, Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.WaitFor(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	x.sync()
	got := dump(t, x.db)
	if len(got) != len(want) {
		t.Fatalf("rebuilt %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("key %q differs after the rebuild", k)
		}
	}
}
