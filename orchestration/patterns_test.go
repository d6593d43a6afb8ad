package orchestration_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

// Events are compared without timestamps where the test is about the order
// and content of decisions; the tests about time compare FireAt instead.
var ignoreTimes = cmpopts.IgnoreFields(orchestration.HistoryEvent{}, "Timestamp")

type H = orchestration.HistoryEvent

func newEnv(t *testing.T, reg *orchestration.Registry) *orchestrationtest.Env {
	t.Helper()
	env := orchestrationtest.New(reg, orchestrationtest.Options{})
	t.Cleanup(env.Close)
	return env
}

func mustStart(t *testing.T, env *orchestrationtest.Env, name string, input any, opts orchestrationtest.StartOptions) string {
	t.Helper()
	id, err := env.Start(name, input, opts)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustComplete(t *testing.T, env *orchestrationtest.Env, id string) {
	t.Helper()
	status, err := env.RunToCompletion(id)
	if err != nil {
		t.Fatal(err)
	}
	if status != orchestration.StatusCompleted {
		t.Fatalf("status %s, failure %v, executor error %v", status, env.Failure(id), env.Err(id))
	}
}

func diffHistory(t *testing.T, want, got []H) {
	t.Helper()
	if diff := cmp.Diff(want, got, ignoreTimes, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
}

var greet = orchestration.NewActivity[string, string]("Greet")

func greetActivity(_ context.Context, city string) (string, error) {
	return "Hello " + city, nil
}

// Chaining: activities in sequence, each taking the previous output.
func TestChaining(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "HelloCities", func(ctx *orchestration.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			s, err := greet.Call(ctx, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	env := newEnv(t, reg)
	orchestrationtest.Activity(env, greet.Name, greetActivity)
	id := mustStart(t, env, "HelloCities", nil, orchestrationtest.StartOptions{InstanceID: "chain"})
	mustComplete(t, env, id)
	var out []string
	if err := env.Output(id, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Hello Tokyo", "Hello Seattle", "Hello London"}, out); diff != "" {
		t.Fatal(diff)
	}
	diffHistory(t, []H{
		{Kind: orchestration.OrchestratorStarted},
		{Kind: orchestration.ExecutionStarted, Name: "HelloCities", InstanceID: "chain"},
		{Kind: orchestration.TaskScheduled, EventID: 0, Name: "Greet", Input: []byte(`"Tokyo"`)},
		{Kind: orchestration.OrchestratorCompleted},
		{Kind: orchestration.OrchestratorStarted},
		{Kind: orchestration.TaskCompleted, EventID: 0, Result: []byte(`"Hello Tokyo"`)},
		{Kind: orchestration.TaskScheduled, EventID: 1, Name: "Greet", Input: []byte(`"Seattle"`)},
		{Kind: orchestration.OrchestratorCompleted},
		{Kind: orchestration.OrchestratorStarted},
		{Kind: orchestration.TaskCompleted, EventID: 1, Result: []byte(`"Hello Seattle"`)},
		{Kind: orchestration.TaskScheduled, EventID: 2, Name: "Greet", Input: []byte(`"London"`)},
		{Kind: orchestration.OrchestratorCompleted},
		{Kind: orchestration.OrchestratorStarted},
		{Kind: orchestration.TaskCompleted, EventID: 2, Result: []byte(`"Hello London"`)},
		{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted, Result: []byte(`["Hello Tokyo","Hello Seattle","Hello London"]`)},
		{Kind: orchestration.OrchestratorCompleted},
	}, env.History(id))
}

// Fan-out/fan-in: parallel activities, then one aggregating step.
func TestFanOutFanIn(t *testing.T) {
	const width = 500
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "FanOut", func(ctx *orchestration.Context, n int) (int, error) {
		tasks := make([]orchestration.Awaitable, n)
		futures := make([]orchestration.Future[int], n)
		for k := range n {
			futures[k] = orchestration.CallActivity[int](ctx, "Square", k)
			tasks[k] = futures[k]
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, f := range futures {
			v, err := f.Await()
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return orchestration.CallActivity[int](ctx, "Double", sum).Await()
	})
	env := newEnv(t, reg)
	orchestrationtest.Activity(env, "Square", func(_ context.Context, n int) (int, error) { return n * n, nil })
	orchestrationtest.Activity(env, "Double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	id := mustStart(t, env, "FanOut", width, orchestrationtest.StartOptions{})
	mustComplete(t, env, id)
	var got int
	if err := env.Output(id, &got); err != nil {
		t.Fatal(err)
	}
	want := 0
	for k := range width {
		want += k * k
	}
	if got != 2*want {
		t.Fatalf("output %d, want %d", got, 2*want)
	}
	h := env.History(id)
	// The first episode schedules all 500 activities at once.
	scheduled := 0
	for _, ev := range h[:width+3] {
		if ev.Kind == orchestration.TaskScheduled {
			scheduled++
		}
	}
	if scheduled != width {
		t.Fatalf("first episode scheduled %d activities, want %d", scheduled, width)
	}
	if env.ActivityCalls(id) != width+1 {
		t.Fatalf("%d activity calls, want %d", env.ActivityCalls(id), width+1)
	}
}

// Async HTTP APIs: a long job reports progress through custom status that a
// client polls, and completes with an output.
func TestAsyncStatus(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Export", func(ctx *orchestration.Context, parts int) (string, error) {
		for k := range parts {
			if err := ctx.SetCustomStatus(map[string]int{"done": k, "of": parts}); err != nil {
				return "", err
			}
			if err := ctx.CallActivity("ExportPart", k).Await(nil); err != nil {
				return "", err
			}
		}
		ctx.SetCustomStatus(map[string]int{"done": parts, "of": parts})
		return "export.zip", nil
	})
	env := newEnv(t, reg)
	env.RegisterActivity("ExportPart", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	id := mustStart(t, env, "Export", 3, orchestrationtest.StartOptions{})
	mustComplete(t, env, id)
	var status map[string]int
	if err := env.CustomStatus(id, &status); err != nil {
		t.Fatal(err)
	}
	if status["done"] != 3 || status["of"] != 3 {
		t.Fatalf("custom status %v", status)
	}
	// Each episode that changed the status recorded it in OrchestratorCompleted.
	var seen []string
	for _, ev := range env.History(id) {
		if ev.Kind == orchestration.OrchestratorCompleted && ev.CustomStatus != nil {
			seen = append(seen, string(ev.CustomStatus))
		}
	}
	want := []string{`{"done":0,"of":3}`, `{"done":1,"of":3}`, `{"done":2,"of":3}`, `{"done":3,"of":3}`}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Fatalf("custom status history (-want +got):\n%s", diff)
	}
}

// Monitor: poll until a condition holds, with a polling interval that grows,
// and give up at an expiry time.
func TestMonitor(t *testing.T) {
	type job struct {
		Expiry time.Time
	}
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Monitor", func(ctx *orchestration.Context, j job) (string, error) {
		interval := time.Minute
		for ctx.Now().Before(j.Expiry) {
			done, err := orchestration.CallActivity[bool](ctx, "CheckJob", nil).Await()
			if err != nil {
				return "", err
			}
			if done {
				return "done at " + ctx.Now().Format(time.RFC3339), nil
			}
			if err := orchestration.Sleep(ctx, interval); err != nil {
				return "", err
			}
			interval = min(2*interval, 10*time.Minute)
		}
		return "expired", nil
	})
	env := newEnv(t, reg)
	checks := 0
	orchestrationtest.Activity(env, "CheckJob", func(context.Context, any) (bool, error) {
		checks++
		return checks == 6, nil
	})
	start := env.Now()
	id := mustStart(t, env, "Monitor", job{Expiry: start.Add(2 * time.Hour)}, orchestrationtest.StartOptions{})
	mustComplete(t, env, id)
	var got string
	env.Output(id, &got)
	// 1+2+4+8+10 minutes of waiting before the sixth check.
	if want := "done at " + start.Add(25*time.Minute).Format(time.RFC3339); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	var waits []time.Duration
	last := start
	for _, ev := range env.History(id) {
		if ev.Kind == orchestration.TimerCreated {
			waits = append(waits, ev.FireAt.Sub(last))
		}
		if ev.Kind == orchestration.TimerFired {
			last = ev.FireAt
		}
	}
	if diff := cmp.Diff([]time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute}, waits); diff != "" {
		t.Fatalf("polling intervals (-want +got):\n%s", diff)
	}

	// And one that never succeeds expires.
	checks = -100
	id = mustStart(t, env, "Monitor", job{Expiry: env.Now().Add(30 * time.Minute)}, orchestrationtest.StartOptions{})
	mustComplete(t, env, id)
	env.Output(id, &got)
	if got != "expired" {
		t.Fatalf("output %q, want expired", got)
	}
}

// Human interaction: wait 72 hours for an approval, escalate on timeout.
func approvalRegistry() *orchestration.Registry {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Approval", func(ctx *orchestration.Context, request string) (string, error) {
		if err := ctx.CallActivity("RequestApproval", request).Await(nil); err != nil {
			return "", err
		}
		approved, err := orchestration.WaitForEvent[bool](ctx, "ApprovalEvent", orchestration.WithTimeout(72*time.Hour)).Await()
		switch {
		case errors.Is(err, orchestration.ErrTimeout):
			if err := ctx.CallActivity("Escalate", request).Await(nil); err != nil {
				return "", err
			}
			return "escalated", nil
		case err != nil:
			return "", err
		case approved:
			return "approved", nil
		}
		return "rejected", nil
	})
	return reg
}

func approvalEnv(t *testing.T) *orchestrationtest.Env {
	env := newEnv(t, approvalRegistry())
	env.RegisterActivity("RequestApproval", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	env.RegisterActivity("Escalate", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	return env
}

func TestHumanInteraction(t *testing.T) {
	output := func(t *testing.T, env *orchestrationtest.Env, id string) string {
		t.Helper()
		mustComplete(t, env, id)
		var s string
		if err := env.Output(id, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("ApprovedBeforeTimeout", func(t *testing.T) {
		env := approvalEnv(t)
		id := mustStart(t, env, "Approval", "expense-1", orchestrationtest.StartOptions{})
		if err := env.Advance(71 * time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := env.RaiseEvent(id, "ApprovalEvent", true); err != nil {
			t.Fatal(err)
		}
		if got := output(t, env, id); got != "approved" {
			t.Fatalf("got %q", got)
		}
		// The lost timer never fired into the code: the history has no TimerFired.
		if err := env.Advance(48 * time.Hour); err != nil {
			t.Fatal(err)
		}
		for _, ev := range env.History(id) {
			if ev.Kind == orchestration.TimerFired {
				t.Fatal("the cancelled timeout timer fired into the history")
			}
		}
	})
	t.Run("TimeoutEscalates", func(t *testing.T) {
		env := approvalEnv(t)
		id := mustStart(t, env, "Approval", "expense-2", orchestrationtest.StartOptions{})
		if err := env.Advance(72*time.Hour + time.Second); err != nil {
			t.Fatal(err)
		}
		if got := output(t, env, id); got != "escalated" {
			t.Fatalf("got %q", got)
		}
		// An approval after the timeout changes nothing.
		if err := env.RaiseEvent(id, "ApprovalEvent", true); err != nil {
			t.Fatal(err)
		}
		if env.Status(id) != orchestration.StatusCompleted {
			t.Fatalf("status %s", env.Status(id))
		}
	})
	t.Run("EventBeforeWait", func(t *testing.T) {
		// The approval arrives while RequestApproval is still running: it
		// is buffered and satisfies the wait that comes after.
		reg := approvalRegistry()
		env := newEnv(t, reg)
		var id string
		env.RegisterActivity("RequestApproval", func(context.Context, []byte) ([]byte, error) {
			if err := env.RaiseEvent(id, "approvalevent", true); err != nil { // names are case-insensitive
				return nil, err
			}
			return nil, nil
		})
		id = "early"
		mustStart(t, env, "Approval", "expense-3", orchestrationtest.StartOptions{InstanceID: id})
		if got := output(t, env, id); got != "approved" {
			t.Fatalf("got %q", got)
		}
		h := env.History(id)
		raised, requested := -1, -1
		for n, ev := range h {
			switch {
			case ev.Kind == orchestration.EventRaised:
				raised = n
			case ev.Kind == orchestration.TaskCompleted:
				requested = n
			}
		}
		if raised < 0 || requested < 0 || raised > requested {
			t.Fatalf("the event was not raised before the wait: EventRaised at %d, TaskCompleted at %d", raised, requested)
		}
	})
}

func TestRetries(t *testing.T) {
	flaky := func(failures int) (orchestrationtest.ActivityFunc, *int) {
		calls := 0
		return func(context.Context, []byte) ([]byte, error) {
			calls++
			if calls <= failures {
				return nil, fmt.Errorf("attempt %d failed", calls)
			}
			return []byte(`"ok"`), nil
		}, &calls
	}
	policy := orchestration.RetryPolicy{FirstRetryInterval: time.Second, BackoffCoefficient: 2, MaxAttempts: 4}
	register := func(p orchestration.RetryPolicy) *orchestration.Registry {
		reg := orchestration.NewRegistry()
		orchestration.Register(reg, "Retrying", func(ctx *orchestration.Context, _ any) (string, error) {
			return orchestration.CallActivity[string](ctx, "Flaky", nil, orchestration.WithRetry(p)).Await()
		})
		return reg
	}
	t.Run("SucceedsAfterBackoff", func(t *testing.T) {
		env := newEnv(t, register(policy))
		fn, calls := flaky(2)
		env.RegisterActivity("Flaky", fn)
		start := env.Now()
		id := mustStart(t, env, "Retrying", nil, orchestrationtest.StartOptions{})
		mustComplete(t, env, id)
		if *calls != 3 {
			t.Fatalf("%d calls, want 3", *calls)
		}
		var fires []time.Duration
		for _, ev := range env.History(id) {
			if ev.Kind == orchestration.TimerCreated {
				fires = append(fires, ev.FireAt.Sub(start))
			}
		}
		// Waits of 1s then 2s (coefficient 2), on durable timers.
		if diff := cmp.Diff([]time.Duration{time.Second, 3 * time.Second}, fires); diff != "" {
			t.Fatalf("retry timers (-want +got):\n%s", diff)
		}
	})
	t.Run("GivesUpAfterMaxAttempts", func(t *testing.T) {
		env := newEnv(t, register(policy))
		fn, calls := flaky(10)
		env.RegisterActivity("Flaky", fn)
		id := mustStart(t, env, "Retrying", nil, orchestrationtest.StartOptions{})
		if status, _ := env.RunToCompletion(id); status != orchestration.StatusFailed {
			t.Fatalf("status %s", status)
		}
		if *calls != 4 {
			t.Fatalf("%d calls, want 4 (MaxAttempts counts the first)", *calls)
		}
		f := env.Failure(id)
		if f == nil || f.Inner == nil || f.Inner.Message != "attempt 4 failed" {
			t.Fatalf("failure %+v", f)
		}
	})
	t.Run("HandleStopsRetrying", func(t *testing.T) {
		p := policy
		p.Handle = func(err error) bool { return false }
		env := newEnv(t, register(p))
		fn, calls := flaky(10)
		env.RegisterActivity("Flaky", fn)
		id := mustStart(t, env, "Retrying", nil, orchestrationtest.StartOptions{})
		env.RunToCompletion(id)
		if *calls != 1 {
			t.Fatalf("%d calls, want 1", *calls)
		}
	})
	t.Run("RetryTimeout", func(t *testing.T) {
		p := policy
		p.MaxAttempts = 100
		p.RetryTimeout = 10 * time.Second
		env := newEnv(t, register(p))
		fn, calls := flaky(1000)
		env.RegisterActivity("Flaky", fn)
		id := mustStart(t, env, "Retrying", nil, orchestrationtest.StartOptions{})
		env.RunToCompletion(id)
		// As in DTFx, the timeout is checked when an attempt fails:
		// attempts at 0s, 1s, 3s, 7s and 15s; after the failure at 15s
		// (past 10s) no further retry.
		if *calls != 5 {
			t.Fatalf("%d calls, want 5", *calls)
		}
	})
	t.Run("InvalidPolicy", func(t *testing.T) {
		env := newEnv(t, register(orchestration.RetryPolicy{MaxAttempts: 3}))
		env.RegisterActivity("Flaky", func(context.Context, []byte) ([]byte, error) { return nil, nil })
		id := mustStart(t, env, "Retrying", nil, orchestrationtest.StartOptions{})
		env.RunToCompletion(id)
		if f := env.Failure(id); f == nil || f.Message != "orchestration: retry policy FirstRetryInterval is 0s, must be positive" {
			t.Fatalf("failure %v", f)
		}
	})
}

func TestSubOrchestrations(t *testing.T) {
	reg := orchestration.NewRegistry()
	child := orchestration.Register(reg, "Child", func(ctx *orchestration.Context, n int) (int, error) {
		if n < 0 {
			return 0, errors.New("negative input")
		}
		v, err := orchestration.CallActivity[int](ctx, "Inc", n).Await()
		return v, err
	})
	orchestration.Register(reg, "Parent", func(ctx *orchestration.Context, n int) (int, error) {
		a := child.CallSub(ctx, n)
		b := child.CallSub(ctx, n+10, orchestration.WithInstanceID("named-child"))
		x, err := a.Await()
		if err != nil {
			return 0, err
		}
		y, err := b.Await()
		if err != nil {
			return 0, err
		}
		_, err = child.CallSub(ctx, -1).Await()
		var tf *orchestration.TaskFailedError
		if !errors.As(err, &tf) || tf.Kind != orchestration.SubOrchestrationTask || tf.Name != "Child" || tf.Failure.Message != "negative input" {
			return 0, fmt.Errorf("child failure not propagated: %v", err)
		}
		return x + y, nil
	})
	env := newEnv(t, reg)
	orchestrationtest.Activity(env, "Inc", func(_ context.Context, n int) (int, error) { return n + 1, nil })
	id := mustStart(t, env, "Parent", 1, orchestrationtest.StartOptions{InstanceID: "p"})
	mustComplete(t, env, id)
	var got int
	env.Output(id, &got)
	if got != 2+12 {
		t.Fatalf("output %d", got)
	}
	if env.Status("p:0000") != orchestration.StatusCompleted || env.Status("named-child") != orchestration.StatusCompleted {
		t.Fatalf("children: %s, %s", env.Status("p:0000"), env.Status("named-child"))
	}
	start := env.History("named-child")[1]
	if diff := cmp.Diff(&orchestration.ParentInstance{InstanceID: "p", Name: "Parent", EventID: 1}, start.Parent); diff != "" {
		t.Fatalf("parent (-want +got):\n%s", diff)
	}
}

func TestContinueAsNew(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Counter", func(ctx *orchestration.Context, n int) (int, error) {
		if n >= 3 {
			// The events carried over from earlier generations are here.
			var total int
			for range 2 {
				v, err := orchestration.WaitForEvent[int](ctx, "add").Await()
				if err != nil {
					return 0, err
				}
				total += v
			}
			return n*100 + total + ctx.Generation()*1000, nil
		}
		if err := ctx.CallActivity("Work", n).Await(nil); err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(n + 1)
	})
	env := newEnv(t, reg)
	var id string
	env.RegisterActivity("Work", func(_ context.Context, in []byte) ([]byte, error) {
		// Events raised while generation 0 runs are carried over.
		if string(in) == "0" {
			env.RaiseEvent(id, "add", 5)
			env.RaiseEvent(id, "add", 7)
		}
		return nil, nil
	})
	id = "counter"
	mustStart(t, env, "Counter", 0, orchestrationtest.StartOptions{InstanceID: id})
	mustComplete(t, env, id)
	var got int
	env.Output(id, &got)
	if got != 3*100+12+3*1000 {
		t.Fatalf("output %d", got)
	}
	var generations []int32
	for _, ev := range env.History(id) {
		if ev.Kind == orchestration.ExecutionStarted {
			generations = append(generations, ev.Generation)
		}
	}
	if diff := cmp.Diff([]int32{0, 1, 2, 3}, generations); diff != "" {
		t.Fatalf("generations (-want +got):\n%s", diff)
	}
}

func TestDropUnprocessedEvents(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Dropper", func(ctx *orchestration.Context, n int) (string, error) {
		if n == 0 {
			if err := orchestration.Sleep(ctx, time.Hour); err != nil {
				return "", err
			}
			return "", ctx.ContinueAsNew(1, orchestration.DropUnprocessedEvents())
		}
		v, err := orchestration.WaitForEvent[string](ctx, "e", orchestration.WithTimeout(time.Minute)).Await()
		if errors.Is(err, orchestration.ErrTimeout) {
			return "dropped", nil
		}
		return v, err
	})
	env := newEnv(t, reg)
	id := mustStart(t, env, "Dropper", 0, orchestrationtest.StartOptions{})
	env.RaiseEvent(id, "e", "kept?")
	mustComplete(t, env, id)
	var got string
	env.Output(id, &got)
	if got != "dropped" {
		t.Fatalf("output %q", got)
	}
}

func TestBufferedEvents(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Collect", func(ctx *orchestration.Context, _ any) ([]string, error) {
		if err := orchestration.Sleep(ctx, time.Hour); err != nil {
			return nil, err
		}
		var got []string
		for range 3 {
			v, err := orchestration.WaitForEvent[string](ctx, "Item").Await()
			if err != nil {
				return nil, err
			}
			got = append(got, v)
		}
		return got, nil
	})
	env := newEnv(t, reg)
	id := mustStart(t, env, "Collect", nil, orchestrationtest.StartOptions{})
	// Three events arrive before anyone waits; each satisfies one wait, oldest first.
	env.RaiseEvent(id, "item", "a")
	env.RaiseEvent(id, "ITEM", "b")
	env.RaiseEvent(id, "Item", "c")
	mustComplete(t, env, id)
	var got []string
	env.Output(id, &got)
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Fatal(diff)
	}
}

func TestWhenAnyTimeout(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Race", func(ctx *orchestration.Context, _ any) (string, error) {
		work := ctx.CallActivity("Slow", nil)
		deadline := ctx.CreateTimer(time.Minute)
		winner, err := orchestration.WhenAny(ctx, work, deadline).Await()
		if err != nil {
			return "", err
		}
		if winner == 1 {
			// The activity still completes; awaiting it later works.
			if err := work.Await(nil); err != nil {
				return "", err
			}
			return "timer first, then work", nil
		}
		if err := deadline.Await(nil); !errors.Is(err, orchestration.ErrCanceled) {
			return "", fmt.Errorf("lost timer: %v", err)
		}
		return "work first", nil
	})
	env := newEnv(t, reg)
	env.RegisterActivity("Slow", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	id := mustStart(t, env, "Race", nil, orchestrationtest.StartOptions{})
	mustComplete(t, env, id)
	var got string
	env.Output(id, &got)
	if got != "work first" {
		t.Fatalf("output %q", got)
	}
}

func TestSuspendResume(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Pausable", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.WaitForEvent[string](ctx, "go").Await()
	})
	env := newEnv(t, reg)
	id := mustStart(t, env, "Pausable", nil, orchestrationtest.StartOptions{})
	if err := env.Suspend(id, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if env.Status(id) != orchestration.StatusSuspended {
		t.Fatalf("status %s", env.Status(id))
	}
	env.RaiseEvent(id, "go", "went")
	if env.Status(id) != orchestration.StatusSuspended {
		t.Fatalf("an event ran a suspended instance: status %s", env.Status(id))
	}
	if err := env.Resume(id, ""); err != nil {
		t.Fatal(err)
	}
	mustComplete(t, env, id)
	var got string
	env.Output(id, &got)
	if got != "went" {
		t.Fatalf("output %q", got)
	}
}

func TestTerminate(t *testing.T) {
	reg := orchestration.NewRegistry()
	cleaned := false
	orchestration.Register(reg, "Forever", func(ctx *orchestration.Context, _ any) (any, error) {
		defer func() { cleaned = true }()
		return nil, ctx.WaitForEvent("never").Await(nil)
	})
	env := newEnv(t, reg)
	id := mustStart(t, env, "Forever", nil, orchestrationtest.StartOptions{})
	if err := env.Terminate(id, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	if env.Status(id) != orchestration.StatusTerminated {
		t.Fatalf("status %s", env.Status(id))
	}
	if !cleaned {
		t.Fatal("the orchestrator's deferred functions did not run when it was terminated")
	}
	h := env.History(id)
	last := h[len(h)-2]
	if last.Kind != orchestration.ExecutionCompleted || last.Status != orchestration.StatusTerminated || string(last.Result) != `"no longer needed"` {
		t.Fatalf("last decision %+v", last)
	}
	// Later inputs do nothing.
	env.RaiseEvent(id, "never", nil)
	if len(env.History(id)) != len(h) {
		t.Fatal("a terminated instance recorded more history")
	}
}

func TestOrchestratorFailures(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Errs", func(ctx *orchestration.Context) (any, error) { return nil, errors.New("boom") })
	reg.Add("Panics", func(ctx *orchestration.Context) (any, error) {
		var m map[string]int
		m["x"] = 1
		return nil, nil
	})
	reg.Add("ActivityFails", func(ctx *orchestration.Context) (any, error) {
		return nil, ctx.CallActivity("Bad", nil).Await(nil)
	})
	env := newEnv(t, reg)
	env.RegisterActivity("Bad", func(context.Context, []byte) ([]byte, error) { panic("activity exploded") })

	id := mustStart(t, env, "Errs", nil, orchestrationtest.StartOptions{})
	if f := env.Failure(id); f == nil || f.Message != "boom" || f.ErrorType != "*errors.errorString" {
		t.Fatalf("failure %+v", f)
	}
	id = mustStart(t, env, "Panics", nil, orchestrationtest.StartOptions{})
	f := env.Failure(id)
	if f == nil || f.ErrorType != "panic" || f.Message != "assignment to entry in nil map" || !contains(f.StackTrace, "patterns_test.go") {
		t.Fatalf("failure %+v", f)
	}
	id = mustStart(t, env, "ActivityFails", nil, orchestrationtest.StartOptions{})
	f = env.Failure(id)
	if f == nil || f.Inner == nil || f.Inner.ErrorType != "panic" || f.Inner.Message != "activity exploded" || f.Inner.StackTrace == "" {
		t.Fatalf("failure %+v", f)
	}
	if f.Message != `activity "Bad" failed: panic: activity exploded` {
		t.Fatalf("message %q", f.Message)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestContinueAsNewDropsEarlierOutcomes: outcomes of work an earlier
// generation started (an activity, a sub-orchestration) do not complete the
// decisions of the next generation that have the same sequence numbers.
func TestContinueAsNewDropsEarlierOutcomes(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Restart", func(ctx *orchestration.Context) (any, error) {
		if ctx.Generation() == 0 {
			ctx.CallActivity("Old", nil) // not awaited
			ctx.CallSubOrchestrator("Child", "old", orchestration.WithInstanceID("old-child"))
			return nil, ctx.ContinueAsNew(nil)
		}
		var a, b string
		if err := ctx.CallActivity("New", nil).Await(&a); err != nil {
			return nil, err
		}
		if err := ctx.CallSubOrchestrator("Child", "new", orchestration.WithInstanceID("new-child")).Await(&b); err != nil {
			return nil, err
		}
		return a + " " + b, nil
	})
	reg.Add("Child", func(ctx *orchestration.Context) (any, error) {
		var in string
		if err := ctx.Input(&in); err != nil {
			return nil, err
		}
		if in == "new" {
			// Done after the old child, so its outcome arrives first.
			if err := ctx.CreateTimer(time.Hour).Await(nil); err != nil {
				return nil, err
			}
		}
		return in, nil
	})
	env := newEnv(t, reg)
	env.RegisterActivity("Old", func(context.Context, []byte) ([]byte, error) { return []byte(`"old"`), nil })
	env.RegisterActivity("New", func(context.Context, []byte) ([]byte, error) { return []byte(`"new"`), nil })
	id := mustStart(t, env, "Restart", nil, orchestrationtest.StartOptions{})
	mustComplete(t, env, id)
	var out string
	if err := env.Output(id, &out); err != nil || out != "new new" {
		t.Fatalf("output %q, %v", out, err)
	}
}

// TestCarriedEventKeepsItsRequest: an event carried into the next
// generation keeps its name as raised and its request ID, so a redelivery
// of it there is still a duplicate.
func TestCarriedEventKeepsItsRequest(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Carry", func(ctx *orchestration.Context) (any, error) {
		if ctx.Generation() == 0 {
			if err := ctx.CreateTimer(time.Hour).Await(nil); err != nil {
				return nil, err
			}
			return nil, ctx.ContinueAsNew(nil)
		}
		for range 2 {
			if err := ctx.WaitForEvent("approve").Await(nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer func() { inst.Close() }()
	inst.Step(now, H{Kind: orchestration.ExecutionStarted, Name: "Carry", InstanceID: "c"})
	raised := H{Kind: orchestration.EventRaised, Name: "Approve", Input: []byte("1"), RequestID: "req-1"}
	inst.Step(now, raised)
	ep, err := inst.Step(now.Add(time.Hour), H{Kind: orchestration.TimerFired, EventID: 0, FireAt: now.Add(time.Hour)})
	if err != nil || !ep.ContinuedAsNew {
		t.Fatalf("continued as new %v, %v", ep.ContinuedAsNew, err)
	}
	next := ep.Events[ep.NewGeneration:]
	carried := next[len(next)-1]
	if carried.Kind != orchestration.EventRaised || carried.Name != "Approve" || carried.RequestID != "req-1" {
		t.Fatalf("carried %+v", carried)
	}
	inst.Close()
	inst = orchestration.NewInstance(reg, orchestration.Options{})
	if _, err := inst.Replay(next); err != nil {
		t.Fatal(err)
	}
	if ep, _ := inst.Step(now.Add(2*time.Hour), raised); len(ep.Events) != 0 {
		t.Fatalf("the redelivered event was recorded again: %v", ep.Events)
	}
	if inst.Status() != orchestration.StatusRunning {
		t.Fatalf("status %s", inst.Status())
	}
}

// TestTerminateReasonUsesTheConverter: the harness encodes reasons with the
// executor's converter, as the client does, so any reason decodes.
func TestTerminateReasonUsesTheConverter(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Forever", func(ctx *orchestration.Context) (any, error) {
		return nil, ctx.WaitForEvent("never").Await(nil)
	})
	env := newEnv(t, reg)
	id := mustStart(t, env, "Forever", nil, orchestrationtest.StartOptions{})
	const reason = "stopped\x01 by \u00e9\x7f"
	if err := env.Terminate(id, reason); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := env.Output(id, &got); err != nil || got != reason {
		t.Fatalf("reason %q, %v", got, err)
	}
}
