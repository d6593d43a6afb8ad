package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc/status"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/orchestration"
)

// childAnswered tells the grain that a sub-orchestration start it sent got
// its answer.
type childAnswered struct{}

// localInput is an input from the grain's own background work: the
// outcome of a sub-orchestration, a local timer.
type localInput struct {
	generation int32
	events     []orchestration.HistoryEvent
}

// act carries out an episode's decisions. Activities and sub-orchestrations
// start at once (they are re-issued on any activation); timers and sent
// events go through the bus in the background, and the epoch ends when they
// are out. When the episode ended a generation (truncateBefore is the new
// one's revision), the old generation is truncated only after that: until
// its sends are out, a restart after a crash needs its records to send them
// again.
func (g *grain) act(c actor.Context, events []orchestration.HistoryEvent, epoch, truncateBefore uint64) {
	for i := range events {
		ev := events[i]
		switch ev.Kind {
		case orchestration.TaskScheduled:
			g.spawnActivity(c, ev)
		case orchestration.SubOrchestrationInstanceCreated:
			g.startChild(c, ev)
		case orchestration.ExecutionCompleted:
			g.completed(c, ev)
		}
	}
	timers, bus := g.busActs(c, events)
	if len(timers) == 0 && len(bus) == 0 && truncateBefore == 0 {
		g.rt.acted.end(epoch)
		return
	}
	rt, stream := g.rt, g.stream
	rt.pool.Schedule(func() {
		defer rt.acted.end(epoch)
		rt.sendBus(timers, bus)
		if truncateBefore > 0 {
			rt.truncate(stream, truncateBefore)
		}
	})
}

// truncate drops a stream's records before revision: the generations that
// have ended.
func (rt *Runtime) truncate(stream string, revision uint64) {
	ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
	defer cancel()
	if err := rt.store.TruncateBefore(ctx, stream, revision); err != nil {
		// Replay skips to the last ExecutionStarted, so a longer history
		// is only slower.
		rt.log.Warn("truncating a finished generation failed", "stream", stream, "error", err)
	}
}

type scheduled struct {
	at  time.Time
	msg delivery.Message
}

// busActs builds the bus messages of timers and sent events, arming local
// timers for those due soon.
func (g *grain) busActs(c actor.Context, events []orchestration.HistoryEvent) ([]scheduled, []delivery.Message) {
	var timers []scheduled
	var sends []delivery.Message
	for _, ev := range events {
		switch ev.Kind {
		case orchestration.TimerCreated:
			fired := orchestration.HistoryEvent{Kind: orchestration.TimerFired, EventID: ev.EventID, FireAt: ev.FireAt, Generation: g.generation}
			msg, err := DeliverMessage(timerID(g.id, g.generation, ev.EventID), g.id, "TimerFired", fired)
			if err == nil {
				timers = append(timers, scheduled{at: ev.FireAt, msg: msg})
			}
			g.armLocalTimer(c, ev)
		case orchestration.ExecutionStarted:
			if !ev.FireAt.IsZero() && g.inst.Status() == orchestration.StatusPending {
				// The message carries the generation it starts, so that it
				// cannot start a later one (see keepCurrent).
				due := orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Generation: ev.Generation, FireAt: ev.FireAt}
				msg, err := DeliverMessage(startID(g.id, ev.Generation), g.id, "Start", due)
				if err == nil {
					timers = append(timers, scheduled{at: ev.FireAt, msg: msg})
				}
			}
		case orchestration.EventSent:
			if msg, err := sendMessage(g.id, g.generation, ev); err == nil {
				sends = append(sends, msg)
			}
		}
	}
	return timers, sends
}

// sendMessage builds the bus message of an event that generation of
// instance instanceID sent; its ID makes a repeated send a duplicate.
func sendMessage(instanceID string, generation int32, sent orchestration.HistoryEvent) (delivery.Message, error) {
	id := fmt.Sprintf("send:%s:%d:%d", instanceID, generation, sent.EventID)
	raised := orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: sent.Name, Input: sent.Input, RequestID: id}
	return DeliverMessage(id, sent.InstanceID, "EventRaised", raised)
}

func timerID(instanceID string, generation, eventID int32) string {
	return fmt.Sprintf("timer:%s:%d:%d", instanceID, generation, eventID)
}

// startID identifies the bus message that runs a scheduled start.
func startID(instanceID string, generation int32) string {
	return fmt.Sprintf("start:%s:%d", instanceID, generation)
}

// sendBus schedules timers and publishes messages, retrying until they are
// out or the runtime stops (a checkpoint then stays behind them, and a
// restart acts again).
func (rt *Runtime) sendBus(timers []scheduled, msgs []delivery.Message) {
	for _, t := range timers {
		rt.retry("schedule timer "+t.msg.ID, func(ctx context.Context) (bool, error) {
			return false, rt.bus.Schedule(ctx, t.at, t.msg)
		})
	}
	if len(msgs) > 0 {
		rt.retry("send events", func(ctx context.Context) (bool, error) {
			return false, rt.bus.Publish(ctx, delivery.Events, msgs...)
		})
	}
}

// armLocalTimer fires a timer from the grain itself when it is due soon, so
// short timers (retry intervals) are precise; the bus's copy of the timer
// is dropped as a duplicate.
func (g *grain) armLocalTimer(c actor.Context, ev orchestration.HistoryEvent) {
	d := ev.FireAt.Sub(g.rt.now())
	if d > g.rt.localTimer {
		return
	}
	if _, ok := g.timers[ev.EventID]; ok {
		return
	}
	self, gen, rt := c.Self(), g.generation, g.rt
	fired := orchestration.HistoryEvent{Kind: orchestration.TimerFired, EventID: ev.EventID, FireAt: ev.FireAt}
	g.timers[ev.EventID] = time.AfterFunc(max(d, 0), func() {
		rt.system.Root.Send(self, &localInput{generation: gen, events: []orchestration.HistoryEvent{fired}})
	})
}

// spawnActivity hands an activity call to one of the grain's runner child
// actors: an idle one, a new one while the grain has fewer runners than
// the node has activity slots, or the first to finish.
func (g *grain) spawnActivity(c actor.Context, ev orchestration.HistoryEvent) {
	if _, running := g.jobs[ev.EventID]; running {
		return
	}
	ctx, cancel := context.WithCancel(g.rt.ctx)
	job := &activityJob{
		info:       ActivityInfo{InstanceID: g.id, Name: ev.Name, EventID: ev.EventID},
		generation: g.generation,
		input:      ev.Input,
		ctx:        ctx,
	}
	g.jobs[ev.EventID] = cancel
	switch {
	case len(g.idle) > 0:
		pid := g.idle[len(g.idle)-1]
		g.idle = g.idle[:len(g.idle)-1]
		c.Send(pid, job)
	case g.runners < g.rt.limiter.slots:
		g.runners++
		c.Send(c.Spawn(g.rt.runnerProps), job)
	default:
		g.waiting = append(g.waiting, job)
	}
}

// cancelActivities cuts short the activities in flight and drops the
// waiting ones: the instance has ended or moved to a new generation.
func (g *grain) cancelActivities() {
	for id, cancel := range g.jobs {
		cancel()
		delete(g.jobs, id)
	}
	g.waiting = nil
}

func (g *grain) activityDone(c actor.Context, d *activityDone) {
	if cancel, ok := g.jobs[d.eventID]; ok {
		cancel()
		delete(g.jobs, d.eventID)
	}
	if len(g.waiting) > 0 {
		c.Send(d.runner, g.waiting[0])
		g.waiting = g.waiting[1:]
	} else {
		g.idle = append(g.idle, d.runner)
	}
	if g.inst == nil || d.generation != g.generation {
		g.rt.unrecorded.Add(-1)
		return
	}
	ev := orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: d.eventID, Result: d.result}
	if d.failure != nil {
		ev = orchestration.HistoryEvent{Kind: orchestration.TaskFailed, EventID: d.eventID, Failure: d.failure}
	}
	g.results++
	g.enqueue(c, []orchestration.HistoryEvent{ev}, nil)
}

// startChild asks a sub-orchestration's grain to start, in the background.
// The request is idempotent, so it is simply repeated after a restart; a
// child that has already finished answers with its outcome.
func (g *grain) startChild(c actor.Context, ev orchestration.HistoryEvent) {
	parentStart, _ := g.inst.Started()
	start := orchestration.HistoryEvent{
		Kind: orchestration.ExecutionStarted, Name: ev.Name, Version: ev.Version, InstanceID: ev.InstanceID, Input: ev.Input,
		Parent:    &orchestration.ParentInstance{InstanceID: g.id, Name: parentStart.Name, EventID: ev.EventID, Generation: g.generation},
		RequestID: fmt.Sprintf("sub:%s:%d:%d", g.id, g.generation, ev.EventID),
	}
	msg := StartMessage(start)
	self, gen, rt, eventID := c.Self(), g.generation, g.rt, ev.EventID
	outcome := func(ev orchestration.HistoryEvent) {
		rt.system.Root.Send(self, &localInput{generation: gen, events: []orchestration.HistoryEvent{ev}})
	}
	failed := func(message string) {
		outcome(orchestration.HistoryEvent{Kind: orchestration.SubOrchestrationInstanceFailed, EventID: eventID,
			Failure: &orchestration.FailureDetails{ErrorType: "SubOrchestrationStartFailed", Message: message}})
	}
	g.children++
	answered := func() { rt.system.Root.Send(self, childAnswered{}) }
	go rt.retry("start sub-orchestration "+ev.InstanceID, func(ctx context.Context) (bool, error) {
		reply, err := rt.grains.Request(ctx, Kind, start.InstanceID, msg)
		if Retriable(err) {
			return false, err
		}
		if err != nil {
			failed(status.Convert(err).Message())
		} else if ack, ok := reply.(*grainpb.Ack); ok && ack.Completion != nil {
			if done, ok := childOutcome(eventID, ack.Completion); ok {
				outcome(done)
			}
		}
		answered()
		return true, nil
	})
}

// childOutcome turns a child's ExecutionCompleted into the parent's input.
func childOutcome(eventID int32, completion *grainpb.Event) (orchestration.HistoryEvent, bool) {
	events, err := decodeEvents([]*grainpb.Event{completion})
	if err != nil {
		return orchestration.HistoryEvent{}, false
	}
	return orchestration.SubOrchestrationOutcome(eventID, events[0]), true
}

// completed reacts to the instance's end: running activities are cut
// short, pending timers dropped, and a parent told.
func (g *grain) completed(c actor.Context, ec orchestration.HistoryEvent) {
	if ec.Status == orchestration.StatusContinuedAsNew {
		return
	}
	g.cancelActivities()
	g.stopLocalTimers()
	var stale []string
	for _, p := range g.inst.Pending() {
		if p.Kind == orchestration.TimerCreated {
			stale = append(stale, timerID(g.id, g.generation, p.EventID))
		}
	}
	start, _ := g.inst.Started()
	if !start.FireAt.IsZero() {
		stale = append(stale, startID(g.id, g.generation)) // ended before its start was due
	}
	rt := g.rt
	if len(stale) > 0 {
		go func() {
			for _, id := range stale {
				ctx, cancel := context.WithTimeout(rt.ctx, 10*time.Second)
				if err := rt.bus.Unschedule(ctx, id); err != nil {
					rt.log.Debug("dropping a timer of a finished instance failed", "timer", id, "error", err)
				}
				cancel()
			}
		}()
	}
	if start.Parent == nil {
		return
	}
	parent, done := start.Parent.InstanceID, orchestration.SubOrchestrationOutcome(start.Parent.EventID, ec)
	done.Generation = start.Parent.Generation
	msg := &grainpb.Deliver{Events: []*grainpb.Event{encodeEvent(&done)}}
	go rt.retry("notify parent "+parent, func(ctx context.Context) (bool, error) {
		_, err := rt.grains.Request(ctx, Kind, parent, msg)
		if Retriable(err) {
			return false, err
		}
		return true, nil // recorded, or the parent has moved on
	})
}
