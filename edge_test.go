package durable_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// ---------------------------------------------------------------------------
// Helpers of the edge-case tests: a store whose appends can be held, and a
// log a test can wait on.

// hookStore wraps a store; hook (when set) runs before every append and may
// block it, or fail it by returning an error.
type hookStore struct {
	eventstore.Store
	mu   sync.Mutex
	hook func(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) error
}

func (s *hookStore) setHook(h func(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) error) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

func (s *hookStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h != nil {
		if err := h(ctx, stream, expected, events); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

// logWatch records every log line (at all levels) so a test can wait for
// something the engine logged; warnings and errors also go to stderr.
type logWatch struct {
	mu    sync.Mutex
	lines []string
}

type logWatchHandler struct {
	w     *logWatch
	attrs []slog.Attr
	out   slog.Handler
}

func newLogWatch() (*logWatch, *slog.Logger) {
	w := &logWatch{}
	return w, slog.New(&logWatchHandler{w: w, out: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})})
}

func (h *logWatchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logWatchHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.w.mu.Lock()
	h.w.lines = append(h.w.lines, b.String())
	h.w.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		return h.out.WithAttrs(h.attrs).Handle(ctx, r)
	}
	return nil
}

func (h *logWatchHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logWatchHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...), out: h.out}
}

func (h *logWatchHandler) WithGroup(string) slog.Handler { return h }

// count returns how many recorded lines contain every one of parts.
func (w *logWatch) count(parts ...string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range w.lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// Recovery acts again on every record a crash may have left unacted.

// TestRecoveryRedoesEveryUnactedTimer: a crash after two episodes were
// recorded (the first created a durable timer, the second consumed an event)
// but before the first episode's timer reached the bus. After the restart
// the timer must be scheduled, not only the latest episode's decisions, or
// the instance would wait forever (invariant 6).
func TestRecoveryRedoesEveryUnactedTimer(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "TimerThenEvent", func(ctx *orchestration.Context, _ any) (string, error) {
		timer := ctx.CreateTimer(5 * time.Second)
		v, err := orchestration.WaitForEvent[string](ctx, "go").Await()
		if err != nil {
			return "", err
		}
		if err := timer.Await(nil); err != nil {
			return "", err
		}
		return v, nil
	})
	// Record exactly what a grain records: the start episode (which creates
	// the timer) and an episode that consumed an event. The engine then
	// "crashed" before the first episode's timer was scheduled on the bus.
	dir := t.TempDir()
	store, err := pebble.Open(pebble.Config{Dir: filepath.Join(dir, "events"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	inst := orchestration.NewInstance(reg.Orchestrators(), orchestration.Options{Converter: reg.Converter()})
	now := time.Now().UTC()
	ep1, err := inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "TimerThenEvent", InstanceID: "w", Input: []byte("null"), RequestID: "start"})
	if err != nil || !containsKind(ep1.Events, orchestration.TimerCreated) {
		t.Fatalf("first episode %v: %v", ep1.Events, err)
	}
	ep2, err := inst.Step(now.Add(10*time.Millisecond), orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: "go", Input: []byte(`"x"`), RequestID: "ev"})
	if err != nil || containsKind(ep2.Events, orchestration.TimerCreated) {
		t.Fatalf("second episode %v: %v", ep2.Events, err)
	}
	inst.Close()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := store.Append(ctx, "orchestration-w", eventstore.NoStream, history.EpisodeData(ep1.Events, uuid.New())); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "orchestration-w", eventstore.Exact(0), history.EpisodeData(ep2.Events, uuid.New())); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	c := openEngine(t, reg, dir).Client()
	// The timer was due 5 seconds after the start; give it 20.
	st, err := c.Wait(ctxFor(t, 20*time.Second), "w")
	if err != nil {
		h, _ := c.History(ctxFor(t, 5*time.Second), "w")
		t.Fatalf("the instance never completed after the restart: %v (history %v)", err, kinds(h))
	}
	if st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("status %s", st.RuntimeStatus)
	}
}

func kinds(h []orchestration.HistoryEvent) []string {
	var out []string
	for _, ev := range h {
		out = append(out, ev.Kind.String())
	}
	return out
}

// ---------------------------------------------------------------------------
// A scheduled start (WithStartTime) waits for its time.

// TestScheduledStartWaitsDespiteEvents: an instance scheduled to start in an
// hour stays Pending until then, even when an event is raised to it
// meanwhile; the event is recorded and waits for the orchestrator.
func TestScheduledStartWaitsDespiteEvents(t *testing.T) {
	reg := durable.NewRegistry()
	var ran atomic.Int32
	durable.RegisterActivity(reg, "Note", func(context.Context, string) (string, error) {
		ran.Add(1)
		return "noted", nil
	})
	durable.RegisterOrchestrator(reg, "Later", func(ctx *orchestration.Context, _ any) (string, error) {
		if err := ctx.CallActivity("Note", "started").Await(nil); err != nil {
			return "", err
		}
		return orchestration.WaitForEvent[string](ctx, "go").Await()
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	id, err := c.Start(ctx, "Later", nil, durable.WithInstanceID("later"), durable.WithStartTime(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, orchestration.StatusPending)
	if err := c.RaiseEvent(ctx, id, "go", "early"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return containsKind(mustHistory(t, c, id), orchestration.EventRaised) })
	st, err := c.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	h := mustHistory(t, c, id)
	if st.RuntimeStatus != orchestration.StatusPending || containsKind(h, orchestration.TaskScheduled) {
		t.Fatalf("an instance scheduled an hour ahead ran on an event: status %s, history %v", st.RuntimeStatus, kinds(h))
	}
}

// ---------------------------------------------------------------------------
// A sub-orchestration's outcome belongs to one generation of its parent.

// TestStaleChildOutcomeAfterParentRestart: parent "p" (first run) starts
// child "old-child" as its event 0 and is terminated; "p" is started again
// (a new generation) and starts "new-child", also as its event 0. When the
// old child completes and notifies "p", the new generation must not take
// that as the outcome of its own, unrelated child.
func TestStaleChildOutcomeAfterParentRestart(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Blocker", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.WaitForEvent[string](ctx, "go").Await()
	})
	durable.RegisterOrchestrator(reg, "ParentOld", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.CallSubOrchestrator[string](ctx, "Blocker", nil, orchestration.WithInstanceID("old-child")).Await()
	})
	durable.RegisterOrchestrator(reg, "ParentNew", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.CallSubOrchestrator[string](ctx, "Blocker", nil, orchestration.WithInstanceID("new-child")).Await()
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "ParentOld", nil, durable.WithInstanceID("p")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "old-child", orchestration.StatusRunning)
	if err := c.Terminate(ctx, "p", "replaced"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "p", orchestration.StatusTerminated)
	if _, err := c.Start(ctx, "ParentNew", nil, durable.WithInstanceID("p")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "new-child", orchestration.StatusRunning)

	if err := c.RaiseEvent(ctx, "old-child", "go", "old"); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, "old-child", nil)
	if err := c.RaiseEvent(ctx, "new-child", "go", "new"); err != nil {
		t.Fatal(err)
	}
	var out string
	waitOutput(t, c, "p", &out)
	if out != "new" {
		t.Fatalf("the restarted parent took the outcome of its previous generation's child: output %q, want %q", out, "new")
	}
}

// ---------------------------------------------------------------------------
// Requests wait while an optimistic Start is unsettled.

// TestEventDuringOptimisticStartIsKept: instance "x" runs and waits for an
// event, and has passivated. A conflicting Start of "x" activates it again;
// the activation appends optimistically (NoStream) and, while that append
// is in flight, an event for "x" arrives. It must wait until the Start is
// settled and then reach the real instance, not be judged against the
// Start's unrecorded (and already completed) instance.
func TestEventDuringOptimisticStartIsKept(t *testing.T) {
	reg, _ := waitForever()
	durable.RegisterOrchestrator(reg, "Quick", func(ctx *orchestration.Context, n int) (int, error) { return n, nil })
	logs, logger := newLogWatch()
	store := &hookStore{Store: memory.New(memory.Config{})}
	e := openEngine(t, reg, "", func(cfg *durable.Config) {
		cfg.IdleTimeout = 50 * time.Millisecond
		cfg.Store = store
		cfg.Logger = logger
	})
	c := e.Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return e.ActiveInstances() == 0 })

	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	store.setHook(func(_ context.Context, stream string, expected eventstore.ExpectedRevision, _ []eventstore.EventData) error {
		if stream == "orchestration-x" && expected.IsNoStream() {
			once.Do(func() { close(blocked) })
			<-release
		}
		return nil
	})
	startErr := make(chan error, 1)
	go func() {
		_, err := c.Start(ctx, "Quick", 1, durable.WithInstanceID("x"))
		startErr <- err
	}()
	<-blocked
	raiseErr := make(chan error, 1)
	go func() { raiseErr <- c.RaiseEvent(ctx, "x", "go", "v") }()
	// Wait until the event has reached the grain and is waiting there for
	// the optimistic Start to settle: the cluster retries it after its
	// request timeout.
	eventually(t, func() bool { return logs.count("grain call attempt failed", "identity=x") > 0 })
	close(release)
	if err := <-startErr; !errors.Is(err, durable.ErrInstanceExists) {
		t.Fatalf("conflicting start: %v", err)
	}
	if err := <-raiseErr; err != nil {
		t.Fatalf("the event raised during the optimistic Start: %v", err)
	}
	st, err := c.Wait(ctxFor(t, 15*time.Second), "x")
	if err != nil {
		t.Fatalf("the event raised during the optimistic Start was lost: %v (history %v; log: %d refusal(s))",
			err, kinds(mustHistory(t, c, "x")), logs.count("message refused by its instance", "instance=x"))
	}
	if st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("status %s", st.RuntimeStatus)
	}
}

// ---------------------------------------------------------------------------
// The same input twice in one batch is recorded once.

// TestDuplicateDeliveryInOneBatch: while an episode's append is slow, the
// bus delivers a raised event; the grain queues it and cannot answer before
// the cluster's request timeout, so the cluster sends the same Deliver again
// (cluster.Request retries, as its doc says). Both copies go into one
// episode, which must record and deliver the event once.
func TestDuplicateDeliveryInOneBatch(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterActivity(reg, "Act", func(context.Context, any) (any, error) { return nil, nil })
	durable.RegisterOrchestrator(reg, "TwoEvents", func(ctx *orchestration.Context, _ any) (string, error) {
		if err := ctx.CallActivity("Act", nil).Await(nil); err != nil {
			return "", err
		}
		a, err := orchestration.WaitForEvent[string](ctx, "go").Await()
		if err != nil {
			return "", err
		}
		b, err := orchestration.WaitForEvent[string](ctx, "go").Await()
		if err != nil {
			return "", err
		}
		return a + "," + b, nil
	})
	logs, logger := newLogWatch()
	store := &hookStore{Store: memory.New(memory.Config{})}
	blocked, release := make(chan struct{}), make(chan struct{})
	var appends atomic.Int32
	store.setHook(func(_ context.Context, stream string, _ eventstore.ExpectedRevision, _ []eventstore.EventData) error {
		if stream == "orchestration-dup" && appends.Add(1) == 2 {
			// The episode of the activity's result: slow.
			close(blocked)
			<-release
		}
		return nil
	})
	c := openEngine(t, reg, "", func(cfg *durable.Config) {
		cfg.Store = store
		cfg.Logger = logger
	}).Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "TwoEvents", nil, durable.WithInstanceID("dup")); err != nil {
		t.Fatal(err)
	}
	<-blocked
	raiseErr := make(chan error, 1)
	go func() { raiseErr <- c.RaiseEvent(ctx, "dup", "go", "one") }()
	// The second attempt failed: its copy reached the grain's mailbox
	// before the append is released below.
	eventually(t, func() bool { return logs.count("grain call attempt failed", "identity=dup", "attempt=2") > 0 })
	close(release)
	if err := <-raiseErr; err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, "dup", "go", "two"); err != nil && !errors.Is(err, durable.ErrInstanceNotRunning) {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, "dup")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	st.DecodeOutput(&out)
	raised := 0
	for _, ev := range mustHistory(t, c, "dup") {
		if ev.Kind == orchestration.EventRaised {
			raised++
		}
	}
	if out != "one,two" {
		t.Fatalf("one raised event was recorded %d times and consumed twice: output %q, want %q", raised, out, "one,two")
	}
}

// ---------------------------------------------------------------------------
// Loading acts only on recorded decisions.

// TestReloadActsOnlyAfterAppend: a ContinueAsNew is recorded as two records,
// and the new generation's first decisions in a third append. If that third
// append fails, the next activation replays the new generation and makes
// those decisions anew; they must run only after their append (persist,
// then act), not when the grain re-issues the work it finds pending.
func TestReloadActsOnlyAfterAppend(t *testing.T) {
	reg := durable.NewRegistry()
	noteStarted := make(chan struct{})
	var noteOnce sync.Once
	durable.RegisterActivity(reg, "Note", func(context.Context, string) (string, error) {
		noteOnce.Do(func() { close(noteStarted) })
		return "noted", nil
	})
	durable.RegisterOrchestrator(reg, "Gen", func(ctx *orchestration.Context, n int) (string, error) {
		if n == 0 {
			return "", ctx.ContinueAsNew(1)
		}
		return orchestration.CallActivity[string](ctx, "Note", "gen1").Await()
	})
	store := &hookStore{Store: memory.New(memory.Config{})}
	var appends atomic.Int32
	checked := make(chan bool, 1)
	store.setHook(func(_ context.Context, stream string, _ eventstore.ExpectedRevision, _ []eventstore.EventData) error {
		if stream != "orchestration-can" {
			return nil
		}
		switch appends.Add(1) {
		case 2:
			// The new generation's first episode, right after the
			// ContinueAsNew: the append fails.
			return errors.New("injected append failure")
		case 3:
			// The next activation appends the same decisions. Has their
			// activity started already?
			select {
			case <-noteStarted:
				checked <- true
			case <-time.After(5 * time.Second):
				checked <- false
			}
		}
		return nil
	})
	c := openEngine(t, reg, "", func(cfg *durable.Config) { cfg.Store = store }).Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Gen", 0, durable.WithInstanceID("can")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return appends.Load() >= 2 })
	// Any message activates the instance again.
	if err := c.RaiseEvent(ctx, "can", "poke", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case early := <-checked:
		if early {
			t.Fatal("the activity started before its TaskScheduled was appended")
		}
	case <-ctx.Done():
		t.Fatal("the instance was not activated again")
	}
}

// ---------------------------------------------------------------------------
// A child that continued as new still recognises its parent's start.

// TestChildContinuedAsNewKeepsParent: parent "boss" calls child "looper",
// which continues as new twice and then waits for an event. The parent
// passivates and is activated again, and re-issues the child's start with
// the same request ID. The child must take it as the retry it is, not answer
// "already Running", which would fail the parent.
func TestChildContinuedAsNewKeepsParent(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Looper", func(ctx *orchestration.Context, n int) (string, error) {
		if n < 2 {
			return "", ctx.ContinueAsNew(n + 1)
		}
		return orchestration.WaitForEvent[string](ctx, "done").Await()
	})
	durable.RegisterOrchestrator(reg, "Boss", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.CallSubOrchestrator[string](ctx, "Looper", 0, orchestration.WithInstanceID("looper")).Await()
	})
	e := openEngine(t, reg, "", func(cfg *durable.Config) { cfg.IdleTimeout = 50 * time.Millisecond })
	c := e.Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Boss", nil, durable.WithInstanceID("boss")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		h, err := c.History(ctx, "looper")
		return err == nil && len(h) > 1 && h[1].Kind == orchestration.ExecutionStarted && h[1].Generation == 2
	})
	eventually(t, func() bool { return e.ActiveInstances() == 0 })
	if err := c.RaiseEvent(ctx, "boss", "poke", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return containsKind(mustHistory(t, c, "boss"), orchestration.EventRaised) })
	if err := c.RaiseEvent(ctx, "looper", "done", "child-done"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, "boss")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	st.DecodeOutput(&out)
	if st.RuntimeStatus != orchestration.StatusCompleted || out != "child-done" {
		t.Fatalf("parent is %s (output %q, failure %v); its child was running fine", st.RuntimeStatus, out, st.Failure)
	}
}

// ---------------------------------------------------------------------------
// Inputs queued during a ContinueAsNew append stay with the old generation.

// TestOldGenerationTimerIgnored: generation 0 creates a 2-second timer
// (event 0) and continues as new before it fires. The timer fires while the
// ContinueAsNew append is in flight and waits in the grain's queue; it must
// not complete generation 1's one-hour timer, which is also event 0.
func TestOldGenerationTimerIgnored(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterActivity(reg, "Fast", func(context.Context, any) (any, error) { return nil, nil })
	durable.RegisterOrchestrator(reg, "Gens", func(ctx *orchestration.Context, n int) (string, error) {
		if n == 0 {
			ctx.CreateTimer(2 * time.Second) // event 0, still pending at the ContinueAsNew
			if err := ctx.CallActivity("Fast", nil).Await(nil); err != nil {
				return "", err
			}
			return "", ctx.ContinueAsNew(1)
		}
		timer := ctx.CreateTimer(time.Hour) // event 0 of generation 1
		ev := ctx.WaitForEvent("finish")
		first, err := orchestration.WhenAny(ctx, timer, ev).Await()
		if err != nil {
			return "", err
		}
		if first == 0 {
			return "timer", nil
		}
		return "event", nil
	})
	logs, logger := newLogWatch()
	store := &hookStore{Store: memory.New(memory.Config{})}
	blocked, release := make(chan struct{}), make(chan struct{})
	store.setHook(func(_ context.Context, stream string, _ eventstore.ExpectedRevision, events []eventstore.EventData) error {
		if stream == "orchestration-gens" && len(events) == 2 {
			// The ContinueAsNew append: slow.
			close(blocked)
			<-release
		}
		return nil
	})
	c := openEngine(t, reg, "", func(cfg *durable.Config) {
		cfg.Store = store
		cfg.Logger = logger
	}).Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Gens", 0, durable.WithInstanceID("gens")); err != nil {
		t.Fatal(err)
	}
	<-blocked
	// The generation-0 timer's delivery reached the grain (which holds it
	// without answering while the append is in flight).
	eventually(t, func() bool { return logs.count("grain call attempt failed", "identity=gens", "attempt=1") > 0 })
	close(release)
	eventually(t, func() bool {
		h := mustHistory(t, c, "gens")
		return len(h) > 1 && h[1].Generation == 1 && containsKind(h, orchestration.TimerCreated)
	})
	if err := c.RaiseEvent(ctx, "gens", "finish", nil); err != nil && !errors.Is(err, durable.ErrInstanceNotRunning) {
		t.Fatal(err)
	}
	var out string
	waitOutput(t, c, "gens", &out)
	if out != "event" {
		t.Fatalf("generation 1's one-hour timer fired at once (from generation 0's timer): output %q, history %v", out, kinds(mustHistory(t, c, "gens")))
	}
}

// ---------------------------------------------------------------------------
// Status after a ContinueAsNew.

// TestStatusRunningAfterContinueAsNew: after a ContinueAsNew whose new
// generation makes no decision in its first episode (it waits for an
// event), the stream holds [OrchestratorStarted, ExecutionStarted] and no
// OrchestratorCompleted closes that episode; the index must still show the
// instance Running, not Pending like a start scheduled for later.
func TestStatusRunningAfterContinueAsNew(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Looper", func(ctx *orchestration.Context, n int) (string, error) {
		if n < 1 {
			return "", ctx.ContinueAsNew(n + 1)
		}
		return orchestration.WaitForEvent[string](ctx, "done").Await()
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.Start(ctx, "Looper", 0, durable.WithInstanceID("loop")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "loop", orchestration.StatusRunning)
}

// TestConflictingStartDuringOptimisticStart: the same optimistic activation, seen
// by a Start whose append is slow. The cluster retries the Start after its
// request timeout; the retry carries the same request ID as the instance
// the activation made up, so it waits as a "retried start" for the append.
// That append fails (the instance exists and runs another orchestrator);
// the activation reloads, refuses the original attempt, but then answers
// the waiting retry with an Ack of the real instance: Client.Start reports
// success for a start that was never recorded.
func TestConflictingStartDuringOptimisticStart(t *testing.T) {
	reg, _ := waitForever()
	durable.RegisterOrchestrator(reg, "Quick", func(ctx *orchestration.Context, n int) (int, error) { return n, nil })
	logs, logger := newLogWatch()
	store := &hookStore{Store: memory.New(memory.Config{})}
	e := openEngine(t, reg, "", func(cfg *durable.Config) {
		cfg.IdleTimeout = 50 * time.Millisecond
		cfg.Store = store
		cfg.Logger = logger
	})
	c := e.Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("y")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return e.ActiveInstances() == 0 })
	release := make(chan struct{})
	store.setHook(func(_ context.Context, stream string, expected eventstore.ExpectedRevision, _ []eventstore.EventData) error {
		if stream == "orchestration-y" && expected.IsNoStream() {
			<-release
		}
		return nil
	})
	startErr := make(chan error, 1)
	go func() {
		_, err := c.Start(ctx, "Quick", 1, durable.WithInstanceID("y"))
		startErr <- err
	}()
	// Two attempts timed out; the third is on its way.
	eventually(t, func() bool { return logs.count("grain call attempt failed", "identity=y", "attempt=2") > 0 })
	close(release)
	err := <-startErr
	h := mustHistory(t, c, "y")
	if !errors.Is(err, durable.ErrInstanceExists) {
		t.Fatalf("a conflicting Start of a running instance returned %v; the stream holds %v (orchestrator %q)", err, kinds(h), h[1].Name)
	}
}

// ---------------------------------------------------------------------------
// A request retried after its instance continued as new is still one.

// TestRetriedRequestAfterContinueAsNew: the episode that takes an event and
// continues as new is slow to append, so the cluster sends the same request
// again (its attempt timed out). The copy is handled after the new
// generation began; it must be recognised, not advance the instance again.
func TestRetriedRequestAfterContinueAsNew(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Step", func(ctx *orchestration.Context, n int) (int, error) {
		if _, err := orchestration.WaitForEvent[int](ctx, "next").Await(); err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(n + 1)
	})
	logs, logger := newLogWatch()
	store := &hookStore{Store: memory.New(memory.Config{})}
	released := make(chan struct{})
	store.setHook(func(_ context.Context, stream string, _ eventstore.ExpectedRevision, events []eventstore.EventData) error {
		if stream == "orchestration-step" && len(events) == 2 {
			// The ContinueAsNew: held until the request was sent again.
			<-released
		}
		return nil
	})
	c := openEngine(t, reg, "", func(cfg *durable.Config) {
		cfg.Store = store
		cfg.Logger = logger
	}).Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Step", 0, durable.WithInstanceID("step")); err != nil {
		t.Fatal(err)
	}
	raised := make(chan error, 1)
	go func() { raised <- c.RaiseEvent(ctx, "step", "next", 1) }()
	eventually(t, func() bool { return logs.count("grain call attempt failed", "identity=step", "attempt=1") > 0 })
	close(released)
	if err := <-raised; err != nil {
		t.Fatal(err)
	}
	h := mustHistory(t, c, "step")
	if h[1].Kind != orchestration.ExecutionStarted || h[1].Generation != 1 {
		t.Fatalf("one event, sent twice by the cluster, moved the instance to %+v; want generation 1", h[1])
	}
}
