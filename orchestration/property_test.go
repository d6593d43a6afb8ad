package orchestration_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/durableactor/durable/orchestration"
)

// The property: for any orchestrator and any order in which its inputs
// arrive (batched into episodes at random, with duplicates), replaying the
// recorded history reproduces the state that incremental execution built,
// and an instance replayed up to any episode and then stepped on produces
// exactly the recorded episodes. Orchestrators are generated programs that
// use every feature of the executor.

// program is a generated orchestrator: its steps run in order.
type program []step

type step struct {
	Kind    int
	N       int
	Timeout time.Duration
}

const (
	stepActivity = iota
	stepFanOut
	stepTimer
	stepEvent
	stepRace
	stepSub
	stepStatus
	stepRetry
	stepContinue
	numSteps
)

func randomProgram(r *rand.Rand, length int) program {
	p := make(program, length)
	for n := range p {
		p[n] = step{Kind: r.IntN(numSteps), N: 1 + r.IntN(4), Timeout: time.Duration(1+r.IntN(90)) * time.Minute}
	}
	return p
}

// run interprets a program. Errors of tasks are part of the output, so
// every outcome the driver picks leads somewhere.
func (p program) run(ctx *orchestration.Context) (any, error) {
	var log []string
	note := func(what string, err error) {
		if err != nil {
			log = append(log, what+": "+err.Error())
		} else {
			log = append(log, what)
		}
	}
	start := 0
	if ctx.Generation() > 0 {
		if err := ctx.Input(&start); err != nil {
			return nil, err
		}
	}
	for n := start; n < len(p); n++ {
		s := p[n]
		switch s.Kind {
		case stepActivity:
			var out int
			err := ctx.CallActivity(fmt.Sprintf("act%d", s.N), n).Await(&out)
			note(fmt.Sprintf("act=%d", out), err)
		case stepFanOut:
			tasks := make([]orchestration.Awaitable, s.N)
			for k := range tasks {
				tasks[k] = ctx.CallActivity("fan", k)
			}
			note("fanout", ctx.WhenAll(tasks...).Await(nil))
		case stepTimer:
			note("timer", ctx.CreateTimer(s.Timeout).Await(nil))
		case stepEvent:
			var v int
			err := ctx.WaitForEvent(fmt.Sprintf("e%d", s.N%3), orchestration.WithTimeout(s.Timeout)).Await(&v)
			note(fmt.Sprintf("event=%d", v), err)
		case stepRace:
			w, err := orchestration.WhenAny(ctx, ctx.CallActivity("race", n), ctx.CreateTimer(s.Timeout), ctx.WaitForEvent("e0")).Await()
			note(fmt.Sprintf("race=%d", w), err)
		case stepSub:
			var out string
			err := ctx.CallSubOrchestrator("child", s.N).Await(&out)
			note("sub="+out, err)
		case stepStatus:
			note("status", ctx.SetCustomStatus(map[string]any{"step": n, "at": ctx.Now(), "id": ctx.NewUUID()}))
		case stepRetry:
			err := ctx.CallActivity("flaky", n, orchestration.WithRetry(orchestration.RetryPolicy{
				FirstRetryInterval: time.Second, BackoffCoefficient: 2, MaxAttempts: s.N})).Await(nil)
			note("retry", err)
		case stepContinue:
			if ctx.Generation() < 2 {
				return nil, ctx.ContinueAsNew(n + 1)
			}
		}
	}
	return log, nil
}

// driver feeds an instance inputs in a random order and records everything.
type driver struct {
	t       *testing.T
	r       *rand.Rand
	reg     *orchestration.Registry
	now     time.Time
	inst    *orchestration.Instance
	history []orchestration.HistoryEvent // current generation
	// episodes are the recorded episodes of the current generation after
	// the first replayable point: when they ran, their inputs, their events.
	episodes []episode
	// delivered are inputs already delivered once, redelivered at random to
	// check that duplicates are dropped.
	delivered []orchestration.HistoryEvent
}

type episode struct {
	at     time.Time
	start  int // index in history where its events begin
	inputs []orchestration.HistoryEvent
	events []orchestration.HistoryEvent
}

// available lists the inputs that could arrive now: outcomes of pending
// decisions, fired timers that are due, external events and control.
func (d *driver) available() []orchestration.HistoryEvent {
	var out []orchestration.HistoryEvent
	for _, p := range d.inst.Pending() {
		switch p.Kind {
		case orchestration.TaskScheduled:
			if d.r.IntN(4) == 0 {
				out = append(out, orchestration.HistoryEvent{Kind: orchestration.TaskFailed, EventID: p.EventID, Failure: &orchestration.FailureDetails{ErrorType: "test", Message: "failed"}})
			} else {
				out = append(out, orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: p.EventID, Result: fmt.Appendf(nil, "%d", p.EventID)})
			}
		case orchestration.SubOrchestrationInstanceCreated:
			if d.r.IntN(4) == 0 {
				out = append(out, orchestration.HistoryEvent{Kind: orchestration.SubOrchestrationInstanceFailed, EventID: p.EventID, Failure: &orchestration.FailureDetails{Message: "child failed"}})
			} else {
				out = append(out, orchestration.HistoryEvent{Kind: orchestration.SubOrchestrationInstanceCompleted, EventID: p.EventID, Result: []byte(`"child"`)})
			}
		case orchestration.TimerCreated:
			if !p.FireAt.After(d.now) {
				out = append(out, orchestration.HistoryEvent{Kind: orchestration.TimerFired, EventID: p.EventID, FireAt: p.FireAt})
			}
		}
	}
	if d.r.IntN(3) == 0 {
		out = append(out, orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: fmt.Sprintf("E%d", d.r.IntN(3)), Input: fmt.Appendf(nil, "%d", d.r.IntN(100))})
	}
	switch d.r.IntN(40) {
	case 0:
		out = append(out, orchestration.HistoryEvent{Kind: orchestration.ExecutionSuspended})
	case 1:
		out = append(out, orchestration.HistoryEvent{Kind: orchestration.ExecutionResumed})
	case 2:
		if d.r.IntN(5) == 0 {
			out = append(out, orchestration.HistoryEvent{Kind: orchestration.ExecutionTerminated, Input: []byte(`"enough"`)})
		}
	}
	if len(d.delivered) > 0 && d.r.IntN(8) == 0 {
		out = append(out, d.delivered[d.r.IntN(len(d.delivered))])
	}
	return out
}

// nextTimer is the earliest pending timer, for skipping time when nothing
// else can happen.
func (d *driver) nextTimer() (time.Time, bool) {
	var at time.Time
	for _, p := range d.inst.Pending() {
		if p.Kind == orchestration.TimerCreated && (at.IsZero() || p.FireAt.Before(at)) {
			at = p.FireAt
		}
	}
	return at, !at.IsZero()
}

func (d *driver) record(at time.Time, inputs []orchestration.HistoryEvent, ep orchestration.Episode) {
	events := ep.Events
	if ep.ContinuedAsNew {
		events = ep.Events[:ep.NewGeneration]
	}
	d.episodes = append(d.episodes, episode{at: at, start: len(d.history), inputs: inputs, events: events})
	d.history = append(d.history, events...)
	if !ep.ContinuedAsNew {
		return
	}
	// A new generation: check the one that ended, then start over from the
	// events that begin the next.
	d.check()
	d.inst.Close()
	d.startGeneration(ep.Events[ep.NewGeneration:])
}

// startGeneration begins a new generation from the events that start it, as
// the runtime does: a new instance replays them and may decide at once,
// even continue as new again.
func (d *driver) startGeneration(events []orchestration.HistoryEvent) {
	for {
		d.history = append([]orchestration.HistoryEvent(nil), events...)
		d.episodes = nil
		d.delivered = nil
		d.inst = orchestration.NewInstance(d.reg, orchestration.Options{})
		next, err := d.inst.Replay(d.history)
		if err != nil {
			d.t.Fatal(err)
		}
		if !next.ContinuedAsNew {
			d.history = append(d.history, next.Events...)
			return
		}
		d.history = append(d.history, next.Events[:next.NewGeneration]...)
		d.check()
		d.inst.Close()
		events = next.Events[next.NewGeneration:]
	}
}

func (d *driver) run(maxEpisodes int) {
	for range maxEpisodes {
		if d.inst.Status().IsTerminal() {
			break
		}
		avail := d.available()
		if len(avail) == 0 {
			at, ok := d.nextTimer()
			if !ok {
				// Waiting for an event only: raise one.
				avail = append(avail, orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: fmt.Sprintf("e%d", d.r.IntN(3)), Input: []byte("1")})
			} else {
				d.now = at
				continue
			}
		}
		d.r.Shuffle(len(avail), func(a, b int) { avail[a], avail[b] = avail[b], avail[a] })
		batch := avail[:1+d.r.IntN(min(3, len(avail)))]
		d.now = d.now.Add(time.Duration(d.r.IntN(120)) * time.Second)
		ep, err := d.inst.Step(d.now, batch...)
		if err != nil {
			d.t.Fatal(err)
		}
		d.delivered = append(d.delivered, batch...)
		if len(ep.Events) > 0 {
			d.record(d.now, batch, ep)
		}
	}
	d.check()
}

// check verifies the property for the current generation.
func (d *driver) check() {
	d.t.Helper()
	if err := d.inst.Err(); err != nil {
		d.t.Fatalf("executor error: %v", err)
	}
	// A full replay reproduces the state and decides nothing new.
	fresh := orchestration.NewInstance(d.reg, orchestration.Options{})
	ep, err := fresh.Replay(d.history)
	if err != nil {
		d.t.Fatal(err)
	}
	if len(ep.Events) > 0 && !ep.ContinuedAsNew {
		d.t.Fatalf("full replay made new decisions: %v", ep.Events)
	}
	compareState(d.t, d.inst, fresh)
	fresh.Close()
	// Replaying up to any episode and stepping on gives the recorded episodes.
	for k := range d.episodes {
		if d.r.IntN(4) != 0 && k != 0 {
			continue
		}
		inst := orchestration.NewInstance(d.reg, orchestration.Options{})
		if _, err := inst.Replay(d.history[:d.episodes[k].start]); err != nil {
			d.t.Fatal(err)
		}
		for _, e := range d.episodes[k:] {
			got, err := inst.Step(e.at, e.inputs...)
			if err != nil {
				d.t.Fatalf("episode after replaying %d events: %v", d.episodes[k].start, err)
			}
			events := got.Events
			if got.ContinuedAsNew {
				events = got.Events[:got.NewGeneration]
			}
			if diff := quickDiff(e.events, events); diff != "" {
				d.t.Fatalf("stepping on after replaying %d events differs from the recorded episode (-recorded +stepped):\n%s", d.episodes[k].start, diff)
			}
		}
		compareState(d.t, d.inst, inst)
		inst.Close()
	}
}

func compareState(t *testing.T, want, got *orchestration.Instance) {
	t.Helper()
	wo, wf := want.Output()
	gotOut, gf := got.Output()
	if diff := quickDiff(
		[]any{want.Status(), wo, wf, want.CustomStatus(), want.Pending()},
		[]any{got.Status(), gotOut, gf, got.CustomStatus(), got.Pending()}); diff != "" {
		t.Fatalf("replayed state differs (-incremental +replayed):\n%s", diff)
	}
}

func TestReplayEqualsIncremental(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 60
	}
	for seed := range runs {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 42))
			prog := randomProgram(r, 2+r.IntN(12))
			child := randomProgram(r, 2)
			reg := orchestration.NewRegistry()
			reg.Add("prog", prog.run)
			reg.Add("child", child.run)
			d := &driver{t: t, r: r, reg: reg, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			d.inst = orchestration.NewInstance(reg, orchestration.Options{})
			defer func() { d.inst.Close() }()
			start := orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "prog", InstanceID: fmt.Sprintf("p%d", seed), Input: []byte("0")}
			ep, err := d.inst.Step(d.now, start)
			if err != nil {
				t.Fatal(err)
			}
			d.record(d.now, []orchestration.HistoryEvent{start}, ep)
			d.run(200)
			if d.inst.Status() == orchestration.StatusRunning && len(d.inst.Pending()) == 0 && !errors.Is(d.inst.Err(), nil) {
				t.Fatalf("instance waits on nothing")
			}
		})
	}
}

// quickDiff is cmp.Diff with a reflect.DeepEqual fast path: go-cmp is slow
// on the long event lists these tests compare thousands of times.
func quickDiff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(orchestration.FailureDetails{}, "StackTrace"))
}
