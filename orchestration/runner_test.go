package orchestration_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

func TestRunActivity(t *testing.T) {
	ctx := context.Background()
	echo := func(_ context.Context, in []byte) ([]byte, error) { return in, nil }
	if out, f := orchestration.RunActivity(ctx, "Echo", echo, []byte(`"x"`), 0); f != nil || string(out) != `"x"` {
		t.Fatalf("result %s, failure %v", out, f)
	}
	if out, f := orchestration.RunActivity(ctx, "Missing", nil, nil, 0); out != nil || f == nil ||
		f.ErrorType != "ActivityNotFound" || !f.NonRetriable || f.Message != `no activity is registered under the name "Missing"` {
		t.Fatalf("missing: result %s, failure %+v", out, f)
	}
	boom := func(context.Context, []byte) ([]byte, error) { return nil, errors.New("boom") }
	if _, f := orchestration.RunActivity(ctx, "Boom", boom, nil, 0); f == nil || f.ErrorType != "*errors.errorString" || f.Message != "boom" {
		t.Fatalf("error: failure %+v", f)
	}
	explode := func(context.Context, []byte) ([]byte, error) { panic("exploded") }
	if out, f := orchestration.RunActivity(ctx, "Explode", explode, nil, 0); out != nil || f == nil ||
		f.ErrorType != "panic" || f.Message != "exploded" || !strings.Contains(f.StackTrace, "runner_test.go") {
		t.Fatalf("panic: result %s, failure %+v", out, f)
	}
	if out, f := orchestration.RunActivity(ctx, "Echo", echo, []byte("12345"), 4); out != nil || f == nil ||
		f.ErrorType != "*orchestration.LimitError" || f.Message != `orchestration: result of activity "Echo" is 5, over the limit of 4` {
		t.Fatalf("oversized: result %s, failure %+v", out, f)
	}
}

func TestSubOrchestrationOutcome(t *testing.T) {
	completed := orchestration.SubOrchestrationOutcome(3, orchestration.HistoryEvent{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted, Result: []byte("1")})
	if completed.Kind != orchestration.SubOrchestrationInstanceCompleted || completed.EventID != 3 || string(completed.Result) != "1" {
		t.Fatalf("completed: %+v", completed)
	}
	failure := &orchestration.FailureDetails{ErrorType: "E", Message: "m"}
	failed := orchestration.SubOrchestrationOutcome(4, orchestration.HistoryEvent{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusFailed, Failure: failure})
	if failed.Kind != orchestration.SubOrchestrationInstanceFailed || failed.EventID != 4 || failed.Failure != failure {
		t.Fatalf("failed: %+v", failed)
	}
	terminated := orchestration.SubOrchestrationOutcome(5, orchestration.HistoryEvent{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusTerminated, Result: []byte(`"why"`)})
	if terminated.Kind != orchestration.SubOrchestrationInstanceFailed || terminated.EventID != 5 || terminated.Result != nil ||
		*terminated.Failure != (orchestration.FailureDetails{ErrorType: "Terminated", Message: "sub-orchestration was Terminated"}) {
		t.Fatalf("terminated: %+v", terminated)
	}
}

// TestHarnessActivityFailures: the harness reports a missing activity and
// an oversized result as the runtime does.
func TestHarnessActivityFailures(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Call", func(ctx *orchestration.Context) (any, error) {
		var name string
		if err := ctx.Input(&name); err != nil {
			return nil, err
		}
		return nil, ctx.CallActivity(name, nil, orchestration.WithRetry(orchestration.RetryPolicy{FirstRetryInterval: time.Second, MaxAttempts: 3})).Await(nil)
	})
	env := orchestrationtest.New(reg, orchestrationtest.Options{Executor: orchestration.Options{MaxPayloadSize: 16}})
	defer env.Close()
	env.RegisterActivity("Big", func(context.Context, []byte) ([]byte, error) { return []byte(`"seventeen bytes"`), nil })
	for name, want := range map[string]orchestration.FailureDetails{
		"Missing": {ErrorType: "ActivityNotFound", Message: `no activity is registered under the name "Missing"`, NonRetriable: true},
		"Big":     {ErrorType: "*orchestration.LimitError", Message: `orchestration: result of activity "Big" is 17, over the limit of 16`},
	} {
		id, err := env.Start("Call", name, orchestrationtest.StartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.RunToCompletion(id); err != nil {
			t.Fatal(err)
		}
		f := env.Failure(id)
		if f == nil || f.Inner == nil || *f.Inner != want {
			t.Fatalf("%s: failure %+v", name, f)
		}
		if calls, wantCalls := env.ActivityCalls(id), map[bool]int{true: 1, false: 3}[want.NonRetriable]; calls != wantCalls {
			t.Fatalf("%s: %d calls, want %d", name, calls, wantCalls)
		}
	}
}
