package orchestration_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

// TestEntityDecisions: entity calls, signals and a critical section are
// decisions in the history, in order; the section is released before the
// completion; its ID names the decision.
func TestEntityDecisions(t *testing.T) {
	reg := orchestration.NewRegistry()
	a, b := entities.NewID("Account", "b"), entities.NewID("account", "a")
	orchestration.Register(reg, "Move", func(ctx *orchestration.Context, _ any) (int, error) {
		if err := ctx.SignalEntity(entities.NewID("log", "1"), "note", "start", entities.At(ctx.Now().Add(time.Hour))); err != nil {
			return 0, err
		}
		s, err := ctx.LockEntities(a, b, a)
		if err != nil {
			return 0, err
		}
		n, err := orchestration.CallEntity[int](ctx, a, "balance", nil).Await()
		if err != nil {
			return 0, err
		}
		_ = s
		return n, nil // the section is still held: released at the end
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	var all []H
	step := func(in ...H) {
		ep, err := inst.Step(now, in...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ep.Events...)
	}
	step(H{Kind: orchestration.ExecutionStarted, Name: "Move", InstanceID: "m"})
	step(H{Kind: orchestration.EntityLockGranted, EventID: 1})
	step(H{Kind: orchestration.EntityOperationCompleted, EventID: 2, Result: []byte("7")})
	var got []string
	for _, ev := range all {
		switch ev.Kind {
		case orchestration.EntityOperationSignaled, orchestration.EntityOperationCalled, orchestration.EntityUnlockSent:
			got = append(got, fmt.Sprintf("%s #%d %s %s %s", ev.Kind, ev.EventID, ev.InstanceID, ev.Name, ev.LockID))
		case orchestration.EntityLockRequested:
			got = append(got, fmt.Sprintf("%s #%d %v %s", ev.Kind, ev.EventID, ev.LockSet, ev.LockID))
		case orchestration.ExecutionCompleted:
			got = append(got, fmt.Sprintf("%s %s", ev.Status, ev.Result))
		}
	}
	want := []string{
		"EntityOperationSignaled #0 log@1 note ",
		"EntityLockRequested #1 [account@a account@b] m:0:1",
		"EntityOperationCalled #2 account@b balance m:0:1",
		"EntityUnlockSent #3 account@a  m:0:1",
		"EntityUnlockSent #4 account@b  m:0:1",
		"Completed 7",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("decisions (-want +got):\n%s", diff)
	}

	// Replayed, the history confirms every decision.
	again := orchestration.NewInstance(reg, orchestration.Options{})
	defer again.Close()
	if ep, err := again.Replay(all); err != nil || len(ep.Events) != 0 || again.Status() != orchestration.StatusCompleted {
		t.Fatalf("replay: %v, %v, %s", ep.Events, err, again.Status())
	}
	// Code that calls another entity no longer matches it.
	changed := orchestration.NewRegistry()
	orchestration.Register(changed, "Move", func(ctx *orchestration.Context, _ any) (int, error) {
		if err := ctx.SignalEntity(entities.NewID("log", "2"), "note", "start"); err != nil {
			return 0, err
		}
		return 0, ctx.WaitForEvent("never").Await(nil)
	})
	diverged := orchestration.NewInstance(changed, orchestration.Options{})
	defer diverged.Close()
	diverged.Replay(all)
	if err := diverged.Err(); !errors.Is(err, orchestration.ErrNonDeterminism) {
		t.Fatalf("a signal to another entity replayed without complaint: %v", err)
	}
}

// TestEntityCallFailure: a failed entity operation is a TaskFailedError of
// kind EntityTask.
func TestEntityCallFailure(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Call", func(ctx *orchestration.Context, _ any) (any, error) {
		return nil, ctx.CallEntity(entities.NewID("x", "1"), "op", nil).Await(nil)
	})
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	now := time.Now()
	inst.Step(now, H{Kind: orchestration.ExecutionStarted, Name: "Call", InstanceID: "c"})
	inst.Step(now, H{Kind: orchestration.EntityOperationFailed, EventID: 0, Failure: &orchestration.FailureDetails{ErrorType: "E", Message: "no"}})
	_, f := inst.Output()
	if inst.Status() != orchestration.StatusFailed || f == nil || f.Inner == nil || f.Inner.Message != "no" {
		t.Fatalf("%s %+v", inst.Status(), f)
	}
	if f.ErrorType != "*orchestration.TaskFailedError" || f.Message != `entity operation "x@1 op" failed: E: no` {
		t.Fatalf("failure %+v", f)
	}
}

// TestHarnessRunsEntities: the test harness runs entities in memory, so an
// orchestration that calls and locks them is tested like any other.
func TestHarnessRunsEntities(t *testing.T) {
	reg := orchestration.NewRegistry()
	account, err := entities.Define("account", entities.Ops[int]{
		"deposit": entities.Update(func(_ *entities.Context, b *int, n int) error { *b += n; return nil }),
		"withdraw": entities.Update(func(_ *entities.Context, b *int, n int) error {
			if *b < n {
				return fmt.Errorf("only %d", *b)
			}
			*b -= n
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	orchestration.Register(reg, "Move", func(ctx *orchestration.Context, n int) (string, error) {
		from, to := entities.NewID("account", "a"), entities.NewID("account", "b")
		s, err := ctx.LockEntities(from, to)
		if err != nil {
			return "", err
		}
		defer s.Release()
		if err := ctx.CallEntity(from, "withdraw", n).Await(nil); err != nil {
			return "refused", nil
		}
		return "moved", ctx.CallEntity(to, "deposit", n).Await(nil)
	})
	env := newEnv(t, reg)
	env.RegisterEntity(account)
	if err := env.SignalEntity(entities.NewID("account", "a"), "deposit", 10); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    int
		want string
	}{{7, "moved"}, {5, "refused"}} {
		n, want := c.n, c.want
		id := mustStart(t, env, "Move", n, orchestrationtest.StartOptions{})
		mustComplete(t, env, id)
		var got string
		if err := env.Output(id, &got); err != nil || got != want {
			t.Fatalf("moving %d: %q (%v), want %q", n, got, err, want)
		}
	}
	var a, b int
	env.EntityState(entities.NewID("account", "a"), &a)
	env.EntityState(entities.NewID("account", "b"), &b)
	if a != 3 || b != 7 {
		t.Fatalf("balances %d and %d, want 3 and 7", a, b)
	}
}
