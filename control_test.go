package durable_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// waitStatus polls an instance until it reaches want.
func waitStatus(t *testing.T, c *durable.Client, id string, want orchestration.Status) *durable.Status {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	for {
		st, err := c.Status(ctx, id)
		if err == nil && st.RuntimeStatus == want {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instance %s never became %s (last %v, %v)", id, want, st, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func waitForever() (*durable.Registry, *atomic.Int32) {
	reg := durable.NewRegistry()
	var ran atomic.Int32
	durable.RegisterActivity(reg, "Note", func(_ context.Context, s string) (string, error) {
		ran.Add(1)
		return s, nil
	})
	durable.RegisterOrchestrator(reg, "Waiter", func(ctx *orchestration.Context, _ any) (string, error) {
		v, err := orchestration.WaitForEvent[string](ctx, "go").Await()
		if err != nil {
			return "", err
		}
		return orchestration.CallActivity[string](ctx, "Note", v).Await()
	})
	return reg, &ran
}

func TestTerminate(t *testing.T) {
	reg, _ := waitForever()
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	id, err := c.Start(ctx, "Waiter", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Terminate(ctx, id, "not needed"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	st.DecodeOutput(&reason)
	if st.RuntimeStatus != orchestration.StatusTerminated || reason != "not needed" {
		t.Fatalf("status %s, output %q", st.RuntimeStatus, reason)
	}
	if err := c.Terminate(ctx, id, "again"); !errors.Is(err, durable.ErrInstanceNotRunning) {
		t.Fatalf("terminating a terminated instance: %v", err)
	}
}

func TestSuspendResume(t *testing.T) {
	reg, ran := waitForever()
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	id, err := c.Start(ctx, "Waiter", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Suspend(ctx, id, "maintenance"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, orchestration.StatusSuspended)
	if err := c.RaiseEvent(ctx, id, "go", "held"); err != nil {
		t.Fatal(err)
	}
	// The event is recorded but held: wait until the history has it, then
	// check that nothing ran.
	eventually(t, func() bool { return containsKind(mustHistory(t, c, id), orchestration.EventRaised) })
	if ran.Load() != 0 {
		t.Fatal("a suspended instance ran an activity")
	}
	if st, _ := c.Status(ctx, id); st.RuntimeStatus != orchestration.StatusSuspended {
		t.Fatalf("status %s", st.RuntimeStatus)
	}
	if err := c.Resume(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	var out string
	waitOutput(t, c, id, &out)
	if out != "held" || ran.Load() != 1 {
		t.Fatalf("output %q, activity ran %d times", out, ran.Load())
	}
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func containsKind(h []orchestration.HistoryEvent, k orchestration.EventKind) bool {
	for _, ev := range h {
		if ev.Kind == k {
			return true
		}
	}
	return false
}

func TestEventBeforeWait(t *testing.T) {
	reg := durable.NewRegistry()
	release := make(chan struct{})
	durable.RegisterActivity(reg, "Block", func(context.Context, any) (any, error) {
		<-release
		return nil, nil
	})
	durable.RegisterOrchestrator(reg, "Late", func(ctx *orchestration.Context, _ any) (string, error) {
		if err := ctx.CallActivity("Block", nil).Await(nil); err != nil {
			return "", err
		}
		return orchestration.WaitForEvent[string](ctx, "Ready").Await()
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	id, err := c.Start(ctx, "Late", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "ready", "early bird"); err != nil {
		t.Fatal(err)
	}
	// Let the activity finish only after the event is recorded.
	eventually(t, func() bool { return containsKind(mustHistory(t, c, id), orchestration.EventRaised) })
	close(release)
	var out string
	waitOutput(t, c, id, &out)
	if out != "early bird" {
		t.Fatalf("output %q", out)
	}
}

func mustHistory(t *testing.T, c *durable.Client, id string) []orchestration.HistoryEvent {
	t.Helper()
	h, err := c.History(ctxFor(t, 10*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSubOrchestrations(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterActivity(reg, "Double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	child := durable.RegisterOrchestrator(reg, "Child", func(ctx *orchestration.Context, n int) (int, error) {
		if n < 0 {
			return 0, errors.New("negative")
		}
		return orchestration.CallActivity[int](ctx, "Double", n).Await()
	})
	durable.RegisterOrchestrator(reg, "Parent", func(ctx *orchestration.Context, n int) (int, error) {
		var tasks []orchestration.Awaitable
		var futures []orchestration.Future[int]
		for i := range n {
			f := child.CallSub(ctx, i)
			futures = append(futures, f)
			tasks = append(tasks, f)
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, f := range futures {
			v, _ := f.Await()
			sum += v
		}
		if _, err := child.CallSub(ctx, -1).Await(); err == nil || !strings.Contains(err.Error(), "negative") {
			return 0, errors.New("child failure not propagated")
		}
		return sum, nil
	})
	c := openEngine(t, reg, "").Client()
	id, err := c.Start(ctxFor(t, 10*time.Second), "Parent", 10, durable.WithInstanceID("parent"))
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	waitOutput(t, c, id, &sum)
	if sum != 90 {
		t.Fatalf("sum %d", sum)
	}
	st, err := c.Status(ctxFor(t, 10*time.Second), "parent:0000")
	if err != nil || st.RuntimeStatus != orchestration.StatusCompleted || st.ParentInstanceID != "parent" {
		t.Fatalf("child status %+v %v", st, err)
	}
}

func TestBadInput(t *testing.T) {
	reg, _ := waitForever()
	durable.RegisterOrchestrator(reg, "Typed", func(ctx *orchestration.Context, n int) (int, error) { return n, nil })
	c := openEngine(t, reg, "", func(cfg *durable.Config) { cfg.Orchestration.MaxPayloadSize = 1024 }).Client()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.Start(ctx, "NoSuchOrchestrator", nil); !errors.Is(err, durable.ErrUnknownOrchestrator) || !strings.Contains(err.Error(), `"NoSuchOrchestrator"`) {
		t.Fatalf("unknown orchestrator: %v", err)
	}
	for _, bad := range []string{"@entity", "a/b", "a?b", "a#b", `a\b`, "tab\there", strings.Repeat("x", 257), "\xff"} {
		if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID(bad)); !errors.Is(err, durable.ErrInvalidInstanceID) || !strings.Contains(err.Error(), "invalid instance ID") {
			t.Fatalf("instance ID %q: %v", bad, err)
		}
	}
	if _, err := c.Start(ctx, "Waiter", strings.Repeat("x", 2000)); !errors.Is(err, durable.ErrPayloadTooLarge) {
		t.Fatalf("oversized input: %v", err)
	}
	if _, err := c.Start(ctx, "Waiter", func() {}); err == nil || !strings.Contains(err.Error(), "encode input") {
		t.Fatalf("unencodable input: %v", err)
	}
	id, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("dup"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("dup")); !errors.Is(err, durable.ErrInstanceExists) {
		t.Fatalf("second start: %v", err)
	}
	// A retried start with the same request ID is idempotent.
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("idem"), durable.WithRequestID("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("idem"), durable.WithRequestID("r1")); err != nil {
		t.Fatalf("retried start: %v", err)
	}
	if err := c.RaiseEvent(ctx, "nobody", "go", nil); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("raise on a missing instance: %v", err)
	}
	if err := c.RaiseEvent(ctx, id, "go", strings.Repeat("x", 2000)); !errors.Is(err, durable.ErrPayloadTooLarge) {
		t.Fatalf("oversized event: %v", err)
	}
	if _, err := c.Status(ctx, "nobody"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("status of a missing instance: %v", err)
	}
	// The instance that was started is intact and still works.
	if err := c.RaiseEvent(ctx, id, "go", "fine"); err != nil {
		t.Fatal(err)
	}
	var out string
	waitOutput(t, c, id, &out)
	if out != "fine" {
		t.Fatalf("output %q", out)
	}
	// An input the orchestrator cannot decode fails the instance with a
	// clear error.
	typed, err := c.Start(ctx, "Typed", "not a number")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, typed)
	if err != nil {
		t.Fatal(err)
	}
	if st.RuntimeStatus != orchestration.StatusFailed || !strings.Contains(st.Failure.Message, `decode input of "Typed" into *int`) {
		t.Fatalf("status %s, failure %v", st.RuntimeStatus, st.Failure)
	}
}

// TestStartAfterPassivation starts instances again after their grains
// passivated: the new activation appends optimistically, finds the stream
// and answers from it.
func TestStartAfterPassivation(t *testing.T) {
	reg, _ := waitForever()
	durable.RegisterOrchestrator(reg, "Quick", func(ctx *orchestration.Context, n int) (int, error) { return n, nil })
	e := openEngine(t, reg, "", func(cfg *durable.Config) { cfg.IdleTimeout = 50 * time.Millisecond })
	c := e.Client()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("running"), durable.WithRequestID("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "Quick", 1, durable.WithInstanceID("done")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, "done", nil)
	eventually(t, func() bool { return e.ActiveInstances() == 0 })

	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("running")); !errors.Is(err, durable.ErrInstanceExists) {
		t.Fatalf("start of a running, passivated instance: %v", err)
	}
	eventually(t, func() bool { return e.ActiveInstances() == 0 })
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("running"), durable.WithRequestID("first")); err != nil {
		t.Fatalf("retried start after passivation: %v", err)
	}
	eventually(t, func() bool { return e.ActiveInstances() == 0 })
	// A finished instance starts over.
	if _, err := c.Start(ctx, "Quick", 2, durable.WithInstanceID("done")); err != nil {
		t.Fatal(err)
	}
	var out int
	waitOutput(t, c, "done", &out)
	if out != 2 {
		t.Fatalf("restarted instance returned %d", out)
	}
	h := mustHistory(t, c, "done")
	if h[0].Kind != orchestration.OrchestratorStarted || h[1].Kind != orchestration.ExecutionStarted || h[1].Generation != 1 || containsKindBefore(h, orchestration.ExecutionCompleted, 1) {
		t.Fatalf("history after restart starts with %s, %s (generation %d)", h[0].Kind, h[1].Kind, h[1].Generation)
	}
}

// containsKindBefore reports whether k occurs before index i.
func containsKindBefore(h []orchestration.HistoryEvent, k orchestration.EventKind, i int) bool {
	return containsKind(h[:i], k)
}

// TestStatusWithLargePayloads: payloads too large for the index are read
// from the stream, each from the record that holds it.
func TestStatusWithLargePayloads(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Big", func(ctx *orchestration.Context, in string) (string, error) {
		if err := ctx.SetCustomStatus(strings.Repeat("s", 1000)); err != nil {
			return "", err
		}
		return strings.Repeat(in, 2), nil
	})
	c := openEngine(t, reg, "").Client()
	in := strings.Repeat("i", 3000)
	id, err := c.Start(ctxFor(t, 10*time.Second), "Big", in)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	st := waitOutput(t, c, id, &out)
	var gotIn, custom string
	if err := st.DecodeInput(&gotIn); err != nil {
		t.Fatal(err)
	}
	if err := st.DecodeCustomStatus(&custom); err != nil {
		t.Fatal(err)
	}
	if gotIn != in || out != in+in || custom != strings.Repeat("s", 1000) {
		t.Fatalf("status holds input of %d bytes, output of %d, custom status of %d", len(gotIn), len(out), len(custom))
	}
}
