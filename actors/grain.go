package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// grain is one orchestration instance, active on this node.
type grain struct {
	rt     *Runtime
	id     string
	stream string

	// loaded is set once the grain knows the stream's state: it read it,
	// or created the stream. An activation for a Start does not read first:
	// it appends with NoStream, and reads only if that finds a stream.
	loaded bool
	// inst is nil while the instance does not exist.
	inst       *orchestration.Instance
	generation int32
	// revision is the stream's last revision (NoRevision for no stream)
	// and position the global position of the grain's last known append.
	revision int64
	position uint64
	// lastEpisode holds the decisions of the latest recorded episode that
	// act through the bus (timers, sent events), to act again on Wake after
	// a crash may have lost them.
	lastEpisode []orchestration.HistoryEvent

	queue     []orchestration.HistoryEvent
	waiters   []*actor.PID
	tick      bool // run an episode without inputs (a scheduled start)
	appending bool
	// optimistic is the Start whose append is in flight without the stream
	// having been read.
	optimistic *startRequest
	// jobs are the activity calls handed to runners or waiting for one,
	// by event ID; waiting holds those without a runner yet, idle the
	// runners without a job.
	jobs    map[int32]context.CancelFunc
	waiting []*activityJob
	idle    []*actor.PID
	runners int
	timers  map[int32]*time.Timer
	broken  error
}

// appendDone reports an episode's append back to the grain.
type appendDone struct {
	// optimistic is the Start that was appended without reading the stream
	// first, to be handled again if the stream turns out to exist.
	optimistic *startRequest
	episode    orchestration.Episode
	waiters    []*actor.PID
	result     eventstore.AppendResult
	err        error
	epoch      uint64
	restart    bool
	previous   *orchestration.Instance
}

// startRequest is a Start and who asked.
type startRequest struct {
	msg    *grainpb.Start
	sender *actor.PID
}

// localInput is an input from the grain's own background work: the
// outcome of a sub-orchestration, a local timer.
type localInput struct {
	generation int32
	events     []orchestration.HistoryEvent
}

func (g *grain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *cluster.ClusterInit:
		g.activate(c, m.Identity.Identity)
	case *grainpb.Start:
		g.start(c, &startRequest{msg: m, sender: c.Sender()})
	case *grainpb.Deliver:
		if g.ensureLoaded(c) {
			g.deliver(c, m)
		}
	case *grainpb.Wake:
		if g.ensureLoaded(c) {
			g.wake(c)
		}
	case *activityDone:
		g.activityDone(c, m)
	case *localInput:
		if g.inst != nil && m.generation == g.generation {
			g.enqueue(c, m.events, nil)
		}
	case *appendDone:
		g.appendDone(c, m)
	case *actor.ReceiveTimeout:
		g.passivate(c)
	case *actor.Stopping:
		g.stop()
	}
}

// activate prepares a new activation; the stream is read with the first
// message that needs it.
func (g *grain) activate(c actor.Context, id string) {
	g.id = id
	g.stream = index.StreamName(id)
	g.revision = eventstore.NoRevision
	g.jobs = make(map[int32]context.CancelFunc)
	g.timers = make(map[int32]*time.Timer)
	c.SetReceiveTimeout(g.rt.idle)
}

// ensureLoaded loads the instance from its stream, once, and re-issues the
// work it has in flight: after a crash or a move nothing else will. It
// answers the current request and stops the grain when the stream cannot be
// read.
func (g *grain) ensureLoaded(c actor.Context) bool {
	if g.loaded {
		return true
	}
	if err := g.load(c); err != nil {
		g.rt.log.Error("instance cannot be loaded", "instance", g.id, "error", err)
		g.broken = err
		if c.Sender() != nil {
			c.Respond(errorReply(grainpb.Error_UNAVAILABLE, "instance %q cannot be loaded: %v", g.id, err))
		}
		c.Stop(c.Self())
		return false
	}
	return true
}

func (g *grain) load(c actor.Context) error {
	g.loaded = true
	ctx, cancel := context.WithTimeout(g.rt.ctx, 30*time.Second)
	defer cancel()
	var dec history.Decoder
	var events []orchestration.HistoryEvent
	for rec, err := range g.rt.store.ReadStream(ctx, g.stream, eventstore.ReadStreamOptions{}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if events, err = dec.DecodeRecord(events, &rec); err != nil {
			return err
		}
		g.revision, g.position = int64(rec.Revision), rec.Position
	}
	if len(events) == 0 {
		return nil
	}
	inst := orchestration.NewInstance(g.rt.reg, g.rt.executor)
	ep, err := inst.Replay(events)
	if err != nil {
		inst.Close()
		return err
	}
	g.setInstance(inst)
	g.lastEpisode = busDecisions(lastEpisode(events))
	g.reissue(c)
	if len(ep.Events) > 0 {
		g.appendEpisode(c, ep, nil, false, nil)
	}
	return nil
}

func (g *grain) setInstance(inst *orchestration.Instance) {
	g.inst = inst
	start, _ := inst.Started()
	g.generation = start.Generation
}

// lastEpisode returns the events after the last OrchestratorStarted.
func lastEpisode(events []orchestration.HistoryEvent) []orchestration.HistoryEvent {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Kind == orchestration.OrchestratorStarted {
			return events[i:]
		}
	}
	return events
}

// busDecisions keeps the decisions that act through the bus.
func busDecisions(events []orchestration.HistoryEvent) []orchestration.HistoryEvent {
	var out []orchestration.HistoryEvent
	for _, ev := range events {
		switch ev.Kind {
		case orchestration.TimerCreated, orchestration.EventSent, orchestration.ExecutionStarted:
			out = append(out, ev)
		}
	}
	return out
}

// reissue starts the activities and sub-orchestrations that have no
// outcome recorded, unless the instance has ended (its unfinished work was
// abandoned).
func (g *grain) reissue(c actor.Context) {
	if g.inst.Status().IsTerminal() {
		return
	}
	for _, p := range g.inst.Pending() {
		switch p.Kind {
		case orchestration.TaskScheduled:
			g.spawnActivity(c, p)
		case orchestration.SubOrchestrationInstanceCreated:
			g.startChild(c, p)
		case orchestration.TimerCreated:
			g.armLocalTimer(c, p)
		}
	}
}

// start handles a request to start the instance. On a fresh activation it
// does not read the stream: most starts are of new instances, so it
// appends with NoStream and reads only if a stream is there after all.
func (g *grain) start(c actor.Context, req *startRequest) {
	respond := func(msg any) { c.Send(req.sender, msg) }
	if g.broken != nil {
		respond(errorReply(grainpb.Error_UNAVAILABLE, "instance %q cannot be loaded: %v", g.id, g.broken))
		return
	}
	var optimistic *startRequest
	if !g.loaded {
		g.loaded = true
		optimistic = req
	}
	events, err := decodeEvents([]*grainpb.Event{req.msg.ExecutionStarted})
	if err != nil || events[0].Kind != orchestration.ExecutionStarted {
		respond(errorReply(grainpb.Error_INVALID, "start of %q: not an ExecutionStarted event: %v", g.id, err))
		return
	}
	es := events[0]
	restart := false
	if g.inst != nil {
		prev, _ := g.inst.Started()
		if es.RequestID != "" && prev.RequestID == es.RequestID {
			// A retried start: answer once the first one is recorded.
			g.enqueue(c, nil, req.sender)
			return
		}
		if !g.inst.Status().IsTerminal() || g.appending {
			respond(errorReply(grainpb.Error_ALREADY_RUNNING, "instance %q is already %s", g.id, g.inst.Status()))
			return
		}
		restart = true // a finished instance starts over, as in Durable Functions
		es.Generation = prev.Generation + 1
	}
	if _, ok := g.rt.reg.Get(es.Name); !ok {
		respond(errorReply(grainpb.Error_INVALID, "no orchestrator is registered under the name %q", es.Name))
		g.loaded = optimistic == nil
		return
	}
	now := g.rt.now()
	es.InstanceID = g.id
	inst := orchestration.NewInstance(g.rt.reg, g.rt.executor)
	var ep orchestration.Episode
	if es.FireAt.After(now) {
		// A scheduled start: record it, run the first episode when due.
		es.Timestamp = now
		if _, err := inst.Replay([]orchestration.HistoryEvent{es}); err != nil {
			inst.Close()
			respond(errorReply(grainpb.Error_INVALID, "start of %q: %v", g.id, err))
			g.loaded = optimistic == nil
			return
		}
		ep = orchestration.Episode{Events: []orchestration.HistoryEvent{es}, Status: orchestration.StatusPending}
	} else {
		ep, err = inst.Step(now, es)
		if err != nil {
			inst.Close()
			respond(errorReply(grainpb.Error_INVALID, "start of %q: %v", g.id, err))
			g.loaded = optimistic == nil
			return
		}
	}
	previous := g.inst
	g.setInstance(inst)
	g.optimistic = optimistic
	g.appendEpisode(c, ep, []*actor.PID{req.sender}, restart, previous)
}

// deliver queues inputs for the next episode.
func (g *grain) deliver(c actor.Context, m *grainpb.Deliver) {
	switch {
	case g.broken != nil:
		c.Respond(errorReply(grainpb.Error_UNAVAILABLE, "instance %q cannot be loaded: %v", g.id, g.broken))
		return
	case g.inst == nil:
		c.Respond(errorReply(grainpb.Error_NOT_FOUND, "instance %q does not exist", g.id))
		return
	}
	events, err := decodeEvents(m.Events)
	if err != nil {
		c.Respond(errorReply(grainpb.Error_INVALID, "delivery to %q: %v", g.id, err))
		return
	}
	if g.inst.Status().IsTerminal() {
		c.Respond(errorReply(grainpb.Error_NOT_RUNNING, "instance %q is %s", g.id, g.inst.Status()))
		return
	}
	if len(events) == 0 {
		g.tick = true // the scheduled start is due
	}
	g.enqueue(c, g.keepTimers(events), c.Sender())
}

// keepTimers drops fired timers that do not belong to this generation's
// pending timers (a stale timer of an earlier generation, or one already
// fired); others pass.
func (g *grain) keepTimers(events []orchestration.HistoryEvent) []orchestration.HistoryEvent {
	kept := events[:0]
	for _, ev := range events {
		if ev.Kind == orchestration.TimerFired {
			if ev.Generation != g.generation || !g.timerPending(ev.EventID, ev.FireAt) {
				continue
			}
			ev.Generation = 0
		}
		kept = append(kept, ev)
	}
	return kept
}

func (g *grain) timerPending(eventID int32, at time.Time) bool {
	for _, p := range g.inst.Pending() {
		if p.Kind == orchestration.TimerCreated && p.EventID == eventID {
			return p.FireAt.Equal(at)
		}
	}
	return false
}

// enqueue adds inputs to the next episode; waiter (if any) is answered once
// they are recorded.
func (g *grain) enqueue(c actor.Context, events []orchestration.HistoryEvent, waiter *actor.PID) {
	g.queue = append(g.queue, events...)
	if waiter != nil {
		g.waiters = append(g.waiters, waiter)
	}
	g.process(c)
}

// process runs an episode with the queued inputs, unless an append is in
// flight: the inputs then wait and go into one episode together.
func (g *grain) process(c actor.Context) {
	if g.appending || (len(g.queue) == 0 && !g.tick && len(g.waiters) == 0) {
		return
	}
	inputs, waiters, tick := g.queue, g.waiters, g.tick
	g.queue, g.waiters, g.tick = nil, nil, false
	if len(inputs) == 0 && !(tick && g.inst.Status() == orchestration.StatusPending) {
		g.reply(c, waiters, g.ack()) // nothing to record
		return
	}
	ep, err := g.inst.Step(g.rt.now(), inputs...)
	// Step copied the inputs; their buffer takes the next ones.
	clear(inputs)
	g.queue = inputs[:0]
	if err != nil {
		g.reply(c, waiters, errorReply(grainpb.Error_NOT_RUNNING, "instance %q: %v", g.id, err))
		return
	}
	if len(ep.Events) == 0 {
		g.reply(c, waiters, g.ack())
		return
	}
	g.appendEpisode(c, ep, waiters, false, nil)
}

// appendEpisode appends an episode as one record in the background; the
// grain learns the outcome from appendDone. A ContinueAsNew appends two
// records, the end of the old generation and the start of the new, and a
// restart of a finished instance one; the history before the new
// generation's record is then truncated.
func (g *grain) appendEpisode(c actor.Context, ep orchestration.Episode, waiters []*actor.PID, restart bool, previous *orchestration.Instance) {
	g.appending = true
	var data []eventstore.EventData
	if ep.ContinuedAsNew {
		data = []eventstore.EventData{
			history.EpisodeData(ep.Events[:ep.NewGeneration], eventID()),
			history.EpisodeData(ep.Events[ep.NewGeneration:], eventID()),
		}
	} else {
		data = []eventstore.EventData{history.EpisodeData(ep.Events, eventID())}
	}
	expected := eventstore.NoStream
	if g.revision != eventstore.NoRevision {
		expected = eventstore.Exact(uint64(g.revision))
	}
	truncate := ep.ContinuedAsNew || restart
	epoch := g.rt.acted.begin()
	self, stream, rt, optimistic := c.Self(), g.stream, g.rt, g.optimistic
	g.optimistic = nil
	rt.pool.Schedule(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := rt.store.Append(ctx, stream, expected, data...)
		if err == nil && truncate {
			// The last record starts the new generation.
			if terr := rt.store.TruncateBefore(ctx, stream, res.Revision); terr != nil {
				// Replay skips to the last ExecutionStarted, so a longer
				// history is only slower.
				rt.log.Warn("truncating a finished generation failed", "stream", stream, "error", terr)
			}
		}
		rt.system.Root.Send(self, &appendDone{optimistic: optimistic, episode: ep, waiters: waiters, result: res, err: err, epoch: epoch, restart: restart, previous: previous})
	})
}

// appendDone acts on a recorded episode, or stops the grain when the
// append failed: its state is then ahead of the stream, and another
// activation may own the instance (fencing).
func (g *grain) appendDone(c actor.Context, d *appendDone) {
	g.appending = false
	if d.previous != nil {
		d.previous.Close()
	}
	if d.optimistic != nil && errors.Is(d.err, eventstore.ErrWrongExpectedRevision) {
		// The instance exists after all: read it and handle the Start again.
		g.rt.acted.end(d.epoch)
		g.inst.Close()
		g.inst, g.loaded = nil, false
		if g.ensureLoaded(c) {
			g.start(c, d.optimistic)
			g.process(c)
		} else {
			c.Send(d.optimistic.sender, errorReply(grainpb.Error_UNAVAILABLE, "instance %q cannot be loaded: %v", g.id, g.broken))
		}
		return
	}
	if d.err != nil {
		g.rt.acted.end(d.epoch)
		if errors.Is(d.err, eventstore.ErrWrongExpectedRevision) {
			g.rt.log.Warn("another activation wrote the instance first; stopping without acting", "instance", g.id, "error", d.err)
		} else {
			g.rt.log.Error("appending an episode failed; stopping the activation", "instance", g.id, "error", d.err)
		}
		g.reply(c, append(d.waiters, g.waiters...), errorReply(grainpb.Error_UNAVAILABLE, "instance %q: %v", g.id, d.err))
		g.waiters, g.queue = nil, nil
		g.broken = d.err
		c.Stop(c.Self())
		return
	}
	g.revision, g.position = int64(d.result.Revision), d.result.Position
	ep := d.episode
	current := ep.Events
	if ep.ContinuedAsNew {
		current = ep.Events[:ep.NewGeneration]
	}
	g.lastEpisode = busDecisions(current)
	g.act(c, current, d.epoch)
	g.reply(c, d.waiters, g.ack())
	if ep.ContinuedAsNew {
		g.continueAsNew(c, ep.Events[ep.NewGeneration:])
	}
	g.process(c)
}

// act carries out an episode's decisions. Activities and sub-orchestrations
// start at once (they are re-issued on any activation); timers and sent
// events go through the bus in the background, and the epoch ends when they
// are out.
func (g *grain) act(c actor.Context, events []orchestration.HistoryEvent, epoch uint64) {
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
	if len(timers) == 0 && len(bus) == 0 {
		g.rt.acted.end(epoch)
		return
	}
	rt := g.rt
	go func() {
		defer rt.acted.end(epoch)
		rt.sendBus(timers, bus)
	}()
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
				msg, err := DeliverMessage(fmt.Sprintf("start:%s:%d", g.id, ev.Generation), g.id, "Start")
				if err == nil {
					timers = append(timers, scheduled{at: ev.FireAt, msg: msg})
				}
			}
		case orchestration.EventSent:
			id := fmt.Sprintf("send:%s:%d:%d", g.id, g.generation, ev.EventID)
			raised := orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: ev.Name, Input: ev.Input, RequestID: id}
			msg, err := DeliverMessage(id, ev.InstanceID, "EventRaised", raised)
			if err == nil {
				sends = append(sends, msg)
			}
		}
	}
	return timers, sends
}

func timerID(instanceID string, generation, eventID int32) string {
	return fmt.Sprintf("timer:%s:%d:%d", instanceID, generation, eventID)
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
		return
	}
	ev := orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: d.eventID, Result: d.result}
	if d.failure != nil {
		ev = orchestration.HistoryEvent{Kind: orchestration.TaskFailed, EventID: d.eventID, Failure: d.failure}
	}
	g.enqueue(c, []orchestration.HistoryEvent{ev}, nil)
}

// startChild asks a sub-orchestration's grain to start, in the background.
// The request is idempotent, so it is simply repeated after a restart; a
// child that has already finished answers with its outcome.
func (g *grain) startChild(c actor.Context, ev orchestration.HistoryEvent) {
	parentStart, _ := g.inst.Started()
	start := orchestration.HistoryEvent{
		Kind: orchestration.ExecutionStarted, Name: ev.Name, Version: ev.Version, InstanceID: ev.InstanceID, Input: ev.Input,
		Parent:    &orchestration.ParentInstance{InstanceID: g.id, Name: parentStart.Name, EventID: ev.EventID},
		RequestID: fmt.Sprintf("sub:%s:%d:%d", g.id, g.generation, ev.EventID),
	}
	msg := &grainpb.Start{ExecutionStarted: encodeEvent(&start)}
	self, gen, rt, eventID := c.Self(), g.generation, g.rt, ev.EventID
	outcome := func(ev orchestration.HistoryEvent) {
		rt.system.Root.Send(self, &localInput{generation: gen, events: []orchestration.HistoryEvent{ev}})
	}
	failed := func(message string) {
		outcome(orchestration.HistoryEvent{Kind: orchestration.SubOrchestrationInstanceFailed, EventID: eventID,
			Failure: &orchestration.FailureDetails{ErrorType: "SubOrchestrationStartFailed", Message: message}})
	}
	go rt.retry("start sub-orchestration "+ev.InstanceID, func(ctx context.Context) (bool, error) {
		reply, err := rt.grains.Request(ctx, Kind, start.InstanceID, msg)
		if err != nil {
			return false, err
		}
		switch r := reply.(type) {
		case *grainpb.Ack:
			if r.Completion != nil {
				if done, ok := childOutcome(eventID, r.Completion); ok {
					outcome(done)
				}
			}
			return true, nil
		case *grainpb.Error:
			if r.Code == grainpb.Error_UNAVAILABLE {
				return false, errors.New(r.Message)
			}
			failed(r.Message)
			return true, nil
		}
		return false, fmt.Errorf("unexpected reply %T", reply)
	})
}

// childOutcome turns a child's ExecutionCompleted into the parent's input.
func childOutcome(eventID int32, completion *grainpb.Event) (orchestration.HistoryEvent, bool) {
	events, err := decodeEvents([]*grainpb.Event{completion})
	if err != nil {
		return orchestration.HistoryEvent{}, false
	}
	return subOrchestrationOutcome(eventID, events[0]), true
}

func subOrchestrationOutcome(eventID int32, ec orchestration.HistoryEvent) orchestration.HistoryEvent {
	if ec.Status == orchestration.StatusCompleted {
		return orchestration.HistoryEvent{Kind: orchestration.SubOrchestrationInstanceCompleted, EventID: eventID, Result: ec.Result}
	}
	failure := ec.Failure
	if failure == nil {
		failure = &orchestration.FailureDetails{ErrorType: ec.Status.String(), Message: "sub-orchestration was " + ec.Status.String()}
	}
	return orchestration.HistoryEvent{Kind: orchestration.SubOrchestrationInstanceFailed, EventID: eventID, Failure: failure}
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
	parent, done := start.Parent.InstanceID, subOrchestrationOutcome(start.Parent.EventID, ec)
	msg := &grainpb.Deliver{Events: []*grainpb.Event{encodeEvent(&done)}}
	go rt.retry("notify parent "+parent, func(ctx context.Context) (bool, error) {
		reply, err := rt.grains.Request(ctx, Kind, parent, msg)
		if err != nil {
			return false, err
		}
		if e, ok := reply.(*grainpb.Error); ok && e.Code == grainpb.Error_UNAVAILABLE {
			return false, errors.New(e.Message)
		}
		return true, nil // recorded, or the parent has moved on
	})
}

// continueAsNew switches to the new generation that the last append
// started, and runs it.
func (g *grain) continueAsNew(c actor.Context, events []orchestration.HistoryEvent) {
	g.cancelActivities()
	g.stopLocalTimers()
	g.inst.Close()
	inst := orchestration.NewInstance(g.rt.reg, g.rt.executor)
	next, err := inst.Replay(events)
	g.setInstance(inst)
	if err != nil {
		g.rt.log.Error("starting the next generation failed", "instance", g.id, "error", err)
		return
	}
	if len(next.Events) > 0 {
		g.appendEpisode(c, next, nil, false, nil)
	}
}

// wake makes sure nothing recorded is left undone: it runs on activation
// and after a restart the engine sends it to instances whose latest
// decisions may not have been carried out.
func (g *grain) wake(c actor.Context) {
	if g.inst != nil && len(g.lastEpisode) > 0 {
		timers, sends := g.busActs(c, g.lastEpisode)
		epoch := g.rt.acted.begin()
		rt := g.rt
		go func() {
			defer rt.acted.end(epoch)
			rt.sendBus(timers, sends)
		}()
	}
	c.Respond(g.ack())
}

// ack is the answer to a request whose inputs are recorded.
func (g *grain) ack() *grainpb.Ack {
	a := &grainpb.Ack{Position: g.position}
	if g.inst == nil {
		return a
	}
	status := g.inst.Status()
	a.Status = int32(status)
	if status.IsTerminal() {
		out, failure := g.inst.Output()
		ec := orchestration.HistoryEvent{Kind: orchestration.ExecutionCompleted, Status: status, Result: out, Failure: failure}
		a.Completion = encodeEvent(&ec)
	}
	return a
}

func (g *grain) reply(c actor.Context, to []*actor.PID, msg any) {
	for _, pid := range to {
		if pid != nil {
			c.Send(pid, msg)
		}
	}
}

// passivate stops an idle grain to free its memory; the next message
// activates it again from the stream.
func (g *grain) passivate(c actor.Context) {
	if g.appending || len(g.queue) > 0 || len(g.jobs) > 0 {
		return
	}
	c.Stop(c.Self())
}

func (g *grain) stopLocalTimers() {
	for id, t := range g.timers {
		t.Stop()
		delete(g.timers, id)
	}
}

func (g *grain) stop() {
	g.cancelActivities()
	g.stopLocalTimers()
	if g.inst != nil {
		g.inst.Close()
	}
}
