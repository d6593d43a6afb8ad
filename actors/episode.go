package actors

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc/codes"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// appendDone is an episode's append: what the grain asks for, and, when it
// comes back to the grain as a message, the outcome.
type appendDone struct {
	episode orchestration.Episode
	// waiters are answered once the episode is recorded.
	waiters []*actor.PID
	// results is how many activity results the episode records.
	results int
	// restart is set when the episode starts a finished instance over;
	// previous is then the ended instance, closed after the append.
	restart  bool
	previous *orchestration.Instance
	// optimistic is the Start that was appended without reading the stream
	// first, to be handled again if the stream turns out to exist.
	optimistic *startRequest
	epoch      uint64

	result eventstore.AppendResult
	err    error
}

// startRequest is a Start and who asked.
type startRequest struct {
	msg    *grainpb.Start
	sender *actor.PID
}

// heldRequest is a request that waits for an optimistic Start to settle.
type heldRequest struct {
	msg    any
	sender *actor.PID
}

// start handles a request to start the instance. On a fresh activation it
// does not read the stream: most starts are of new instances, so it
// appends with NoStream and reads only if a stream is there after all.
func (g *grain) start(c actor.Context, req *startRequest) {
	respond := func(msg any) { c.Send(req.sender, msg) }
	if g.broken != nil {
		respond(errorReply(codes.Unavailable, "instance %q cannot be loaded: %v", g.id, g.broken))
		return
	}
	events, err := decodeEvents([]*grainpb.Event{req.msg.ExecutionStarted})
	if err != nil || events[0].Kind != orchestration.ExecutionStarted {
		respond(errorReply(codes.InvalidArgument, "start of %q: not an ExecutionStarted event: %v", g.id, err))
		return
	}
	es := events[0]
	restart := false
	if g.inst != nil {
		prev, _ := g.inst.Started()
		if es.RequestID != "" && prev.RequestID == es.RequestID {
			// A retried start: answer once the first one is recorded.
			if g.inst.Status().IsTerminal() && !g.appending {
				respond(g.completionAck())
				return
			}
			g.enqueue(c, nil, req.sender)
			return
		}
		if !g.inst.Status().IsTerminal() || g.appending {
			respond(errorReply(codes.AlreadyExists, "instance %q is already %s", g.id, g.inst.Status()))
			return
		}
		restart = true // a finished instance starts over, as in Durable Functions
		es.Generation = prev.Generation + 1
	}
	if _, ok := g.rt.reg.Get(es.Name); !ok {
		respond(errorReply(codes.InvalidArgument, "no orchestrator is registered under the name %q", es.Name))
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
			respond(errorReply(codes.InvalidArgument, "start of %q: %v", g.id, err))
			return
		}
		ep = orchestration.Episode{Events: []orchestration.HistoryEvent{es}, Status: orchestration.StatusPending}
	} else {
		ep, err = inst.Step(now, es)
		if err != nil {
			inst.Close()
			respond(errorReply(codes.InvalidArgument, "start of %q: %v", g.id, err))
			return
		}
	}
	// Only a Start that is about to be appended settles whether the stream
	// was read: one refused above leaves the grain as it found it.
	var optimistic *startRequest
	if !g.loaded {
		g.loaded = true
		optimistic = req
	}
	previous := g.inst
	g.setInstance(inst)
	g.optimistic, g.optimisticFlight = optimistic, optimistic != nil
	g.appendEpisode(c, &appendDone{episode: ep, waiters: []*actor.PID{req.sender}, restart: restart, previous: previous})
}

// deliver queues inputs for the next episode.
func (g *grain) deliver(c actor.Context, m *grainpb.Deliver, sender *actor.PID) {
	reply := func(msg any) { c.Send(sender, msg) }
	switch {
	case g.broken != nil:
		reply(errorReply(codes.Unavailable, "instance %q cannot be loaded: %v", g.id, g.broken))
		return
	case g.inst == nil:
		reply(errorReply(codes.NotFound, "instance %q does not exist", g.id))
		return
	}
	events, err := decodeEvents(m.Events)
	if err != nil {
		reply(errorReply(codes.InvalidArgument, "delivery to %q: %v", g.id, err))
		return
	}
	// While an append is in flight its outcome (a completion, or fencing)
	// is not known yet: the inputs wait for it and are judged after.
	if !g.appending && g.inst.Status().IsTerminal() {
		reply(errorReply(codes.FailedPrecondition, "instance %q is %s", g.id, g.inst.Status()))
		return
	}
	g.enqueue(c, g.keepCurrent(events), sender)
}

// keepCurrent drops outcomes that do not belong to the current generation:
// fired timers and outcomes of sub-orchestrations that an earlier
// generation of this instance created. The generation they carry for this
// check is cleared. (Within a generation the executor drops the outcomes
// it has already recorded, and a fired timer whose time is not its
// timer's.) An ExecutionStarted is
// the due time of a scheduled start: it runs the next episode if it is
// this generation's.
func (g *grain) keepCurrent(events []orchestration.HistoryEvent) []orchestration.HistoryEvent {
	kept := events[:0]
	for _, ev := range events {
		switch ev.Kind {
		case orchestration.ExecutionStarted:
			if ev.Generation == g.generation {
				g.tick = true
			} else {
				g.rt.log.Debug("dropping the scheduled start of an earlier generation", "instance", g.id, "generation", ev.Generation)
			}
			continue
		case orchestration.TimerFired, orchestration.SubOrchestrationInstanceCompleted, orchestration.SubOrchestrationInstanceFailed:
			if ev.Generation != g.generation {
				continue
			}
		}
		ev.Generation = 0
		kept = append(kept, ev)
	}
	return kept
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
// flight: the inputs then wait and go into one episode together. Inputs for
// an instance whose start is scheduled for later are recorded without
// running it.
func (g *grain) process(c actor.Context) {
	if g.appending || (len(g.queue) == 0 && !g.tick && len(g.waiters) == 0) {
		return
	}
	inputs, waiters, tick, results := g.queue, g.waiters, g.tick, g.results
	g.queue, g.waiters, g.tick, g.results = nil, nil, false, 0
	pending := g.inst.Status() == orchestration.StatusPending
	if len(inputs) == 0 && !(tick && pending) {
		g.acknowledge(c, waiters) // nothing to record
		return
	}
	var ep orchestration.Episode
	var err error
	if start, _ := g.inst.Started(); pending && !tick && g.rt.now().Before(start.FireAt) {
		ep, err = g.inst.Record(g.rt.now(), inputs...)
	} else {
		ep, err = g.inst.Step(g.rt.now(), inputs...)
	}
	// The executor copied the inputs; their buffer takes the next ones.
	clear(inputs)
	g.queue = inputs[:0]
	if err != nil {
		g.rt.unrecorded.Add(-int64(results))
		g.reply(c, waiters, errorReply(codes.FailedPrecondition, "instance %q: %v", g.id, err))
		return
	}
	if len(ep.Events) == 0 {
		g.rt.unrecorded.Add(-int64(results))
		g.acknowledge(c, waiters)
		return
	}
	g.appendEpisode(c, &appendDone{episode: ep, waiters: waiters, results: results})
}

// appendEpisode appends an episode (a.episode, for a.waiters, recording
// a.results activity results) as one record in the background; the grain
// learns the outcome from appendDone. A ContinueAsNew appends two records,
// the end of the old generation and the start of the new, and a restart
// of a finished instance one; the history before the new generation's
// record is truncated once the old one's decisions are carried out.
func (g *grain) appendEpisode(c actor.Context, a *appendDone) {
	g.appending = true
	ep := a.episode
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
	a.epoch = g.rt.acted.begin()
	a.optimistic, g.optimistic = g.optimistic, nil
	g.inflightResults = a.results
	self, stream, rt := c.Self(), g.stream, g.rt
	rt.pool.Schedule(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.result, a.err = rt.store.Append(ctx, stream, expected, data...)
		rt.system.Root.Send(self, a)
	})
}

// appendDone acts on a recorded episode, or stops the grain when the
// append failed: its state is then ahead of the stream, and another
// activation may own the instance (fencing).
func (g *grain) appendDone(c actor.Context, d *appendDone) {
	g.appending = false
	// The results it carried are recorded, or will be again by the
	// activities' re-run after a failed append.
	g.rt.unrecorded.Add(-int64(d.results))
	g.inflightResults = 0
	if d.previous != nil {
		d.previous.Close()
	}
	if d.optimistic != nil {
		g.optimisticFlight = false
		defer g.releaseHeld(c)
	}
	if d.optimistic != nil && errors.Is(d.err, eventstore.ErrWrongExpectedRevision) {
		// The instance exists after all: read it and handle the Start again.
		g.rt.acted.end(d.epoch)
		g.inst.Close()
		g.inst, g.loaded = nil, false
		if g.ensureLoaded(c, d.optimistic.sender) {
			g.start(c, d.optimistic)
			g.process(c)
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
		g.reply(c, append(d.waiters, g.waiters...), errorReply(codes.Unavailable, "instance %q: %v", g.id, d.err))
		g.rt.unrecorded.Add(-int64(g.results))
		g.waiters, g.queue, g.results = nil, nil, 0
		g.broken = d.err
		c.Stop(c.Self())
		return
	}
	g.revision, g.position = int64(d.result.Revision), d.result.Position
	ep := d.episode
	current := ep.Events
	var truncateBefore uint64
	if ep.ContinuedAsNew {
		current = ep.Events[:ep.NewGeneration]
	}
	if ep.ContinuedAsNew || d.restart {
		truncateBefore = d.result.Revision // the record that starts the new generation
	}
	g.act(c, current, d.epoch, truncateBefore)
	g.acknowledge(c, d.waiters)
	if ep.ContinuedAsNew {
		g.continueAsNew(c, ep.Events[ep.NewGeneration:])
	}
	g.process(c)
}

// releaseHeld handles the requests that waited for an optimistic Start.
func (g *grain) releaseHeld(c actor.Context) {
	held := g.held
	g.held = nil
	for _, h := range held {
		g.request(c, h.msg, h.sender)
	}
}

// continueAsNew switches to the new generation that the last append
// started, and runs it.
func (g *grain) continueAsNew(c actor.Context, events []orchestration.HistoryEvent) {
	g.cancelActivities()
	g.stopLocalTimers()
	// Outcomes queued during the append belong to the old generation; raised
	// events and control requests go on to the new one.
	kept := g.queue[:0]
	for _, ev := range g.queue {
		if !ev.Kind.IsOutcome() {
			kept = append(kept, ev)
		}
	}
	g.rt.unrecorded.Add(-int64(g.results))
	g.queue, g.results = kept, 0
	g.inst.Close()
	inst := orchestration.NewInstance(g.rt.reg, g.rt.executor)
	next, err := inst.Replay(events)
	g.setInstance(inst)
	if err != nil {
		g.rt.log.Error("starting the next generation failed", "instance", g.id, "error", err)
		return
	}
	if len(next.Events) > 0 {
		g.appendEpisode(c, &appendDone{episode: next})
	}
}
