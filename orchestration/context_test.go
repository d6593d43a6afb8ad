package orchestration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDeterministicContext checks that time, UUIDs and the replay flag are
// the same on replay, and that the replay-safe logger logs each message once.
func TestDeterministicContext(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	type seen struct {
		Times []time.Time
		UUIDs []uuid.UUID
	}
	// How often each step ran live and replaying; the harness replays the
	// history after every episode.
	var live, replaying [3]int
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Det", func(ctx *orchestration.Context, _ any) (seen, error) {
		var s seen
		for k := range 3 {
			s.Times = append(s.Times, ctx.Now())
			s.UUIDs = append(s.UUIDs, ctx.NewUUID())
			if ctx.IsReplaying() {
				replaying[k]++
			} else {
				live[k]++
			}
			ctx.Logger().Info("step", "k", k)
			if err := orchestration.Sleep(ctx, time.Hour); err != nil {
				return s, err
			}
		}
		return s, nil
	})
	env := orchestrationtest.New(reg, orchestrationtest.Options{Executor: orchestration.Options{Logger: logger}})
	defer env.Close()
	id, err := env.Start("Det", nil, orchestrationtest.StartOptions{InstanceID: "det"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.RunToCompletion(id); err != nil {
		t.Fatal(err)
	}
	var got seen
	if err := env.Output(id, &got); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for k, at := range got.Times {
		if !at.Equal(start.Add(time.Duration(k) * time.Hour)) {
			t.Fatalf("time %d is %s", k, at)
		}
	}
	if got.UUIDs[0] == got.UUIDs[1] || got.UUIDs[0].Version() != 5 {
		t.Fatalf("uuids %v", got.UUIDs)
	}
	// Each step ran live exactly once; every other run of it was a replay.
	if live != [3]int{1, 1, 1} || replaying[0] == 0 {
		t.Fatalf("steps ran live %v times and replaying %v times", live, replaying)
	}
	// The harness replays the history after every episode, yet each message
	// was logged once.
	if n := strings.Count(logs.String(), "msg=step"); n != 3 {
		t.Fatalf("logged %d times, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "instance=det orchestrator=Det") {
		t.Fatalf("log lacks the instance: %s", logs.String())
	}

	// A replay of the whole history sees the same values, replaying.
	reg2 := orchestration.NewRegistry()
	var replayed seen
	var flags []bool
	orchestration.Register(reg2, "Det", func(ctx *orchestration.Context, _ any) (seen, error) {
		for range 3 {
			replayed.Times = append(replayed.Times, ctx.Now())
			replayed.UUIDs = append(replayed.UUIDs, ctx.NewUUID())
			flags = append(flags, ctx.IsReplaying())
			if err := orchestration.Sleep(ctx, time.Hour); err != nil {
				return replayed, err
			}
		}
		return replayed, nil
	})
	if err := orchestrationtest.Replay(reg2, env.History(id), orchestration.Options{}); err != nil {
		t.Fatal(err)
	}
	if !equalTimes(got.Times, replayed.Times) || got.UUIDs[2] != replayed.UUIDs[2] {
		t.Fatalf("replay saw %v, live saw %v", replayed, got)
	}
	if len(flags) != 3 || !flags[0] || !flags[1] || !flags[2] {
		t.Fatalf("IsReplaying during replay: %v", flags)
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for n := range a {
		if !a[n].Equal(b[n]) {
			return false
		}
	}
	return true
}

func TestLimits(t *testing.T) {
	t.Run("ActionsPerEpisode", func(t *testing.T) {
		reg := orchestration.NewRegistry()
		reg.Add("Wide", func(ctx *orchestration.Context) (any, error) {
			for k := range 11 {
				ctx.CallActivity("A", k)
			}
			return nil, nil
		})
		env := orchestrationtest.New(reg, orchestrationtest.Options{Executor: orchestration.Options{MaxActionsPerEpisode: 10}})
		defer env.Close()
		id, err := env.Start("Wide", nil, orchestrationtest.StartOptions{})
		if err != nil {
			t.Fatalf("the harness failed: %v", err)
		}
		var limit *orchestration.LimitError
		if !errors.As(env.Err(id), &limit) || limit.Limit != 10 || env.Status(id) != orchestration.StatusFailed {
			t.Fatalf("err %v, status %s", env.Err(id), env.Status(id))
		}
		if !strings.Contains(env.Failure(id).Message, "number of decisions in one episode is 11, over the limit of 10") {
			t.Fatalf("failure %v", env.Failure(id))
		}
	})
	t.Run("HistoryLength", func(t *testing.T) {
		reg := orchestration.NewRegistry()
		reg.Add("Long", func(ctx *orchestration.Context) (any, error) {
			for {
				if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
					return nil, err
				}
			}
		})
		env := orchestrationtest.New(reg, orchestrationtest.Options{Executor: orchestration.Options{MaxHistoryEvents: 50}})
		defer env.Close()
		env.RegisterActivity("A", func(context.Context, []byte) ([]byte, error) { return nil, nil })
		id, err := env.Start("Long", nil, orchestrationtest.StartOptions{})
		if err != nil {
			t.Fatalf("the harness failed: %v", err)
		}
		if !errors.Is(env.Err(id), orchestration.ErrLimitExceeded) || !strings.Contains(env.Failure(id).Message, "history length is 51, over the limit of 50; restart long-running orchestrations with ContinueAsNew") {
			t.Fatalf("err %v, failure %v", env.Err(id), env.Failure(id))
		}
		// The history stops at the limit, plus the events that record the failure.
		if n := len(env.History(id)); n > 53 {
			t.Fatalf("history grew to %d events", n)
		}
	})
	t.Run("CustomStatusSize", func(t *testing.T) {
		reg := orchestration.NewRegistry()
		reg.Add("Big", func(ctx *orchestration.Context) (any, error) {
			return nil, ctx.SetCustomStatus(strings.Repeat("x", 17<<10))
		})
		env := orchestrationtest.New(reg, orchestrationtest.Options{})
		defer env.Close()
		id, err := env.Start("Big", nil, orchestrationtest.StartOptions{})
		if err != nil {
			t.Fatalf("the harness failed: %v", err)
		}
		if f := env.Failure(id); f == nil || !strings.Contains(f.Message, "custom status size is 17410, over the limit of 16384") {
			t.Fatalf("failure %v", f)
		}
	})
	t.Run("PayloadSize", func(t *testing.T) {
		reg := orchestration.NewRegistry()
		reg.Add("BigInput", func(ctx *orchestration.Context) (any, error) {
			err := ctx.CallActivity("A", strings.Repeat("x", 2<<20)).Await(nil)
			var limit *orchestration.LimitError
			if !errors.As(err, &limit) {
				return nil, errors.New("no limit error")
			}
			return "rejected before scheduling", nil
		})
		env := orchestrationtest.New(reg, orchestrationtest.Options{})
		defer env.Close()
		id, err := env.Start("BigInput", nil, orchestrationtest.StartOptions{})
		if err != nil {
			t.Fatalf("the harness failed: %v", err)
		}
		var got string
		if err := env.Output(id, &got); err != nil || got != "rejected before scheduling" {
			t.Fatalf("%q %v", got, err)
		}
		for _, ev := range env.History(id) {
			if ev.Kind == orchestration.TaskScheduled {
				t.Fatal("the oversized call was scheduled")
			}
		}
	})
}

// TestHarnessCatchesNonDeterminism shows that code depending on something
// outside the context fails the harness's replay check.
func TestHarnessCatchesNonDeterminism(t *testing.T) {
	calls := 0
	reg := orchestration.NewRegistry()
	reg.Add("Flaky", func(ctx *orchestration.Context) (any, error) {
		calls++ // state outside the context: different on replay
		name := "A"
		if calls > 1 {
			name = "B"
		}
		return nil, ctx.CallActivity(name, nil).Await(nil)
	})
	env := orchestrationtest.New(reg, orchestrationtest.Options{})
	defer env.Close()
	_, err := env.Start("Flaky", nil, orchestrationtest.StartOptions{})
	if !errors.Is(err, orchestration.ErrNonDeterminism) {
		t.Fatalf("got %v, want a non-determinism error", err)
	}
}

// TestCloseStopsTheOrchestrator: closing a parked instance ends its
// goroutine (goleak in TestMain checks it) and runs its deferred calls.
func TestCloseStopsTheOrchestrator(t *testing.T) {
	deferred := false
	reg := orchestration.NewRegistry()
	reg.Add("Parked", func(ctx *orchestration.Context) (any, error) {
		defer func() { deferred = true }()
		return nil, ctx.WaitForEvent("never").Await(nil)
	})
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	if _, err := inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Parked", InstanceID: "x"}); err != nil {
		t.Fatal(err)
	}
	inst.Close()
	if !deferred {
		t.Fatal("deferred call did not run")
	}
}

func TestStepErrors(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Done", func(ctx *orchestration.Context) (any, error) { return 1, nil })
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	if _, err := inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: "x"}); !errors.Is(err, orchestration.ErrNotStarted) {
		t.Fatalf("got %v", err)
	}
	if _, err := inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Done", InstanceID: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: "x"}); !errors.Is(err, orchestration.ErrInstanceCompleted) {
		t.Fatalf("got %v", err)
	}
}

// TestDuplicateInputsAreDropped: a completion or request delivered twice is
// recorded once.
func TestDuplicateInputsAreDropped(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Two", func(ctx *orchestration.Context) (any, error) {
		a := ctx.CallActivity("A", nil)
		e := ctx.WaitForEvent("go")
		if err := ctx.WhenAll(a, e).Await(nil); err != nil {
			return nil, err
		}
		return nil, ctx.WaitForEvent("go").Await(nil)
	})
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	now := time.Now()
	inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Two", InstanceID: "t"})
	done := orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: 0}
	raised := orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: "go", RequestID: "req-1"}
	ep, _ := inst.Step(now, done, raised)
	if len(ep.Events) != 4 { // OrchestratorStarted, the two inputs, OrchestratorCompleted
		t.Fatalf("first delivery recorded %d events", len(ep.Events))
	}
	ep, _ = inst.Step(now, done, raised)
	if len(ep.Events) != 0 {
		t.Fatalf("redelivery recorded %v", ep.Events)
	}
	if inst.Status() != orchestration.StatusRunning {
		t.Fatalf("the duplicate event satisfied the second wait: status %s", inst.Status())
	}
}

// TestDuplicateInputsWhileSuspended: inputs held by a suspension are
// recorded inputs too, so their redelivery before the resume is dropped.
func TestDuplicateInputsWhileSuspended(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Two", func(ctx *orchestration.Context) (any, error) {
		if err := ctx.WhenAll(ctx.CallActivity("A", nil), ctx.WaitForEvent("go")).Await(nil); err != nil {
			return nil, err
		}
		return nil, ctx.WaitForEvent("go").Await(nil)
	})
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	now := time.Now()
	inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Two", InstanceID: "t"})
	inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionSuspended})
	done := orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: 0}
	raised := orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: "go", RequestID: "req-1"}
	if ep, _ := inst.Step(now, done, raised); len(ep.Events) != 4 {
		t.Fatalf("first delivery recorded %v", ep.Events)
	}
	for _, in := range []orchestration.HistoryEvent{done, raised} {
		if ep, _ := inst.Step(now, in); len(ep.Events) != 0 {
			t.Fatalf("redelivery while suspended recorded %v", ep.Events)
		}
	}
	inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionResumed})
	if inst.Status() != orchestration.StatusRunning {
		t.Fatalf("the duplicate event satisfied the second wait: status %s", inst.Status())
	}
}

// TestStaleTimerIsDropped: a fired timer whose time is not that of the
// timer it names (one of an earlier generation with the same sequence
// number) is dropped; one without a time is taken.
func TestStaleTimerIsDropped(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Sleep", func(ctx *orchestration.Context) (any, error) {
		return nil, ctx.CreateTimer(2 * time.Hour).Await(nil)
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := now.Add(2 * time.Hour)
	for _, c := range []struct {
		name   string
		fireAt time.Time
		taken  bool
	}{
		{"Stale", now.Add(time.Hour), false},
		{"SameTimeElsewhere", at.In(time.FixedZone("X", 3600)), true},
		{"NoTime", time.Time{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst := orchestration.NewInstance(reg, orchestration.Options{})
			defer inst.Close()
			inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Sleep", InstanceID: "s"})
			ep, err := inst.Step(at, orchestration.HistoryEvent{Kind: orchestration.TimerFired, EventID: 0, FireAt: c.fireAt})
			if err != nil {
				t.Fatal(err)
			}
			if taken := len(ep.Events) > 0; taken != c.taken {
				t.Fatalf("taken %v, recorded %v", taken, ep.Events)
			}
			if want := map[bool]orchestration.Status{true: orchestration.StatusCompleted, false: orchestration.StatusRunning}[c.taken]; inst.Status() != want {
				t.Fatalf("status %s", inst.Status())
			}
		})
	}
}

// TestLoggerIsBuiltOnce: Context.Logger returns the same logger on every
// call, rather than building one per call.
func TestLoggerIsBuiltOnce(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Log", func(ctx *orchestration.Context) (any, error) {
		return ctx.Logger() == ctx.Logger(), nil
	})
	inst := orchestration.NewInstance(reg, orchestration.Options{Logger: slog.New(slog.DiscardHandler)})
	defer inst.Close()
	inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Log", InstanceID: "l"})
	if out, _ := inst.Output(); string(out) != "true" {
		t.Fatalf("output %s", out)
	}
}

// TestDecisionsAfterAReplayInOrder: when a replayed history ends inside an
// episode (a new generation's first events), the decisions the code made
// while replaying come before those it made after, in sequence order.
func TestDecisionsAfterAReplayInOrder(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Mixed", func(ctx *orchestration.Context) (any, error) {
		a := ctx.CallActivity("A", nil)
		if err := ctx.WaitForEvent("go").Await(nil); err != nil {
			return nil, err
		}
		return nil, ctx.WhenAll(a, ctx.CallActivity("B", nil)).Await(nil)
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	ep, err := inst.Replay([]orchestration.HistoryEvent{
		{Kind: orchestration.OrchestratorStarted, Timestamp: now},
		{Kind: orchestration.ExecutionStarted, Timestamp: now, Name: "Mixed", InstanceID: "m", Generation: 1},
		{Kind: orchestration.EventRaised, Timestamp: now, Name: "go"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range ep.Events {
		got = append(got, fmt.Sprintf("%s#%d", ev.Kind, ev.EventID))
	}
	if want := "[TaskScheduled#0 TaskScheduled#1 OrchestratorCompleted#0]"; fmt.Sprint(got) != want {
		t.Fatalf("episode %v, want %s", got, want)
	}
}
