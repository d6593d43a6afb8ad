package orchestration_test

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

var update = flag.Bool("update", false, "rewrite the recorded histories in testdata/")

// approvalV1 is the code that recorded testdata/approval.json: request an
// approval, wait up to a day for it, then archive.
func approvalV1(ctx *orchestration.Context) (any, error) {
	if err := ctx.CallActivity("Request", nil).Await(nil); err != nil {
		return nil, err
	}
	ok, err := orchestration.WaitForEvent[bool](ctx, "Approved", orchestration.WithTimeout(24*time.Hour)).Await()
	if err != nil {
		return nil, err
	}
	if err := ctx.CallActivity("Archive", ok).Await(nil); err != nil {
		return nil, err
	}
	return ok, nil
}

const approvalHistory = "testdata/approval.json"

// TestRecordedHistory replays the recorded history against today's code;
// run with -update to record it again.
func TestRecordedHistory(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Approval", approvalV1)
	if *update {
		env := orchestrationtest.New(reg, orchestrationtest.Options{})
		defer env.Close()
		for _, name := range []string{"Request", "Archive"} {
			env.RegisterActivity(name, func(context.Context, []byte) ([]byte, error) { return nil, nil })
		}
		id, err := env.Start("Approval", nil, orchestrationtest.StartOptions{InstanceID: "recorded"})
		if err != nil {
			t.Fatal(err)
		}
		env.Advance(time.Hour)
		env.RaiseEvent(id, "Approved", true)
		if status, err := env.RunToCompletion(id); err != nil || status != orchestration.StatusCompleted {
			t.Fatalf("%s %v", status, err)
		}
		if err := orchestrationtest.SaveHistory(approvalHistory, env.History(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := orchestrationtest.ReplayFile(reg, approvalHistory, orchestration.Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestNonDeterminism replays the recorded history against changed code; each
// change must fail with an error naming the recorded event and the new call.
func TestNonDeterminism(t *testing.T) {
	history, err := orchestrationtest.LoadHistory(filepath.FromSlash(approvalHistory))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		code  orchestration.Orchestrator
		event string // the recorded event the error names
		call  string // the call the code made instead
	}{
		{
			name: "ActivityRenamed",
			code: func(ctx *orchestration.Context) (any, error) {
				return nil, ctx.CallActivity("Solicit", nil).Await(nil)
			},
			event: `#2 TaskScheduled(#0 "Request")`,
			call:  `CallActivity("Solicit")`,
		},
		{
			name: "TimerInsteadOfActivity",
			code: func(ctx *orchestration.Context) (any, error) {
				return nil, ctx.CreateTimer(time.Minute).Await(nil)
			},
			event: `#2 TaskScheduled(#0 "Request")`,
			call:  `CreateTimer(2026-01-01T00:01:00Z)`,
		},
		{
			name: "MissingCall",
			code: func(ctx *orchestration.Context) (any, error) {
				// The wait was removed: its timeout timer is missing.
				if err := ctx.CallActivity("Request", nil).Await(nil); err != nil {
					return nil, err
				}
				return true, ctx.CallActivity("Archive", true).Await(nil)
			},
			event: `TimerCreated(#1`,
			call:  `CallActivity("Archive")`,
		},
		{
			name: "ExtraCall",
			code: func(ctx *orchestration.Context) (any, error) {
				// A notification was added before the request, in the same episode.
				ctx.CallActivity("Notify", nil)
				return approvalV1(ctx)
			},
			event: `#2 TaskScheduled(#0 "Request")`,
			call:  `CallActivity("Notify")`,
		},
		{
			name: "ExtraCallAtEndOfEpisode",
			code: func(ctx *orchestration.Context) (any, error) {
				ok, err := approvalV1(ctx)
				// Added after the last recorded decision, so no recorded
				// event mismatches: the end of the episode proves it new.
				ctx.CallActivity("Audit", ok)
				return ok, err
			},
			event: `no recorded decision`,
			call:  `CallActivity("Audit") (#3) that no recorded episode has`,
		},
		{
			name: "CompletesEarlier",
			code: func(ctx *orchestration.Context) (any, error) {
				return nil, ctx.CallActivity("Request", nil).Await(nil)
			},
			event: `TimerCreated(#1`,
			call:  `no further call (it completed)`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := orchestration.NewRegistry()
			reg.Add("Approval", c.code)
			err := orchestrationtest.Replay(reg, history, orchestration.Options{})
			var nd *orchestration.NonDeterminismError
			if !errors.As(err, &nd) || !errors.Is(err, orchestration.ErrNonDeterminism) {
				t.Fatalf("got %v, want a non-determinism error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.event) || !strings.Contains(msg, c.call) || !strings.Contains(msg, `"Approval"`) || !strings.Contains(msg, `"recorded"`) {
				t.Fatalf("error %q does not name the event %q and the call %q", msg, c.event, c.call)
			}
		})
	}
}

// TestNonDeterminismFailsTheInstance checks the instance, not just the
// replayer: it fails with the error and records the failure as new.
func TestNonDeterminismFailsTheInstance(t *testing.T) {
	history, err := orchestrationtest.LoadHistory(approvalHistory)
	if err != nil {
		t.Fatal(err)
	}
	reg := orchestration.NewRegistry()
	reg.Add("Approval", func(ctx *orchestration.Context) (any, error) {
		return nil, ctx.CallActivity("Solicit", nil).Await(nil)
	})
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	ep, err := inst.Replay(history[:5]) // through the request's TaskScheduled
	if err != nil {
		t.Fatal(err)
	}
	if inst.Status() != orchestration.StatusFailed {
		t.Fatalf("status %s", inst.Status())
	}
	if len(ep.Events) != 2 || ep.Events[0].Kind != orchestration.ExecutionCompleted || ep.Events[0].Failure == nil ||
		!strings.Contains(ep.Events[0].Failure.Message, "not deterministic") {
		t.Fatalf("episode %+v", ep.Events)
	}
}

func TestUnknownOrchestrator(t *testing.T) {
	inst := orchestration.NewInstance(orchestration.NewRegistry(), orchestration.Options{})
	ep, err := inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Nope", InstanceID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inst.Err(), orchestration.ErrUnknownOrchestrator) || inst.Status() != orchestration.StatusFailed {
		t.Fatalf("err %v, status %s", inst.Err(), inst.Status())
	}
	if ep.Events[len(ep.Events)-2].Failure.Message != `orchestration: no orchestrator is registered under the name "Nope"` {
		t.Fatalf("episode %+v", ep.Events)
	}
}

// TestHarnessUnknownOrchestrator: an instance of an unknown orchestrator
// fails, and the harness reports that as the instance's error, not its own.
func TestHarnessUnknownOrchestrator(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Known", func(ctx *orchestration.Context) (any, error) { return "ok", nil })
	env := orchestrationtest.New(reg, orchestrationtest.Options{})
	defer env.Close()
	id, err := env.Start("Nope", nil, orchestrationtest.StartOptions{})
	if err != nil {
		t.Fatalf("the harness failed: %v", err)
	}
	if !errors.Is(env.Err(id), orchestration.ErrUnknownOrchestrator) || env.Status(id) != orchestration.StatusFailed {
		t.Fatalf("err %v, status %s", env.Err(id), env.Status(id))
	}
	// The Env goes on working.
	known, err := env.Start("Known", nil, orchestrationtest.StartOptions{})
	if err != nil || env.Status(known) != orchestration.StatusCompleted {
		t.Fatalf("status %s, err %v", env.Status(known), err)
	}
}

// TestReplayOfAHardFailure: replaying a history that ended because the
// executor could not go on (an unknown orchestrator, a limit) finds the same
// failure again and records nothing new, so reloading a failed instance
// does not add a second ExecutionCompleted to its history.
func TestReplayOfAHardFailure(t *testing.T) {
	reg := orchestration.NewRegistry()
	reg.Add("Wide", func(ctx *orchestration.Context) (any, error) {
		for k := range 11 {
			ctx.CallActivity("A", k)
		}
		return nil, nil
	})
	reg.Add("Long", func(ctx *orchestration.Context) (any, error) {
		for {
			if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
				return nil, err
			}
		}
	})
	opts := orchestration.Options{MaxActionsPerEpisode: 10, MaxHistoryEvents: 50}
	for _, name := range []string{"Nope", "Wide", "Long"} {
		t.Run(name, func(t *testing.T) {
			env := orchestrationtest.New(reg, orchestrationtest.Options{Executor: opts, SkipReplayCheck: true})
			defer env.Close()
			env.RegisterActivity("A", func(context.Context, []byte) ([]byte, error) { return nil, nil })
			id, err := env.Start(name, nil, orchestrationtest.StartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if env.Err(id) == nil {
				t.Fatalf("status %s, no executor error", env.Status(id))
			}
			inst := orchestration.NewInstance(reg, opts)
			defer inst.Close()
			ep, err := inst.Replay(env.History(id))
			if err != nil {
				t.Fatal(err)
			}
			if len(ep.Events) != 0 {
				t.Fatalf("the replay recorded %v", ep.Events)
			}
			if inst.Err() == nil || inst.Err().Error() != env.Err(id).Error() || inst.Status() != orchestration.StatusFailed {
				t.Fatalf("replayed: status %s, err %v; recorded: %v", inst.Status(), inst.Err(), env.Err(id))
			}
			_, failure := inst.Output()
			if failure.String() != env.Failure(id).String() {
				t.Fatalf("replayed failure %s, recorded %s", failure, env.Failure(id))
			}
		})
	}
}

// TestCompletionInAnEarlierEpisode: code that now completes in an episode
// whose recorded events do not include the completion is not deterministic,
// even when a later episode records a completion with the same status.
func TestCompletionInAnEarlierEpisode(t *testing.T) {
	v1 := orchestration.NewRegistry()
	v1.Add("Wait", func(ctx *orchestration.Context) (any, error) {
		return "done", ctx.WaitForEvent("E").Await(nil)
	})
	env := orchestrationtest.New(v1, orchestrationtest.Options{})
	defer env.Close()
	id, err := env.Start("Wait", nil, orchestrationtest.StartOptions{InstanceID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.RaiseEvent(id, "E", nil); err != nil {
		t.Fatal(err)
	}
	if env.Status(id) != orchestration.StatusCompleted {
		t.Fatalf("status %s", env.Status(id))
	}
	v2 := orchestration.NewRegistry()
	v2.Add("Wait", func(ctx *orchestration.Context) (any, error) { return "done", nil })
	err = orchestrationtest.Replay(v2, env.History(id), orchestration.Options{})
	if !errors.Is(err, orchestration.ErrNonDeterminism) || !strings.Contains(err.Error(), "#2 OrchestratorCompleted, but the code now made ExecutionCompleted(Completed) before it") {
		t.Fatalf("got %v, want a non-determinism error naming the completion", err)
	}
}
