package orchestration_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/durableactor/durable/orchestration"
)

// addOnEvent waits for an "Add" event, adds it to its input and continues as
// new; at 3 it returns the sum.
func addOnEvent() *orchestration.Registry {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Adder", func(ctx *orchestration.Context, n int) (int, error) {
		if n >= 3 {
			return n, nil
		}
		d, err := orchestration.WaitForEvent[int](ctx, "Add").Await()
		if err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(n + d)
	})
	return reg
}

func add(id string) H {
	return H{Kind: orchestration.EventRaised, Name: "Add", Input: []byte("1"), RequestID: id}
}

// runGenerations steps an instance with batches of inputs the way the
// runtime does: after a ContinueAsNew it replays the new generation's events
// in a new Instance and goes on with it. It returns the final instance and
// every event recorded.
func runGenerations(t *testing.T, reg *orchestration.Registry, start H, batches ...[]H) (*orchestration.Instance, []H) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	ep, err := inst.Step(now, start)
	if err != nil {
		t.Fatal(err)
	}
	all := ep.Events
	next := func(ep orchestration.Episode) {
		for ep.ContinuedAsNew {
			inst.Close()
			inst = orchestration.NewInstance(reg, orchestration.Options{})
			gen := ep.Events[ep.NewGeneration:]
			var err error
			if ep, err = inst.Replay(gen); err != nil {
				t.Fatal(err)
			}
			all = append(all, ep.Events...)
		}
	}
	next(ep)
	for _, b := range batches {
		now = now.Add(time.Second)
		ep, err := inst.Step(now, b...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ep.Events...)
		next(ep)
	}
	return inst, all
}

// TestContinueAsNewCarriesInputsOfItsEpisode: two events in one episode,
// the first of which leads to ContinueAsNew; the second must reach the next
// generation, not be skipped as an input after the end.
func TestContinueAsNewCarriesInputsOfItsEpisode(t *testing.T) {
	start := H{Kind: orchestration.ExecutionStarted, Name: "Adder", InstanceID: "a", Input: []byte("0")}
	inst, _ := runGenerations(t, addOnEvent(), start, []H{add("r1"), add("r2"), add("r3")})
	defer inst.Close()
	out, _ := inst.Output()
	if inst.Status() != orchestration.StatusCompleted || string(out) != "3" {
		t.Fatalf("three events raised back to back: status %s, output %s; want Completed with 3", inst.Status(), out)
	}
}

// TestContinueAsNewCarriesInputsAfterAnOutcome: an event arriving in the same
// episode as the timer that leads to ContinueAsNew goes on to the next
// generation, and so does a termination that follows it.
func TestContinueAsNewCarriesInputsAfterAnOutcome(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Tick", func(ctx *orchestration.Context, n int) (string, error) {
		if n == 0 {
			if err := orchestration.Sleep(ctx, time.Minute); err != nil {
				return "", err
			}
			return "", ctx.ContinueAsNew(1)
		}
		return orchestration.WaitForEvent[string](ctx, "go").Await()
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := H{Kind: orchestration.ExecutionStarted, Name: "Tick", InstanceID: "t", Input: []byte("0")}
	fired := H{Kind: orchestration.TimerFired, EventID: 0, FireAt: now.Add(time.Minute)}
	raised := H{Kind: orchestration.EventRaised, Name: "go", Input: []byte(`"late"`), RequestID: "r1"}
	inst, _ := runGenerations(t, reg, start, []H{fired, raised})
	out, _ := inst.Output()
	if inst.Status() != orchestration.StatusCompleted || string(out) != `"late"` {
		t.Fatalf("status %s, output %s; the event of the timer's episode was lost", inst.Status(), out)
	}
	inst.Close()

	terminate := H{Kind: orchestration.ExecutionTerminated, Input: []byte(`"stop"`), RequestID: "r2"}
	inst, _ = runGenerations(t, reg, start, []H{fired, terminate})
	defer inst.Close()
	if inst.Status() != orchestration.StatusTerminated {
		t.Fatalf("a termination in the episode that continued as new left the next generation %s", inst.Status())
	}
}

// TestCarriedInputsKeepTheirOrder: buffered events of several names and the
// inputs after the end are carried in the order they arrived.
func TestCarriedInputsKeepTheirOrder(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Order", func(ctx *orchestration.Context, n int) (any, error) {
		if n == 0 {
			if err := ctx.WaitForEvent("next").Await(nil); err != nil {
				return nil, err
			}
			return nil, ctx.ContinueAsNew(1)
		}
		return nil, ctx.WaitForEvent("never").Await(nil)
	})
	raise := func(name, id string) H {
		return H{Kind: orchestration.EventRaised, Name: name, RequestID: id}
	}
	start := H{Kind: orchestration.ExecutionStarted, Name: "Order", InstanceID: "o", Input: []byte("0")}
	inst, all := runGenerations(t, reg, start,
		[]H{raise("zulu", "1"), raise("alpha", "2"), raise("zulu", "3")},
		[]H{raise("next", "4"), raise("mike", "5"), raise("alpha", "6")})
	inst.Close()
	var got []string
	for n := len(all) - 1; n >= 0; n-- {
		if all[n].Kind == orchestration.ExecutionStarted {
			for _, ev := range all[n+1:] {
				if ev.Kind == orchestration.EventRaised {
					got = append(got, ev.Name+"#"+ev.RequestID)
				}
			}
			break
		}
	}
	want := []string{"zulu#1", "alpha#2", "zulu#3", "mike#5", "alpha#6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("carried events (-want +got):\n%s", diff)
	}
}

// TestDuplicateAfterContinueAsNew: an event redelivered after the instance
// consumed it and continued as new is still recognised, so it does not
// advance the instance a second time.
func TestDuplicateAfterContinueAsNew(t *testing.T) {
	start := H{Kind: orchestration.ExecutionStarted, Name: "Adder", InstanceID: "a", Input: []byte("0")}
	inst, all := runGenerations(t, addOnEvent(), start, []H{add("r1")}, []H{add("r1")}, []H{add("r1"), add("r2")})
	defer inst.Close()
	out, _ := inst.Output()
	if inst.Status() != orchestration.StatusRunning {
		t.Fatalf("status %s (output %s): the redelivered event advanced the instance", inst.Status(), out)
	}
	var starts []H
	for _, ev := range all {
		if ev.Kind == orchestration.ExecutionStarted {
			starts = append(starts, ev)
		}
	}
	if len(starts) != 3 || fmt.Sprint(starts[2].RequestIDs) != "[r2 r1]" {
		t.Fatalf("generations %d, request IDs carried into the last: %v", len(starts), starts[len(starts)-1].RequestIDs)
	}
}

// TestWaitingIsRecorded: every OrchestratorCompleted records the earliest
// pending timer and the awaited events; a replay that ends in the state the
// history recorded adds nothing, and the first episode of a generation that
// only waits is recorded because its wait state is new.
func TestWaitingIsRecorded(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Approve", func(ctx *orchestration.Context, n int) (string, error) {
		if n == 0 {
			return "", ctx.ContinueAsNew(1)
		}
		timeout := ctx.CreateTimer(72 * time.Hour)
		poll := ctx.CreateTimer(time.Hour)
		ok := ctx.WaitForEvent("Approval")
		if _, err := orchestration.WhenAny(ctx, ok, timeout).Await(); err != nil {
			return "", err
		}
		return "done", poll.Await(nil)
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	ep, err := inst.Step(now, H{Kind: orchestration.ExecutionStarted, Name: "Approve", InstanceID: "w", Input: []byte("0")})
	if err != nil || !ep.ContinuedAsNew {
		t.Fatal(ep, err)
	}
	inst.Close()
	gen := ep.Events[ep.NewGeneration:]
	inst = orchestration.NewInstance(reg, orchestration.Options{})
	defer func() { inst.Close() }()
	first, err := inst.Replay(gen)
	if err != nil {
		t.Fatal(err)
	}
	oc := first.Events[len(first.Events)-1]
	want := orchestration.Waiting{NextTimer: now.Add(time.Hour), Events: []string{"Approval"}}
	if oc.Kind != orchestration.OrchestratorCompleted || !oc.FireAt.Equal(want.NextTimer) || fmt.Sprint(oc.AwaitedEvents) != "[Approval]" {
		t.Fatalf("first episode of the generation %+v, want an OrchestratorCompleted recording %+v", first.Events, want)
	}
	if diff := cmp.Diff(want, inst.Waiting()); diff != "" {
		t.Fatalf("waiting (-want +got):\n%s", diff)
	}

	// Replaying what was recorded ends in the recorded state: nothing new.
	history := append(append([]H{}, gen...), first.Events...)
	again := orchestration.NewInstance(reg, orchestration.Options{})
	ep, err = again.Replay(history)
	again.Close()
	if err != nil || len(ep.Events) != 0 {
		t.Fatalf("replay added %v (%v)", ep.Events, err)
	}

	// The approval comes: the 72-hour timer is abandoned, the poll remains.
	ep, err = inst.Step(now.Add(time.Minute), H{Kind: orchestration.EventRaised, Name: "approval", RequestID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	oc = ep.Events[len(ep.Events)-1]
	if !oc.FireAt.Equal(now.Add(time.Hour)) || len(oc.AwaitedEvents) != 0 {
		t.Fatalf("after the approval the episode recorded timer %s and events %v", oc.FireAt, oc.AwaitedEvents)
	}
	ep, err = inst.Step(now.Add(time.Hour), H{Kind: orchestration.TimerFired, EventID: 1, FireAt: now.Add(time.Hour)})
	if err != nil || inst.Status() != orchestration.StatusCompleted {
		t.Fatalf("status %s: %v", inst.Status(), err)
	}
	if oc = ep.Events[len(ep.Events)-1]; !oc.FireAt.IsZero() || len(oc.AwaitedEvents) != 0 {
		t.Fatalf("a completed instance waits for timer %s and events %v", oc.FireAt, oc.AwaitedEvents)
	}
}

// TestRejectedEpisode: an instance whose episode the store refused records a
// rejection instead; replaying that history fails the instance where it
// stands, with the reason, and runs none of the rejected decisions.
func TestRejectedEpisode(t *testing.T) {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Big", func(ctx *orchestration.Context, n int) (int, error) {
		if _, err := orchestration.WaitForEvent[int](ctx, "go").Await(); err != nil {
			return 0, err
		}
		var tasks []orchestration.Awaitable
		for range n {
			tasks = append(tasks, ctx.CallActivity("A", nil))
		}
		return n, ctx.WhenAll(tasks...).Await(nil)
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	es := H{Kind: orchestration.ExecutionStarted, Name: "Big", InstanceID: "b", Input: []byte("3")}
	for _, c := range []struct {
		name    string
		history func() []H
	}{
		{"later episode", func() []H {
			inst := orchestration.NewInstance(reg, orchestration.Options{})
			defer inst.Close()
			first, _ := inst.Step(now, es)
			// The episode of the event, with its three activities, was refused.
			return append(first.Events, orchestration.RejectionEpisode(now.Add(time.Second), nil, "too large")...)
		}},
		{"first episode", func() []H {
			return orchestration.RejectionEpisode(now, &es, "too large")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst := orchestration.NewInstance(reg, orchestration.Options{})
			defer inst.Close()
			ep, err := inst.Replay(c.history())
			if err != nil {
				t.Fatal(err)
			}
			_, failure := inst.Output()
			if inst.Status() != orchestration.StatusFailed || failure == nil || failure.ErrorType != orchestration.ErrorTypeEpisodeRejected || failure.Message != "too large" {
				t.Fatalf("status %s, failure %v", inst.Status(), failure)
			}
			if len(ep.Events) != 0 || len(inst.Pending()) != 0 {
				t.Fatalf("the replay decided %v and left %v pending", ep.Events, inst.Pending())
			}
			if _, err := inst.Step(now.Add(time.Minute), H{Kind: orchestration.EventRaised, Name: "go", RequestID: "x"}); err == nil {
				t.Fatal("a rejected instance took another episode")
			}
		})
	}
}
