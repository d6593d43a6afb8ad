package durable_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// openAt opens and starts an engine without registering its Stop, for
// tests that stop and reopen it themselves.
func openAt(t *testing.T, reg *durable.Registry, dir string, tweak ...func(*durable.Config)) *durable.Engine {
	t.Helper()
	cfg := durable.Config{Dir: dir, Registry: reg, Logger: testLogger()}
	for _, f := range tweak {
		f(&cfg)
	}
	ctx := ctxFor(t, 30*time.Second)
	e, err := durable.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func stop(t *testing.T, e *durable.Engine) {
	t.Helper()
	if err := e.Stop(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestRetryAcrossRestart: a retry waits on a durable timer; the engine is
// stopped while it waits and reopened, and the retry still happens.
func TestRetryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	newReg := func() *durable.Registry {
		reg := durable.NewRegistry()
		durable.RegisterActivity(reg, "Flaky", func(ctx context.Context, n int) (int, error) {
			calls.Add(1)
			if info, _ := durable.ActivityInfoFrom(ctx); info.EventID == 0 {
				return 0, fmt.Errorf("first attempt fails")
			}
			return n * 2, nil
		})
		durable.RegisterOrchestrator(reg, "Retrying", func(ctx *orchestration.Context, n int) (int, error) {
			return orchestration.CallActivity[int](ctx, "Flaky", n, orchestration.WithRetry(orchestration.RetryPolicy{
				FirstRetryInterval: 1500 * time.Millisecond, MaxAttempts: 3})).Await()
		})
		return reg
	}
	e := openAt(t, newReg(), dir)
	c := e.Client()
	id, err := c.Start(ctxFor(t, 10*time.Second), "Retrying", 21)
	if err != nil {
		t.Fatal(err)
	}
	// Stop once the failure and the retry timer are recorded.
	eventually(t, func() bool { return containsKind(mustHistory(t, c, id), orchestration.TimerCreated) })
	stop(t, e)
	if calls.Load() != 1 {
		t.Fatalf("%d calls before the restart", calls.Load())
	}

	e = openAt(t, newReg(), dir)
	defer stop(t, e)
	var out int
	waitOutput(t, e.Client(), id, &out)
	if out != 42 || calls.Load() != 2 {
		t.Fatalf("output %d after %d calls", out, calls.Load())
	}
}

// TestGracefulStop: Stop lets a running activity finish and records its
// result; one that does not finish in time is cancelled and runs again
// after the restart.
func TestGracefulStop(t *testing.T) {
	dir := t.TempDir()
	started := make(chan time.Duration, 3)
	var shortRuns, longRuns atomic.Int32
	newReg := func() *durable.Registry {
		reg := durable.NewRegistry()
		durable.RegisterActivity(reg, "Slow", func(ctx context.Context, d time.Duration) (string, error) {
			if d == time.Hour {
				longRuns.Add(1)
			} else {
				shortRuns.Add(1)
			}
			started <- d
			select {
			case <-time.After(d):
				return "finished", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		})
		durable.RegisterOrchestrator(reg, "Work", func(ctx *orchestration.Context, d time.Duration) (string, error) {
			return orchestration.CallActivity[string](ctx, "Slow", d).Await()
		})
		return reg
	}
	e := openAt(t, newReg(), dir, func(c *durable.Config) { c.ShutdownTimeout = time.Second })
	c := e.Client()
	ctx := ctxFor(t, 30*time.Second)
	short, err := c.Start(ctx, "Work", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	long, err := c.Start(ctx, "Work", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	<-started
	begun := time.Now()
	stop(t, e)
	if d := time.Since(begun); d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("Stop took %s", d)
	}

	e = openAt(t, newReg(), dir, func(c *durable.Config) { c.ShutdownTimeout = time.Second })
	defer stop(t, e)
	c = e.Client()
	var out string
	st := waitOutput(t, c, short, &out)
	if out != "finished" || st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("short activity: %q", out)
	}
	// The cancelled one runs again (at least once, as promised) after the
	// restart; the one that finished does not.
	select {
	case d := <-started:
		if d != time.Hour {
			t.Fatalf("the finished activity ran again after the restart")
		}
	case <-ctx.Done():
		t.Fatal("the cut-short activity did not run again after the restart")
	}
	if shortRuns.Load() != 1 || longRuns.Load() != 2 {
		t.Fatalf("short ran %d times, long %d times", shortRuns.Load(), longRuns.Load())
	}
	if err := c.Terminate(ctx, long, "test over"); err != nil {
		t.Fatal(err)
	}
}
