package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc/codes"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// episodeWork is what an orchestration grain appends: an episode (one
// record, or two for a ContinueAsNew).
type episodeWork struct {
	episode orchestration.Episode
	// results is how many activity results the episode records.
	results int
	// restart is set when the episode starts a finished instance over;
	// previous is then the ended instance, closed after the append.
	restart  bool
	previous *orchestration.Instance
	// optimistic is the Start that was appended without reading the stream
	// first, to be handled again if the stream turns out to exist.
	optimistic *startRequest
	// rejection is set when the episode is the failure recorded in place
	// of one the store refused (see refused); started when the refused
	// episode started the instance.
	rejection, started bool
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

// start handles a request to start the instance. On a fresh activation
// (unloaded) it does not read the stream: most starts are of new
// instances, so it appends with NoStream and reads only if a stream is
// there after all.
func (g *grain) start(c actor.Context, req *startRequest) {
	respond := func(msg any) { c.Send(req.sender, msg) }
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
			if g.inst.Status().IsTerminal() && g.state == ready {
				respond(g.completionAck())
				return
			}
			g.enqueue(c, nil, req.sender)
			return
		}
		if !g.inst.Status().IsTerminal() || g.state == appending {
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
	w := &episodeWork{episode: ep, restart: restart, previous: g.inst}
	if g.state == unloaded {
		w.optimistic = req
	}
	g.setInstance(inst)
	g.appendEpisode(c, w, []*actor.PID{req.sender})
}

// deliver queues inputs for the next episode.
func (g *grain) deliver(c actor.Context, m *grainpb.Deliver, sender *actor.PID) {
	reply := func(msg any) { c.Send(sender, msg) }
	if g.inst == nil {
		reply(errorReply(codes.NotFound, "instance %q does not exist", g.id))
		return
	}
	events, err := decodeEvents(m.Events)
	if err != nil {
		reply(errorReply(codes.InvalidArgument, "delivery to %q: %v", g.id, err))
		return
	}
	// While an append is in flight its outcome (a completion, or fencing)
	// is not known yet: the inputs wait for it and are judged after. A
	// request the ended instance recorded before it ended (its first try's
	// answer was lost) is answered as recorded.
	if g.state == ready && g.inst.Status().IsTerminal() {
		if g.allRecorded(events) {
			g.acknowledge(c, []*actor.PID{sender})
			return
		}
		reply(errorReply(codes.FailedPrecondition, "instance %q is %s", g.id, g.inst.Status()))
		return
	}
	g.enqueue(c, g.keepCurrent(events), sender)
}

// allRecorded reports whether every input is a request the instance has
// recorded.
func (g *grain) allRecorded(events []orchestration.HistoryEvent) bool {
	for _, ev := range events {
		if !g.inst.Recorded(ev.RequestID) {
			return false
		}
	}
	return len(events) > 0
}

// keepCurrent drops outcomes that do not belong to the current generation:
// fired timers, outcomes of sub-orchestrations and entity operations, and
// lock grants, that an earlier generation of this instance asked for. The generation they carry for this
// check is cleared. (Within a generation the executor drops the outcomes
// it has already recorded, and a fired timer whose time is not its
// timer's.) An ExecutionStarted is the due time of a scheduled start: it
// runs the next episode if it is this generation's.
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
		case orchestration.TimerFired, orchestration.SubOrchestrationInstanceCompleted, orchestration.SubOrchestrationInstanceFailed,
			orchestration.EntityOperationCompleted, orchestration.EntityOperationFailed, orchestration.EntityLockGranted:
			if ev.Generation != g.generation {
				continue
			}
		}
		ev.Generation = 0
		kept = append(kept, ev)
	}
	return kept
}

// enqueue adds inputs to the next episode; pid (if any) is answered once
// they are recorded.
func (g *grain) enqueue(c actor.Context, events []orchestration.HistoryEvent, pid *actor.PID) {
	from := len(g.queue)
	g.queue = append(g.queue, events...)
	if pid != nil {
		g.waiters = append(g.waiters, waiter{pid: pid, from: from, to: len(g.queue)})
	}
	g.process(c)
}

// process runs an episode with the queued inputs, unless an append is in
// flight: the inputs then wait and go into one episode together. Inputs for
// an instance whose start is scheduled for later are recorded without
// running it.
func (g *grain) process(c actor.Context) {
	if g.state != ready || g.inst == nil || (len(g.queue) == 0 && !g.tick && len(g.waiters) == 0) {
		return
	}
	inputs, waiters, tick, results := g.queue, g.waiters, g.tick, g.results
	g.queue, g.waiters, g.tick, g.results = nil, nil, false, 0
	pending := g.inst.Status() == orchestration.StatusPending
	if len(inputs) == 0 && !(tick && pending) {
		g.acknowledge(c, pids(waiters)) // nothing to record
		return
	}
	var ep orchestration.Episode
	var err error
	if start, _ := g.inst.Started(); pending && !tick && g.rt.now().Before(start.FireAt) {
		ep, err = g.inst.Record(g.rt.now(), inputs...)
	} else {
		ep, err = g.inst.Step(g.rt.now(), inputs...)
	}
	if err != nil {
		g.addResults(-results)
		g.refuse(c, inputs, waiters, err)
	}
	// The executor copied the inputs; their buffer takes the next ones.
	clear(inputs)
	g.queue = inputs[:0]
	switch {
	case err != nil:
	case len(ep.Events) == 0:
		g.addResults(-results)
		g.acknowledge(c, pids(waiters))
	default:
		g.appendEpisode(c, &episodeWork{episode: ep, results: results}, pids(waiters))
	}
}

// refuse answers the waiters of inputs an ended instance cannot take: those
// whose requests it recorded before it ended (their first answer was lost,
// and the request came again) hear that they are recorded, a retried Start
// hears the outcome, the others that the instance has ended.
func (g *grain) refuse(c actor.Context, inputs []orchestration.HistoryEvent, waiters []waiter, err error) {
	ended := g.inst.Status().IsTerminal()
	for _, w := range waiters {
		switch {
		case ended && w.from == w.to:
			c.Send(w.pid, g.completionAck())
		case ended && g.allRecorded(inputs[w.from:w.to]):
			g.acknowledge(c, []*actor.PID{w.pid})
		default:
			c.Send(w.pid, errorReply(codes.FailedPrecondition, "instance %q: %v", g.id, err))
		}
	}
}

// appendEpisode appends an episode as one record in the background; the
// grain learns the outcome in appended, conflicted or refused. A
// ContinueAsNew appends two records, the end of the old generation and the
// start of the new, and a restart of a finished instance one; the history
// before the new generation's record is truncated once the old one's
// decisions are carried out.
func (g *grain) appendEpisode(c actor.Context, w *episodeWork, waiters []*actor.PID) {
	ep := w.episode
	var data []eventstore.EventData
	if ep.ContinuedAsNew {
		data = []eventstore.EventData{
			history.EpisodeData(ep.Events[:ep.NewGeneration], eventID()),
			history.EpisodeData(ep.Events[ep.NewGeneration:], eventID()),
		}
	} else {
		data = []eventstore.EventData{history.EpisodeData(ep.Events, eventID())}
	}
	g.append(c, &appendOp{data: data, waiters: waiters, work: w}, w.optimistic != nil)
}

// appended acts on a recorded episode.
func (g *grain) appended(c actor.Context, op *appendOp) {
	w, ok := op.work.(*episodeWork)
	if !ok {
		g.purged(c, op)
		return
	}
	// The results it carried are recorded.
	g.addResults(-w.results)
	if w.previous != nil {
		w.previous.Close()
	}
	if w.rejection {
		g.rejected(c, op)
		return
	}
	ep := w.episode
	current := ep.Events
	var truncateBefore uint64
	if ep.ContinuedAsNew {
		current = ep.Events[:ep.NewGeneration]
	}
	if ep.ContinuedAsNew || w.restart {
		truncateBefore = op.result.Revision // the record that starts the new generation
	}
	g.act(c, current, op.epoch, truncateBefore)
	g.acknowledge(c, op.waiters)
	if ep.ContinuedAsNew {
		g.continueAsNew(c, ep.Events[ep.NewGeneration:])
	}
	if w.optimistic != nil {
		g.releaseHeld(c)
	}
	g.process(c)
}

// conflicted handles an episode another writer beat. An optimistic Start
// found the instance after all: the grain reads it and handles the Start
// again. Otherwise another activation writes this instance now (fencing).
func (g *grain) conflicted(c actor.Context, op *appendOp) {
	w, ok := op.work.(*episodeWork)
	if !ok || w.optimistic == nil {
		g.fenced(c, op)
		return
	}
	g.rt.recovery.End(op.epoch)
	g.flight = nil
	g.inst.Close()
	g.inst, g.state = nil, unloaded
	if w.previous != nil {
		w.previous.Close()
	}
	if g.load(c, w.optimistic.sender) {
		g.start(c, w.optimistic)
		if g.state != starting {
			g.releaseHeld(c)
		}
		g.process(c)
	}
}

// refused records, in place of an episode the store refused for good, the
// failure of the instance with the store's reason. The episode's decisions
// and inputs are dropped. A Start is answered as recorded (the instance
// exists, and failed, as one whose code fails at once would); the waiters of
// other inputs hear that the instance failed without them.
func (g *grain) refused(c actor.Context, op *appendOp) {
	w, ok := op.work.(*episodeWork)
	if !ok {
		g.reply(c, op.waiters, errorReply(codes.Internal, "instance %q: the store refused its purge: %v", g.id, op.err))
		return
	}
	if w.rejection {
		g.rt.log.Error("even the failure of an instance cannot be recorded; the activation stops", "instance", g.id, "error", op.err)
		g.stopNow(c, op.err)
		return
	}
	reason := fmt.Sprintf("the event store refused the episode: %v", op.err)
	g.rt.log.Error("an episode cannot be recorded; the instance fails", "instance", g.id, "error", op.err)
	g.addResults(-w.results)
	first := w.episode.Events
	if w.episode.ContinuedAsNew {
		first = first[:w.episode.NewGeneration]
	}
	var start *orchestration.HistoryEvent
	for i := range first {
		if first[i].Kind == orchestration.ExecutionStarted {
			start = &first[i]
			break
		}
	}
	rejection := &episodeWork{
		episode:    orchestration.Episode{Events: orchestration.RejectionEpisode(g.rt.now(), start, reason)},
		rejection:  true,
		started:    start != nil,
		previous:   w.previous,
		optimistic: w.optimistic,
	}
	g.appendEpisode(c, rejection, op.waiters)
}

// rejected reloads the instance once its rejection is recorded, and answers
// the waiters of the refused episode (see refused).
func (g *grain) rejected(c actor.Context, op *appendOp) {
	w := op.work.(*episodeWork)
	g.rt.recovery.End(op.epoch)
	if w.started {
		g.acknowledge(c, op.waiters)
	} else {
		g.reply(c, op.waiters, errorReply(codes.FailedPrecondition, "instance %q failed: %s", g.id,
			w.episode.Events[len(w.episode.Events)-2].Failure.Message))
	}
	g.cancelActivities()
	g.stopLocalTimers()
	if g.inst != nil {
		g.inst.Close()
		g.inst = nil
	}
	g.revision = eventstore.NoRevision
	if !g.load(c, nil) {
		return
	}
	if w.optimistic != nil {
		g.releaseHeld(c)
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
	g.addResults(-g.results)
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
		g.appendEpisode(c, &episodeWork{episode: next}, nil)
	}
}
