package durable_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// testLogger shows warnings and errors in the test output.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openEngine starts an engine with reg in dir (a new temporary directory
// when empty) and stops it at the end of the test.
func openEngine(t *testing.T, reg *durable.Registry, dir string, tweak ...func(*durable.Config)) *durable.Engine {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := durable.Config{Dir: dir, Registry: reg, Logger: testLogger()}
	for _, f := range tweak {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := durable.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitOutput waits for an instance to complete and decodes its output.
func waitOutput(t *testing.T, c *durable.Client, id string, out any) *durable.Status {
	t.Helper()
	st, err := c.Wait(ctxFor(t, 60*time.Second), id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	if st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("instance %s is %s: %v", id, st.RuntimeStatus, st.Failure)
	}
	if out != nil {
		if err := st.DecodeOutput(out); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// patterns registers the five patterns and what they call.
type patterns struct {
	reg       *durable.Registry
	checks    atomic.Int32 // CheckJob calls, for the monitor
	escalated atomic.Int32
}

func newPatterns() *patterns {
	p := &patterns{reg: durable.NewRegistry()}
	greet := durable.RegisterActivity(p.reg, "Greet", func(_ context.Context, city string) (string, error) {
		return "Hello " + city, nil
	})
	durable.RegisterOrchestrator(p.reg, "Chain", func(ctx *orchestration.Context, cities []string) ([]string, error) {
		var out []string
		for _, city := range cities {
			s, err := greet.Call(ctx, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	square := durable.RegisterActivity(p.reg, "Square", func(_ context.Context, n int) (int, error) { return n * n, nil })
	durable.RegisterOrchestrator(p.reg, "FanOut", func(ctx *orchestration.Context, n int) (int, error) {
		futures := make([]orchestration.Future[int], n)
		tasks := make([]orchestration.Awaitable, n)
		for i := range n {
			futures[i] = square.Call(ctx, i)
			tasks[i] = futures[i]
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, f := range futures {
			v, _ := f.Await()
			sum += v
		}
		return sum, nil
	})
	durable.RegisterActivity(p.reg, "ExportPart", func(_ context.Context, part int) (int, error) { return part, nil })
	durable.RegisterOrchestrator(p.reg, "Export", func(ctx *orchestration.Context, parts int) (string, error) {
		for i := range parts {
			if err := ctx.SetCustomStatus(map[string]int{"done": i, "of": parts}); err != nil {
				return "", err
			}
			if err := ctx.CallActivity("ExportPart", i).Await(nil); err != nil {
				return "", err
			}
		}
		ctx.SetCustomStatus(map[string]int{"done": parts, "of": parts})
		return "export.zip", nil
	})
	check := durable.RegisterActivity(p.reg, "CheckJob", func(context.Context, any) (bool, error) {
		return p.checks.Add(1) >= 4, nil
	})
	durable.RegisterOrchestrator(p.reg, "Monitor", func(ctx *orchestration.Context, interval time.Duration) (int, error) {
		polls := 0
		for {
			polls++
			done, err := check.Call(ctx, nil).Await()
			if err != nil || done {
				return polls, err
			}
			if err := orchestration.Sleep(ctx, interval); err != nil {
				return polls, err
			}
			interval *= 2
		}
	})
	durable.RegisterActivity(p.reg, "Escalate", func(context.Context, string) (any, error) {
		p.escalated.Add(1)
		return nil, nil
	})
	durable.RegisterOrchestrator(p.reg, "Approval", func(ctx *orchestration.Context, timeout time.Duration) (string, error) {
		ok, err := orchestration.WaitForEvent[bool](ctx, "Approval", orchestration.WithTimeout(timeout)).Await()
		if errors.Is(err, orchestration.ErrTimeout) {
			return "escalated", ctx.CallActivity("Escalate", ctx.ID()).Await(nil)
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("approved=%v", ok), nil
	})
	return p
}

func TestChaining(t *testing.T) {
	p := newPatterns()
	c := openEngine(t, p.reg, "").Client()
	id, err := c.Start(ctxFor(t, 10*time.Second), "Chain", []string{"Tokyo", "Seattle", "London"}, durable.WithInstanceID("chain-1"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	st := waitOutput(t, c, id, &out)
	if strings.Join(out, ",") != "Hello Tokyo,Hello Seattle,Hello London" {
		t.Fatalf("output %v", out)
	}
	if st.Name != "Chain" || st.CreatedAt.IsZero() || st.LastUpdated.Before(st.CreatedAt) {
		t.Fatalf("status %+v", st)
	}
	var in []string
	st.DecodeInput(&in)
	if len(in) != 3 {
		t.Fatalf("input %v", in)
	}
	h, err := c.History(ctxFor(t, 10*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	scheduled := 0
	for _, ev := range h {
		if ev.Kind == orchestration.TaskScheduled {
			scheduled++
		}
	}
	if scheduled != 3 || h[len(h)-2].Kind != orchestration.ExecutionCompleted {
		t.Fatalf("history: %d TaskScheduled, ends %s", scheduled, h[len(h)-2].Kind)
	}
}

func TestFanOut500(t *testing.T) {
	p := newPatterns()
	c := openEngine(t, p.reg, "").Client()
	id, err := c.Start(ctxFor(t, 10*time.Second), "FanOut", 500)
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	waitOutput(t, c, id, &sum)
	want := 0
	for i := range 500 {
		want += i * i
	}
	if sum != want {
		t.Fatalf("sum %d, want %d", sum, want)
	}
}

func TestAsyncStatusPolling(t *testing.T) {
	p := newPatterns()
	c := openEngine(t, p.reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	id, err := c.Start(ctx, "Export", 3)
	if err != nil {
		t.Fatal(err)
	}
	// The client sees its own start at once.
	st, err := c.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.RuntimeStatus != orchestration.StatusRunning && st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("status right after start: %s", st.RuntimeStatus)
	}
	st = waitOutput(t, c, id, nil)
	var progress map[string]int
	if err := st.DecodeCustomStatus(&progress); err != nil || progress["done"] != 3 {
		t.Fatalf("custom status %s: %v", st.CustomStatus, err)
	}
	var out string
	st.DecodeOutput(&out)
	if out != "export.zip" {
		t.Fatalf("output %q", out)
	}
}

func TestMonitor(t *testing.T) {
	p := newPatterns()
	c := openEngine(t, p.reg, "").Client()
	id, err := c.Start(ctxFor(t, 10*time.Second), "Monitor", 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var polls int
	waitOutput(t, c, id, &polls)
	if polls != 4 {
		t.Fatalf("polled %d times", polls)
	}
}

func TestHumanInteraction(t *testing.T) {
	p := newPatterns()
	c := openEngine(t, p.reg, "").Client()
	ctx := ctxFor(t, 60*time.Second)
	t.Run("ApprovedBeforeTimeout", func(t *testing.T) {
		id, err := c.Start(ctx, "Approval", 72*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RaiseEvent(ctx, id, "Approval", true); err != nil {
			t.Fatal(err)
		}
		var out string
		waitOutput(t, c, id, &out)
		if out != "approved=true" {
			t.Fatalf("output %q", out)
		}
	})
	t.Run("TimeoutEscalates", func(t *testing.T) {
		before := p.escalated.Load()
		id, err := c.Start(ctx, "Approval", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var out string
		waitOutput(t, c, id, &out)
		if out != "escalated" || p.escalated.Load() != before+1 {
			t.Fatalf("output %q, escalations %d", out, p.escalated.Load()-before)
		}
		// An approval after the timeout is refused: the instance has ended.
		if err := c.RaiseEvent(ctx, id, "Approval", true); !errors.Is(err, durable.ErrInstanceNotRunning) {
			t.Fatalf("raise on a finished instance: %v", err)
		}
	})
}
