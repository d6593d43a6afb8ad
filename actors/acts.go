package actors

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

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
// start at once (they are issued again on any activation, so nothing else
// tracks them); timers, sent events and the truncation of an ended
// generation go to the outbox, which ends the episode's epoch when they are
// out. When the episode ended a generation (truncateBefore is the new one's
// revision), the old generation is truncated only after its sends are out:
// until then, a restart after a crash needs its records to send them again.
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
	timers, sends := g.busActs(c, events)
	g.post(c, outboxBatch{epoch: epoch, timers: timers, sends: sends, truncateBefore: truncateBefore})
}

// busActs builds the bus messages of timers and a scheduled start, and the
// sends, arming local timers for those due soon.
func (g *grain) busActs(c actor.Context, events []orchestration.HistoryEvent) ([]scheduled, []send) {
	var timers []scheduled
	var sends []send
	for _, ev := range events {
		switch ev.Kind {
		case orchestration.TimerCreated:
			if t, ok := g.timerMessage(ev); ok {
				timers = append(timers, t)
			}
			g.armLocalTimer(c, ev)
		case orchestration.ExecutionStarted:
			if !ev.FireAt.IsZero() && g.inst.Status() == orchestration.StatusPending {
				if t, ok := g.startMessage(ev); ok {
					timers = append(timers, t)
				}
			}
		default:
			if sd, t, ok := messageOf(g.id, g.generation, ev); ok && t != nil {
				timers = append(timers, *t)
			} else if ok {
				sends = append(sends, sd)
			}
		}
	}
	return timers, sends
}

// timerMessage builds the bus message of a durable timer.
func (g *grain) timerMessage(ev orchestration.HistoryEvent) (scheduled, bool) {
	fired := orchestration.HistoryEvent{Kind: orchestration.TimerFired, EventID: ev.EventID, FireAt: ev.FireAt, Generation: g.generation}
	msg, err := busMessage(timerID(g.id, g.generation, ev.EventID), g.id, timerType, fired)
	return scheduled{at: ev.FireAt, msg: msg}, err == nil
}

// startMessage builds the bus message that runs a scheduled start. It
// carries the generation it starts, so that it cannot start a later one
// (see keepCurrent).
func (g *grain) startMessage(es orchestration.HistoryEvent) (scheduled, bool) {
	due := orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Generation: es.Generation, FireAt: es.FireAt}
	msg, err := busMessage(startID(g.id, es.Generation), g.id, startType, due)
	return scheduled{at: es.FireAt, msg: msg}, err == nil
}

// messageOf builds the message a decision sends to another grain: an
// event to an instance, an operation, lock or unlock to an entity. A
// signal for later comes back as a timer instead. Its request ID, derived
// from the instance, generation and decision, makes a repeated message a
// duplicate. ok is false for decisions that send nothing.
func messageOf(instanceID string, generation int32, ev orchestration.HistoryEvent) (s send, timer *scheduled, ok bool) {
	id := func(what string) string { return fmt.Sprintf("%s:%s:%d:%d", what, instanceID, generation, ev.EventID) }
	caller := &grainpb.Caller{InstanceId: instanceID, Generation: generation, EventId: ev.EventID}
	var req *grainpb.EntityRequest
	switch ev.Kind {
	case orchestration.EventSent:
		raised := orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: ev.Name, Input: ev.Input, RequestID: id("send")}
		dead, _ := busMessage(raised.RequestID, ev.InstanceID, "EventRaised", raised) // encoding protobuf cannot fail here
		return send{kind: Kind, identity: ev.InstanceID, request: DeliverMessage(raised), dead: dead}, nil, true
	case orchestration.EntityOperationSignaled:
		req = &grainpb.EntityRequest{Operations: []*grainpb.EntityOperation{{RequestId: id("signal"), Name: ev.Name, Input: ev.Input}}}
	case orchestration.EntityOperationCalled:
		req = &grainpb.EntityRequest{Operations: []*grainpb.EntityOperation{{RequestId: id("call"), Name: ev.Name, Input: ev.Input, Caller: caller, Lock: ev.LockID}}}
	case orchestration.EntityLockRequested:
		if len(ev.LockSet) == 0 {
			return send{}, nil, false
		}
		req = &grainpb.EntityRequest{Lock: &grainpb.LockRequest{Lock: ev.LockID, Entities: ev.LockSet, Caller: caller}}
		ev.InstanceID = ev.LockSet[0]
	case orchestration.EntityUnlockSent:
		req = &grainpb.EntityRequest{Unlock: ev.LockID}
	default:
		return send{}, nil, false
	}
	payload, _ := proto.Marshal(req) // grain messages always encode
	dead := delivery.Message{ID: id(ev.Kind.String()), Kind: EntityKind, Identity: ev.InstanceID, Type: "EntityRequest", Payload: payload}
	if !ev.FireAt.IsZero() {
		return send{}, &scheduled{at: ev.FireAt, msg: dead}, true
	}
	return send{kind: EntityKind, identity: ev.InstanceID, request: req, dead: dead}, nil, true
}

func timerID(instanceID string, generation, eventID int32) string {
	return fmt.Sprintf("timer:%s:%d:%d", instanceID, generation, eventID)
}

// startID identifies the bus message that runs a scheduled start.
func startID(instanceID string, generation int32) string {
	return fmt.Sprintf("start:%s:%d", instanceID, generation)
}

// redo carries out again what a crash may have kept from the records a
// loading grain found in the range recovery names (see Recovery.Unacted):
// the events every generation still in the stream sent (an ended
// generation is truncated only after its sends are out), and the current
// generation's timers and scheduled start, unless it has ended. Request
// IDs and timer IDs make this idempotent. It also truncates ended
// generations a crash left in the stream.
func (g *grain) redo(c actor.Context, events []orchestration.HistoryEvent, records []recordSpan) {
	after, upTo := g.rt.recovery.Unacted(g.id)
	current := 0 // the record that starts the current generation
	for n, r := range records {
		for _, ev := range events[r.from:r.to] {
			if ev.Kind == orchestration.ExecutionStarted {
				current = n
			}
		}
	}
	b := outboxBatch{}
	if current > 0 {
		b.truncateBefore = records[current].revision
	}
	unacted := false
	generation := int32(0)
	for n, r := range records {
		inWindow := r.position > after && r.position <= upTo
		unacted = unacted || inWindow
		for _, ev := range events[r.from:r.to] {
			if ev.Kind == orchestration.ExecutionStarted {
				generation = ev.Generation
			}
			if inWindow {
				if sd, t, ok := messageOf(g.id, generation, ev); ok && t != nil {
					b.timers = append(b.timers, *t)
				} else if ok {
					b.sends = append(b.sends, sd)
				}
			}
			if inWindow && n >= current && ev.Kind == orchestration.ExecutionStarted && !ev.FireAt.IsZero() &&
				g.inst.Status() == orchestration.StatusPending {
				if t, ok := g.startMessage(ev); ok {
					b.timers = append(b.timers, t)
				}
			}
		}
	}
	if unacted && !g.inst.Status().IsTerminal() {
		for _, p := range g.inst.Pending() {
			if p.Kind == orchestration.TimerCreated {
				if t, ok := g.timerMessage(p); ok {
					b.timers = append(b.timers, t)
				}
			}
		}
	}
	b.redone = unacted
	if b.empty() {
		return
	}
	b.epoch = g.rt.recovery.Begin()
	g.post(c, b)
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

// activityDone takes an activity's outcome from its runner. The outcome
// goes into the next episode, unless the grain or the generation it
// belongs to is gone; the runtime counts it as unrecorded until then (see
// activityDone.taken).
func (g *grain) activityDone(c actor.Context, d *activityDone) {
	if !d.taken.CompareAndSwap(false, true) {
		return // its runner stopped first and settled it
	}
	if cancel, ok := g.jobs[d.eventID]; ok {
		cancel()
		delete(g.jobs, d.eventID)
	}
	if g.state == stopped {
		g.addResults(-1)
		return
	}
	if len(g.waiting) > 0 {
		c.Send(d.runner, g.waiting[0])
		g.waiting = g.waiting[1:]
	} else {
		g.idle = append(g.idle, d.runner)
	}
	if !g.live() || d.generation != g.generation {
		g.addResults(-1)
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
	go func() {
		defer rt.system.Root.Send(self, childAnswered{})
		rt.retry("start sub-orchestration "+start.InstanceID, func(ctx context.Context) error {
			reply, err := rt.grains.Request(ctx, Kind, start.InstanceID, msg)
			if Retriable(err) {
				return err
			}
			if err != nil {
				failed(status.Convert(err).Message())
			} else if ack, ok := reply.(*grainpb.Ack); ok && ack.Completion != nil {
				if done, ok := childOutcome(eventID, ack.Completion); ok {
					outcome(done)
				}
			}
			return nil
		})
	}()
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
// short, pending timers dropped, and a parent told. The notification is
// retried until the parent has it; should a crash cut it short, the parent
// still has the child pending, so recovery wakes it and it asks the child
// again (see startChild).
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
	go rt.retry("notify parent "+parent, func(ctx context.Context) error {
		_, err := rt.grains.Request(ctx, Kind, parent, msg)
		if Retriable(err) {
			return err
		}
		return nil // recorded, or the parent has moved on
	})
}
