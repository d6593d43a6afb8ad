package recovery_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/recovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type H = orchestration.HistoryEvent

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func record(t *testing.T, s eventstore.Store, id string, events ...H) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), history.StreamName(id), eventstore.Any, history.EpisodeData(events, uuid.New()))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func started(t *testing.T, s eventstore.Store, id string, rest ...H) eventstore.AppendResult {
	t.Helper()
	return record(t, s, id, append([]H{{Kind: orchestration.OrchestratorStarted}, {Kind: orchestration.ExecutionStarted, Name: "X"}}, rest...)...)
}

func openIndex(t *testing.T, s eventstore.Store) *index.Index {
	t.Helper()
	x, err := index.Open(context.Background(), index.Config{Store: s, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	return x
}

// waker records the wakes recovery makes; fail makes the first n wakes of
// an instance fail.
type waker struct {
	mu    sync.Mutex
	woken []string
	fails map[string]int
	seen  chan string
}

func newWaker() *waker { return &waker{fails: map[string]int{}, seen: make(chan string, 100)} }

func (w *waker) wake(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fails[id] > 0 {
		w.fails[id]--
		return errors.New("injected: not now")
	}
	w.woken = append(w.woken, id)
	w.seen <- id
	return nil
}

func open(t *testing.T, cfg recovery.Config) *recovery.Recovery {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	r, err := recovery.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStartWakesWhatMustRun: after a start, recovery wakes the instances
// with work in flight, with records after the checkpoint, and overdue ones;
// not those that wait for an event or a timer not yet due, nor ended ones.
func TestStartWakesWhatMustRun(t *testing.T) {
	s := memory.New(memory.Config{})
	future := time.Now().Add(time.Hour)
	started(t, s, "activity", H{Kind: orchestration.TaskScheduled, Name: "A"}, H{Kind: orchestration.OrchestratorCompleted})
	started(t, s, "event", H{Kind: orchestration.OrchestratorCompleted, AwaitedEvents: []string{"go"}})
	started(t, s, "later", H{Kind: orchestration.TimerCreated, FireAt: future}, H{Kind: orchestration.OrchestratorCompleted, FireAt: future})
	started(t, s, "overdue", H{Kind: orchestration.OrchestratorCompleted, FireAt: time.Now().Add(-time.Minute)})
	started(t, s, "done", H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted}, H{Kind: orchestration.OrchestratorCompleted})
	// A checkpoint after all of the above: only "sent" is after it.
	cp := open(t, recovery.Config{Store: s, Index: openIndex(t, s), Wake: newWaker().wake})
	cp.Start()
	if err := cp.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	started(t, s, "sent", H{Kind: orchestration.EventSent, InstanceID: "x", Name: "ping"},
		H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted}, H{Kind: orchestration.OrchestratorCompleted})

	w := newWaker()
	r := open(t, recovery.Config{Store: s, Index: openIndex(t, s), Wake: w.wake})
	r.Start()
	defer r.Stop(context.Background())
	var got []string
	for range 3 {
		got = append(got, <-w.seen)
	}
	slices.Sort(got)
	if want := []string{"activity", "overdue", "sent"}; !slices.Equal(got, want) {
		t.Fatalf("woken %v, want %v", got, want)
	}
	if after, upTo := r.Unacted("sent"); after == 0 || upTo <= after {
		t.Fatalf("the range after the checkpoint is (%d, %d]", after, upTo)
	}
	r.Redone("sent")
	if after, upTo := r.Unacted("sent"); after != 0 || upTo != 0 {
		t.Fatalf("after Redone the range is (%d, %d], want empty", after, upTo)
	}
}

// TestFailedWakeIsRetried: a wake that fails is tried again until it works.
func TestFailedWakeIsRetried(t *testing.T) {
	s := memory.New(memory.Config{})
	started(t, s, "busy", H{Kind: orchestration.TaskScheduled, Name: "A"}, H{Kind: orchestration.OrchestratorCompleted})
	w := newWaker()
	w.fails["busy"] = 3
	r := open(t, recovery.Config{Store: s, Index: openIndex(t, s), Wake: w.wake})
	r.Start()
	defer r.Stop(context.Background())
	if id := <-w.seen; id != "busy" {
		t.Fatalf("woke %s", id)
	}
	if w.fails["busy"] != 0 {
		t.Fatal("woken before its failures were used up")
	}
}

// TestSweepWakesOverdueOnce: an instance overdue by more than the grace is
// woken by the sweep, and not again within the grace.
func TestSweepWakesOverdueOnce(t *testing.T) {
	s := memory.New(memory.Config{})
	x := openIndex(t, s)
	now := time.Now()
	clock := func() time.Time { return now }
	w := newWaker()
	r := open(t, recovery.Config{Store: s, Index: x, Wake: w.wake, Clock: clock, Grace: time.Minute, SweepInterval: time.Hour})
	r.Start()
	defer r.Stop(context.Background())
	res := started(t, s, "t", H{Kind: orchestration.OrchestratorCompleted, FireAt: now.Add(-30 * time.Second)})
	if err := x.WaitFor(context.Background(), res.Position); err != nil {
		t.Fatal(err)
	}
	r.Sweep()
	select {
	case id := <-w.seen:
		t.Fatalf("woke %s within its grace", id)
	default:
	}
	now = now.Add(time.Minute)
	r.Sweep()
	if id := <-w.seen; id != "t" {
		t.Fatalf("woke %s", id)
	}
	r.Sweep() // the index still shows it overdue: not woken again so soon
	select {
	case id := <-w.seen:
		t.Fatalf("woke %s twice within the grace", id)
	default:
	}
}

// TestCheckpointMovesOnlyPastActedAppends: the checkpoint written at Stop
// never passes an append whose acts have not ended.
func TestCheckpointMovesOnlyPastActedAppends(t *testing.T) {
	s := memory.New(memory.Config{})
	x := openIndex(t, s)
	r := open(t, recovery.Config{Store: s, Index: x, Wake: newWaker().wake})
	r.Start()
	epoch := r.Begin()
	started(t, s, "acting")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); err == nil {
		t.Fatal("a checkpoint was written past an append still acting")
	}
	r.End(epoch)

	// Reopened: the window holds the unacted append.
	again := open(t, recovery.Config{Store: s, Index: x, Wake: newWaker().wake})
	if after, upTo := again.Unacted("acting"); upTo <= after {
		t.Fatalf("range (%d, %d] after an append that was not acted on", after, upTo)
	}
	again.Start()
	if err := again.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Everything acted on: a clean reopen has an empty window.
	clean := open(t, recovery.Config{Store: s, Index: x, Wake: newWaker().wake})
	if after, upTo := clean.Unacted("acting"); upTo > after {
		t.Fatalf("range (%d, %d] after a clean stop", after, upTo)
	}
}
