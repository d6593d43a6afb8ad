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

	queue     []orchestration.HistoryEvent
	waiters   []*actor.PID
	tick      bool // run an episode without inputs (a scheduled start)
	appending bool
	// optimistic is the Start whose append is in flight without the stream
	// having been read; until it is settled, other requests wait in held.
	optimistic       *startRequest
	optimisticFlight bool
	held             []heldRequest
	// results counts the activity results queued but not yet recorded, and
	// children the sub-orchestration starts still waiting for an answer;
	// neither may be lost to passivation.
	results  int
	children int
	// pendingResults are the activity results of the episode being
	// appended, inflightResults those of the append in flight.
	pendingResults  int
	inflightResults int
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
	// results is how many activity results the append recorded.
	results  int
	episode  orchestration.Episode
	waiters  []*actor.PID
	result   eventstore.AppendResult
	err      error
	epoch    uint64
	restart  bool
	previous *orchestration.Instance
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

// childAnswered tells the grain that a sub-orchestration start it sent got
// its answer.
type childAnswered struct{}

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
	case *grainpb.Start, *grainpb.Deliver, *grainpb.Wake:
		g.request(c, m, c.Sender())
	case *activityDone:
		g.activityDone(c, m)
	case *localInput:
		if g.inst != nil && m.generation == g.generation {
			g.enqueue(c, m.events, nil)
		}
	case childAnswered:
		g.children--
	case *appendDone:
		g.appendDone(c, m)
	case *actor.ReceiveTimeout:
		g.passivate(c)
	case *actor.Stopping:
		g.stop()
	}
}

// request handles a Start, Deliver or Wake. While an optimistic Start is
// in flight the grain does not know yet whether its instance is the one
// that exists, so other requests wait.
func (g *grain) request(c actor.Context, msg any, sender *actor.PID) {
	if g.optimisticFlight {
		g.held = append(g.held, heldRequest{msg: msg, sender: sender})
		return
	}
	switch m := msg.(type) {
	case *grainpb.Start:
		g.start(c, &startRequest{msg: m, sender: sender})
	case *grainpb.Deliver:
		if g.ensureLoaded(c, sender) {
			g.deliver(c, m, sender)
		}
	case *grainpb.Wake:
		if g.ensureLoaded(c, sender) {
			c.Send(sender, g.ack())
		}
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
func (g *grain) ensureLoaded(c actor.Context, sender *actor.PID) bool {
	if g.loaded {
		return true
	}
	if err := g.load(c); err != nil {
		g.rt.log.Error("instance cannot be loaded", "instance", g.id, "error", err)
		g.broken = err
		if sender != nil {
			c.Send(sender, errorReply(grainpb.Error_UNAVAILABLE, "instance %q cannot be loaded: %v", g.id, err))
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
	// unacted marks the events of records that a crash may have kept from
	// being acted on (see Runtime.SetRecoveryWindow).
	var unacted []bool
	for rec, err := range g.rt.store.ReadStream(ctx, g.stream, eventstore.ReadStreamOptions{}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n := len(events)
		if events, err = dec.DecodeRecord(events, &rec); err != nil {
			return err
		}
		redo := g.rt.mayBeUnacted(rec.Position)
		for range len(events) - n {
			unacted = append(unacted, redo)
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
	// Decisions the replay made now are started by act after their append,
	// not here.
	fresh := make(map[int32]bool)
	for _, ev := range ep.Events {
		if ev.Kind.IsDecision() {
			fresh[ev.EventID] = true
		}
	}
	g.reissue(c, fresh)
	g.redo(c, events, unacted)
	if len(ep.Events) > 0 {
		g.appendEpisode(c, ep, nil, false, nil)
	}
	return nil
}

// redo acts again on the bus decisions of the current generation's records
// that a crash may have kept from the bus: pending timers, sent events, a
// pending scheduled start. Timer and message IDs make this idempotent.
func (g *grain) redo(c actor.Context, events []orchestration.HistoryEvent, unacted []bool) {
	first := 0
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Kind == orchestration.ExecutionStarted {
			first = i
			break
		}
	}
	pending := make(map[int32]bool)
	for _, p := range g.inst.Pending() {
		if p.Kind == orchestration.TimerCreated {
			pending[p.EventID] = true
		}
	}
	var again []orchestration.HistoryEvent
	for i := first; i < len(events); i++ {
		ev := events[i]
		if !unacted[i] {
			continue
		}
		switch {
		case ev.Kind == orchestration.TimerCreated && pending[ev.EventID],
			ev.Kind == orchestration.EventSent,
			ev.Kind == orchestration.ExecutionStarted:
			again = append(again, ev)
		}
	}
	if len(again) == 0 {
		return
	}
	timers, sends := g.busActs(c, again)
	epoch := g.rt.acted.begin()
	rt := g.rt
	go func() {
		defer rt.acted.end(epoch)
		rt.sendBus(timers, sends)
	}()
}

func (g *grain) setInstance(inst *orchestration.Instance) {
	g.inst = inst
	start, _ := inst.Started()
	g.generation = start.Generation
}

// reissue starts the activities and sub-orchestrations that have no
// outcome recorded (except the fresh ones, not yet appended), unless the
// instance has ended (its unfinished work was abandoned).
func (g *grain) reissue(c actor.Context, fresh map[int32]bool) {
	if g.inst.Status().IsTerminal() {
		return
	}
	for _, p := range g.inst.Pending() {
		if fresh[p.EventID] {
			continue
		}
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
	g.optimistic, g.optimisticFlight = optimistic, optimistic != nil
	g.appendEpisode(c, ep, []*actor.PID{req.sender}, restart, previous)
}

// deliver queues inputs for the next episode.
func (g *grain) deliver(c actor.Context, m *grainpb.Deliver, sender *actor.PID) {
	reply := func(msg any) { c.Send(sender, msg) }
	switch {
	case g.broken != nil:
		reply(errorReply(grainpb.Error_UNAVAILABLE, "instance %q cannot be loaded: %v", g.id, g.broken))
		return
	case g.inst == nil:
		reply(errorReply(grainpb.Error_NOT_FOUND, "instance %q does not exist", g.id))
		return
	}
	events, err := decodeEvents(m.Events)
	if err != nil {
		reply(errorReply(grainpb.Error_INVALID, "delivery to %q: %v", g.id, err))
		return
	}
	// While an append is in flight its outcome (a completion, or fencing)
	// is not known yet: the inputs wait for it and are judged after.
	if !g.appending && g.inst.Status().IsTerminal() {
		reply(errorReply(grainpb.Error_NOT_RUNNING, "instance %q is %s", g.id, g.inst.Status()))
		return
	}
	if len(events) == 0 {
		g.tick = true // the scheduled start is due
	}
	g.enqueue(c, g.keepCurrent(events), sender)
}

// keepCurrent drops outcomes that do not belong to the current generation:
// fired timers of an earlier generation or already fired, outcomes of
// sub-orchestrations an earlier generation of this instance started. The
// generation they carry for this check is cleared.
func (g *grain) keepCurrent(events []orchestration.HistoryEvent) []orchestration.HistoryEvent {
	kept := events[:0]
	for _, ev := range events {
		switch ev.Kind {
		case orchestration.TimerFired:
			if ev.Generation != g.generation || !g.timerPending(ev.EventID, ev.FireAt) {
				continue
			}
		case orchestration.SubOrchestrationInstanceCompleted, orchestration.SubOrchestrationInstanceFailed:
			if ev.Generation != g.generation {
				continue
			}
		}
		ev.Generation = 0
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
		g.reply(c, waiters, g.ack()) // nothing to record
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
		g.reply(c, waiters, errorReply(grainpb.Error_NOT_RUNNING, "instance %q: %v", g.id, err))
		return
	}
	if len(ep.Events) == 0 {
		g.rt.unrecorded.Add(-int64(results))
		g.reply(c, waiters, g.ack())
		return
	}
	g.pendingResults = results
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
	self, stream, rt, optimistic, results := c.Self(), g.stream, g.rt, g.optimistic, g.pendingResults
	g.optimistic, g.pendingResults, g.inflightResults = nil, 0, results
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
		rt.system.Root.Send(self, &appendDone{optimistic: optimistic, results: results, episode: ep, waiters: waiters, result: res, err: err, epoch: epoch, restart: restart, previous: previous})
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
		g.reply(c, append(d.waiters, g.waiters...), errorReply(grainpb.Error_UNAVAILABLE, "instance %q: %v", g.id, d.err))
		g.rt.unrecorded.Add(-int64(g.results))
		g.waiters, g.queue, g.results = nil, nil, 0
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
	g.act(c, current, d.epoch)
	g.reply(c, d.waiters, g.ack())
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
	msg := &grainpb.Start{ExecutionStarted: encodeEvent(&start)}
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
			answered()
			return true, nil
		case *grainpb.Error:
			if r.Code == grainpb.Error_UNAVAILABLE {
				return false, errors.New(r.Message)
			}
			failed(r.Message)
			answered()
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
	done.Generation = start.Parent.Generation
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
	// Outcomes queued during the append belong to the old generation; raised
	// events and control requests go on to the new one.
	kept := g.queue[:0]
	for _, ev := range g.queue {
		switch ev.Kind {
		case orchestration.TaskCompleted, orchestration.TaskFailed, orchestration.TimerFired,
			orchestration.SubOrchestrationInstanceCompleted, orchestration.SubOrchestrationInstanceFailed:
			continue
		}
		kept = append(kept, ev)
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
		g.appendEpisode(c, next, nil, false, nil)
	}
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
	if g.appending || len(g.queue) > 0 || len(g.jobs) > 0 || g.children > 0 || len(g.held) > 0 {
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
	g.rt.unrecorded.Add(-int64(g.results + g.inflightResults))
	g.results, g.inflightResults = 0, 0
	g.cancelActivities()
	g.stopLocalTimers()
	if g.inst != nil {
		g.inst.Close()
	}
}
