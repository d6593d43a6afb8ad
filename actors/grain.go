package actors

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/grpc/codes"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
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
	// inflightResults are the activity results of the append in flight.
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
			g.acknowledge(c, []*actor.PID{sender})
		}
	}
}

// activate prepares a new activation; the stream is read with the first
// message that needs it.
func (g *grain) activate(c actor.Context, id string) {
	g.id = id
	g.stream = history.StreamName(id)
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
			c.Send(sender, errorReply(codes.Unavailable, "instance %q cannot be loaded: %v", g.id, err))
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
	// unacted are the events of records that a crash may have kept from
	// being acted on (see Runtime.SetRecoveryWindow); positions grow along
	// a stream, so they are one run of events.
	var unacted eventRange
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
		if g.rt.mayBeUnacted(rec.Position) {
			if unacted.to == 0 {
				unacted.from = n
			}
			unacted.to = len(events)
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
		g.appendEpisode(c, &appendDone{episode: ep})
	}
	return nil
}

// redo acts again on the bus decisions that a crash may have kept from the
// bus: the current generation's pending timers and pending scheduled start
// (unless the instance has ended), and the events sent by every generation
// still in the stream (an ended generation is truncated only after its
// sends are out). Timer and message IDs make this idempotent.
func (g *grain) redo(c actor.Context, events []orchestration.HistoryEvent, unacted eventRange) {
	if unacted.to == 0 {
		return // the usual activation: everything was acted on
	}
	first := 0
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Kind == orchestration.ExecutionStarted {
			first = i
			break
		}
	}
	ended := g.inst.Status().IsTerminal()
	pending := make(map[int32]bool)
	for _, p := range g.inst.Pending() {
		if p.Kind == orchestration.TimerCreated {
			pending[p.EventID] = true
		}
	}
	var again []orchestration.HistoryEvent
	var earlier []delivery.Message
	generation := int32(0)
	for i, ev := range events[:unacted.to] {
		if ev.Kind == orchestration.ExecutionStarted {
			generation = ev.Generation
		}
		switch {
		case i < unacted.from:
		case i < first:
			if ev.Kind != orchestration.EventSent {
				continue
			}
			if msg, err := sendMessage(g.id, generation, ev); err == nil {
				earlier = append(earlier, msg)
			}
		case ev.Kind == orchestration.EventSent,
			!ended && ev.Kind == orchestration.TimerCreated && pending[ev.EventID],
			!ended && ev.Kind == orchestration.ExecutionStarted:
			again = append(again, ev)
		}
	}
	if len(again) == 0 && len(earlier) == 0 {
		return
	}
	timers, sends := g.busActs(c, again)
	sends = append(earlier, sends...)
	epoch := g.rt.acted.begin()
	rt := g.rt
	rt.pool.Schedule(func() {
		defer rt.acted.end(epoch)
		rt.sendBus(timers, sends)
	})
}

// eventRange is the events [from, to) of a history.
type eventRange struct{ from, to int }

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

// acknowledge answers the waiters of inputs that are recorded.
func (g *grain) acknowledge(c actor.Context, waiters []*actor.PID) {
	if len(waiters) > 0 {
		g.reply(c, waiters, &grainpb.Ack{Position: g.position})
	}
}

// completionAck answers a retried Start of an instance that has ended with
// its outcome: a parent that starts its child again after a restart learns
// the outcome from it, whose notification a crash may have lost.
func (g *grain) completionAck() *grainpb.Ack {
	out, failure := g.inst.Output()
	ec := orchestration.HistoryEvent{Kind: orchestration.ExecutionCompleted, Status: g.inst.Status(), Result: out, Failure: failure}
	return &grainpb.Ack{Position: g.position, Completion: encodeEvent(&ec)}
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
