package orchestration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

// compact renders a history event as one line: its kind, sequence number,
// name, times relative to the harness's start, and the payloads, so whole
// histories can be compared as tables.
func compact(ev orchestration.HistoryEvent) string {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	parts := []string{ev.Kind.String()}
	switch ev.Kind {
	case orchestration.TaskScheduled, orchestration.TaskCompleted, orchestration.TaskFailed,
		orchestration.TimerCreated, orchestration.TimerFired, orchestration.EventSent,
		orchestration.SubOrchestrationInstanceCreated, orchestration.SubOrchestrationInstanceCompleted,
		orchestration.SubOrchestrationInstanceFailed:
		parts = append(parts, fmt.Sprintf("#%d", ev.EventID))
	case orchestration.OrchestratorStarted:
		parts = append(parts, "@"+ev.Timestamp.Sub(start).String())
	}
	if ev.Name != "" {
		parts = append(parts, ev.Name)
	}
	if ev.Kind == orchestration.SubOrchestrationInstanceCreated {
		parts = append(parts, "id="+ev.InstanceID)
	}
	if !ev.FireAt.IsZero() {
		parts = append(parts, "at="+ev.FireAt.Sub(start).String())
	}
	for _, p := range []struct {
		name string
		data []byte
	}{{"in", ev.Input}, {"out", ev.Result}, {"status", ev.CustomStatus}} {
		if len(p.data) > 0 {
			parts = append(parts, p.name+"="+string(p.data))
		}
	}
	if ev.Kind == orchestration.ExecutionCompleted {
		parts = append(parts, ev.Status.String())
	}
	if ev.Failure != nil {
		parts = append(parts, "failure="+ev.Failure.Message)
	}
	if ev.Generation != 0 {
		parts = append(parts, fmt.Sprintf("gen=%d", ev.Generation))
	}
	if len(ev.AwaitedEvents) > 0 {
		parts = append(parts, "awaits="+strings.Join(ev.AwaitedEvents, ","))
	}
	if len(ev.RequestIDs) > 0 {
		parts = append(parts, "ids="+strings.Join(ev.RequestIDs, ","))
	}
	return strings.Join(parts, " ")
}

func compactAll(h []orchestration.HistoryEvent) []string {
	out := make([]string, len(h))
	for i, ev := range h {
		out[i] = compact(ev)
	}
	return out
}

type historyCase struct {
	name string
	// orchestrator is the one to start; setup registers it (and others).
	orchestrator string
	setup        func(reg *orchestration.Registry)
	input        any
	drive        func(t *testing.T, env *orchestrationtest.Env, id string)
	want         []string
	status       orchestration.Status
}

// TestHistories runs each pattern and feature against the time-skipping
// harness and compares the whole recorded history, so any change in what
// is recorded, in which order, shows up as a diff.
func TestHistories(t *testing.T) {
	ok := func(context.Context, []byte) ([]byte, error) { return []byte(`"ok"`), nil }
	cases := []historyCase{
		{
			name:         "FanOutFanIn",
			orchestrator: "FanOut",
			setup: func(reg *orchestration.Registry) {
				reg.Add("FanOut", func(ctx *orchestration.Context) (any, error) {
					a, b := ctx.CallActivity("Work", 1), ctx.CallActivity("Work", 2)
					if err := ctx.WhenAll(a, b).Await(nil); err != nil {
						return nil, err
					}
					return nil, ctx.CallActivity("Sum", nil).Await(nil)
				})
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted FanOut",
				"TaskScheduled #0 Work in=1", "TaskScheduled #1 Work in=2", "OrchestratorCompleted",
				"OrchestratorStarted @0s", "TaskCompleted #0 out=\"ok\"", "OrchestratorCompleted",
				"OrchestratorStarted @0s", "TaskCompleted #1 out=\"ok\"", "TaskScheduled #2 Sum", "OrchestratorCompleted",
				"OrchestratorStarted @0s", "TaskCompleted #2 out=\"ok\"", "ExecutionCompleted Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "AsyncStatus",
			orchestrator: "Export",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Export", func(ctx *orchestration.Context) (any, error) {
					ctx.SetCustomStatus("half")
					if err := ctx.CallActivity("Work", nil).Await(nil); err != nil {
						return nil, err
					}
					ctx.SetCustomStatus("done")
					return "file", nil
				})
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Export", "TaskScheduled #0 Work", "OrchestratorCompleted status=\"half\"",
				"OrchestratorStarted @0s", "TaskCompleted #0 out=\"ok\"", "ExecutionCompleted out=\"file\" Completed", "OrchestratorCompleted status=\"done\"",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "MonitorWithChangingInterval",
			orchestrator: "Monitor",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Monitor", func(ctx *orchestration.Context) (any, error) {
					interval := time.Minute
					for i := range 3 {
						if err := ctx.CallActivity("Work", i).Await(nil); err != nil {
							return nil, err
						}
						if err := orchestration.Sleep(ctx, interval); err != nil {
							return nil, err
						}
						interval *= 3
					}
					return nil, nil
				})
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Monitor", "TaskScheduled #0 Work in=0", "OrchestratorCompleted",
				"OrchestratorStarted @0s", "TaskCompleted #0 out=\"ok\"", "TimerCreated #1 at=1m0s", "OrchestratorCompleted at=1m0s",
				"OrchestratorStarted @1m0s", "TimerFired #1 at=1m0s", "TaskScheduled #2 Work in=1", "OrchestratorCompleted",
				"OrchestratorStarted @1m0s", "TaskCompleted #2 out=\"ok\"", "TimerCreated #3 at=4m0s", "OrchestratorCompleted at=4m0s",
				"OrchestratorStarted @4m0s", "TimerFired #3 at=4m0s", "TaskScheduled #4 Work in=2", "OrchestratorCompleted",
				"OrchestratorStarted @4m0s", "TaskCompleted #4 out=\"ok\"", "TimerCreated #5 at=13m0s", "OrchestratorCompleted at=13m0s",
				"OrchestratorStarted @13m0s", "TimerFired #5 at=13m0s", "ExecutionCompleted Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "ApprovalBeforeTimeout",
			orchestrator: "Approve",
			setup:        approvalCase,
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.Advance(2 * time.Hour)
				env.RaiseEvent(id, "Approval", true)
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Approve", "TimerCreated #0 at=72h0m0s", "OrchestratorCompleted at=72h0m0s awaits=Approval",
				"OrchestratorStarted @2h0m0s", "EventRaised Approval in=true", "ExecutionCompleted out=\"approved\" Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "ApprovalTimesOutAndEscalates",
			orchestrator: "Approve",
			setup:        approvalCase,
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.Advance(73 * time.Hour)
				env.RaiseEvent(id, "Approval", true) // too late: nothing is recorded
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Approve", "TimerCreated #0 at=72h0m0s", "OrchestratorCompleted at=72h0m0s awaits=Approval",
				"OrchestratorStarted @72h0m0s", "TimerFired #0 at=72h0m0s", "TaskScheduled #1 Escalate", "OrchestratorCompleted",
				"OrchestratorStarted @72h0m0s", "TaskCompleted #1 out=\"ok\"", "ExecutionCompleted out=\"escalated\" Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "RetryOnDurableTimers",
			orchestrator: "Retry",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Retry", func(ctx *orchestration.Context) (any, error) {
					return nil, ctx.CallActivity("Flaky", nil, orchestration.WithRetry(orchestration.RetryPolicy{
						FirstRetryInterval: 10 * time.Second, BackoffCoefficient: 3, MaxAttempts: 3})).Await(nil)
				})
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Retry", "TaskScheduled #0 Flaky", "OrchestratorCompleted",
				"OrchestratorStarted @0s", "TaskFailed #0 failure=attempt 1", "TimerCreated #1 at=10s", "OrchestratorCompleted at=10s",
				"OrchestratorStarted @10s", "TimerFired #1 at=10s", "TaskScheduled #2 Flaky", "OrchestratorCompleted",
				"OrchestratorStarted @10s", "TaskFailed #2 failure=attempt 2", "TimerCreated #3 at=40s", "OrchestratorCompleted at=40s",
				"OrchestratorStarted @40s", "TimerFired #3 at=40s", "TaskScheduled #4 Flaky", "OrchestratorCompleted",
				"OrchestratorStarted @40s", "TaskCompleted #4 out=\"ok\"", "ExecutionCompleted Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "SubOrchestration",
			orchestrator: "Parent",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Child", func(ctx *orchestration.Context) (any, error) { return "from child", nil })
				reg.Add("Parent", func(ctx *orchestration.Context) (any, error) {
					var s string
					err := ctx.CallSubOrchestrator("Child", 7, orchestration.WithInstanceID("kid")).Await(&s)
					return s, err
				})
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Parent", "SubOrchestrationInstanceCreated #0 Child id=kid in=7", "OrchestratorCompleted",
				"OrchestratorStarted @0s", "SubOrchestrationInstanceCompleted #0 out=\"from child\"", "ExecutionCompleted out=\"from child\" Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "ContinueAsNewCarriesEvents",
			orchestrator: "Loop",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Loop", func(ctx *orchestration.Context) (any, error) {
					var n int
					ctx.Input(&n)
					if n == 0 {
						if err := orchestration.Sleep(ctx, time.Minute); err != nil {
							return nil, err
						}
						return nil, ctx.ContinueAsNew(1)
					}
					var v string
					err := ctx.WaitForEvent("kept").Await(&v)
					return v, err
				})
			},
			input: 0,
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.RaiseEvent(id, "kept", "carried")
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Loop in=0", "TimerCreated #0 at=1m0s", "OrchestratorCompleted at=1m0s",
				"OrchestratorStarted @0s", "EventRaised kept in=\"carried\"", "OrchestratorCompleted at=1m0s",
				"OrchestratorStarted @1m0s", "TimerFired #0 at=1m0s", "ExecutionCompleted out=1 ContinuedAsNew", "OrchestratorCompleted",
				"OrchestratorStarted @1m0s", "ExecutionStarted Loop in=1 gen=1", "EventRaised kept in=\"carried\"",
				"ExecutionCompleted out=\"carried\" Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "WhenAnyTimeoutCancelsTheLoser",
			orchestrator: "Race",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Race", func(ctx *orchestration.Context) (any, error) {
					w, err := orchestration.WhenAny(ctx, ctx.WaitForEvent("go"), ctx.CreateTimer(time.Hour)).Await()
					if err != nil {
						return nil, err
					}
					// The lost timer never fires into the code: sleep past it.
					return w, orchestration.Sleep(ctx, 2*time.Hour)
				})
			},
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.Advance(time.Minute)
				env.RaiseEvent(id, "go", nil)
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Race", "TimerCreated #0 at=1h0m0s", "OrchestratorCompleted at=1h0m0s awaits=go",
				"OrchestratorStarted @1m0s", "EventRaised go", "TimerCreated #1 at=2h1m0s", "OrchestratorCompleted at=2h1m0s",
				"OrchestratorStarted @2h1m0s", "TimerFired #1 at=2h1m0s", "ExecutionCompleted out=0 Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "BufferedEvents",
			orchestrator: "Buffer",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Buffer", func(ctx *orchestration.Context) (any, error) {
					if err := orchestration.Sleep(ctx, time.Hour); err != nil {
						return nil, err
					}
					var a, b string
					ctx.WaitForEvent("e").Await(&a)
					ctx.WaitForEvent("E").Await(&b)
					return a + b, nil
				})
			},
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.RaiseEvent(id, "e", "1")
				env.RaiseEvent(id, "E", "2")
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Buffer", "TimerCreated #0 at=1h0m0s", "OrchestratorCompleted at=1h0m0s",
				"OrchestratorStarted @0s", "EventRaised e in=\"1\"", "OrchestratorCompleted at=1h0m0s",
				"OrchestratorStarted @0s", "EventRaised E in=\"2\"", "OrchestratorCompleted at=1h0m0s",
				"OrchestratorStarted @1h0m0s", "TimerFired #0 at=1h0m0s", "ExecutionCompleted out=\"12\" Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "SuspendHoldsInputsUntilResume",
			orchestrator: "Hold",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Hold", func(ctx *orchestration.Context) (any, error) {
					var v string
					err := ctx.WaitForEvent("go").Await(&v)
					return v, err
				})
			},
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.Suspend(id, "pause")
				env.RaiseEvent(id, "go", "held")
				env.Resume(id, "")
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Hold", "OrchestratorCompleted awaits=go",
				"OrchestratorStarted @0s", "ExecutionSuspended in=\"pause\"", "OrchestratorCompleted awaits=go",
				"OrchestratorStarted @0s", "EventRaised go in=\"held\"", "OrchestratorCompleted awaits=go",
				"OrchestratorStarted @0s", "ExecutionResumed", "ExecutionCompleted out=\"held\" Completed", "OrchestratorCompleted",
			},
			status: orchestration.StatusCompleted,
		},
		{
			name:         "Termination",
			orchestrator: "Forever",
			setup: func(reg *orchestration.Registry) {
				reg.Add("Forever", func(ctx *orchestration.Context) (any, error) {
					return nil, ctx.WaitForEvent("never").Await(nil)
				})
			},
			drive: func(t *testing.T, env *orchestrationtest.Env, id string) {
				env.Terminate(id, "stop")
			},
			want: []string{
				"OrchestratorStarted @0s", "ExecutionStarted Forever", "OrchestratorCompleted awaits=never",
				"OrchestratorStarted @0s", "ExecutionTerminated in=\"stop\"", "ExecutionCompleted out=\"stop\" Terminated", "OrchestratorCompleted",
			},
			status: orchestration.StatusTerminated,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := orchestration.NewRegistry()
			c.setup(reg)
			env := newEnv(t, reg)
			env.RegisterActivity("Work", ok)
			env.RegisterActivity("Sum", ok)
			env.RegisterActivity("Escalate", ok)
			attempts := 0
			env.RegisterActivity("Flaky", func(context.Context, []byte) ([]byte, error) {
				attempts++
				if attempts < 3 {
					return nil, fmt.Errorf("attempt %d", attempts)
				}
				return []byte(`"ok"`), nil
			})
			id := mustStart(t, env, c.orchestrator, c.input, orchestrationtest.StartOptions{})
			if c.drive != nil {
				c.drive(t, env, id)
			}
			status, err := env.RunToCompletion(id)
			if err != nil {
				t.Fatal(err)
			}
			if status != c.status {
				t.Fatalf("status %s, want %s (failure %v)", status, c.status, env.Failure(id))
			}
			if diff := cmp.Diff(c.want, compactAll(env.History(id))); diff != "" {
				t.Fatalf("history (-want +got):\n%s", diff)
			}
		})
	}
}

func approvalCase(reg *orchestration.Registry) {
	reg.Add("Approve", func(ctx *orchestration.Context) (any, error) {
		ok, err := orchestration.WaitForEvent[bool](ctx, "Approval", orchestration.WithTimeout(72*time.Hour)).Await()
		if errors.Is(err, orchestration.ErrTimeout) {
			return "escalated", ctx.CallActivity("Escalate", nil).Await(nil)
		}
		if !ok {
			return "rejected", err
		}
		return "approved", err
	})
}
