package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// grain is one orchestration instance, active on this node: a core (the
// lifecycle, the fenced appends, the outbox) and what an orchestration
// adds: its executor instance, its queue of inputs and its activities.
type grain struct {
	core
	id string

	// inst is nil while the instance does not exist.
	inst       *orchestration.Instance
	generation int32

	// The next episode: its inputs, who waits for which of them to be
	// recorded, and whether to run it without inputs (a scheduled start
	// that is due). results counts the activity results among the inputs.
	queue   []orchestration.HistoryEvent
	waiters []waiter
	tick    bool
	results int
	// held are the requests that wait for an optimistic Start to settle.
	held []heldRequest

	// jobs are the activity calls handed to runners or waiting for one,
	// by event ID; waiting holds those without a runner yet, idle the
	// runners without a job.
	jobs    map[int32]context.CancelFunc
	waiting []*activityJob
	idle    []*actor.PID
	runners int
	// children counts the sub-orchestration starts waiting for an answer.
	children int
	timers   map[int32]*time.Timer
}

func (g *grain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *cluster.ClusterInit:
		g.activate(c, m.Identity.Identity)
	case *grainpb.Start, *grainpb.Deliver, *grainpb.Wake, *grainpb.Purge:
		g.request(c, m, c.Sender())
		g.stopIfDone(c)
	case *activityDone:
		g.activityDone(c, m)
	case *localInput:
		if g.live() && m.generation == g.generation {
			g.enqueue(c, m.events, nil)
		}
	case childAnswered:
		g.children--
	case *appendOp:
		g.appendResult(c, m)
		g.stopIfDone(c)
	case retryAppend:
		g.retry(c, m.op)
	case outboxDone:
		g.outboxFinished(c)
		g.stopIfDone(c)
	case *actor.ReceiveTimeout:
		g.passivate(c)
	case *actor.Stopping:
		g.teardown()
	}
}

// live reports whether the grain runs an instance.
func (g *grain) live() bool {
	return (g.state == ready || g.state == appending) && g.inst != nil
}

// activate prepares a new activation; the stream is read with the first
// message that needs it.
func (g *grain) activate(c actor.Context, id string) {
	g.id = id
	g.init(g.rt, "instance "+id, history.StreamName(id), g)
	g.jobs = make(map[int32]context.CancelFunc)
	g.timers = make(map[int32]*time.Timer)
	c.SetReceiveTimeout(g.rt.idle)
}

// request handles a Start, Deliver or Wake in the grain's current state.
func (g *grain) request(c actor.Context, msg any, sender *actor.PID) {
	switch g.state {
	case stopped:
		g.refuseStopped(c, sender)
		return
	case starting:
		g.held = append(g.held, heldRequest{msg: msg, sender: sender})
		return
	case unloaded:
		if start, ok := msg.(*grainpb.Start); ok {
			g.start(c, &startRequest{msg: start, sender: sender})
			return
		}
		if !g.load(c, sender) {
			return
		}
	}
	switch m := msg.(type) {
	case *grainpb.Start:
		g.start(c, &startRequest{msg: m, sender: sender})
	case *grainpb.Deliver:
		g.deliver(c, m, sender)
	case *grainpb.Wake:
		if g.inst != nil {
			g.fireOverdueTimers(c)
		}
		g.acknowledge(c, []*actor.PID{sender})
	case *grainpb.Purge:
		g.purge(c, sender)
	}
}

// load reads the instance from its stream, replays it and issues again the
// work it has in flight: after a crash or a move nothing else will. When the
// stream cannot be read it answers sender and stops: Unavailable when
// another try may succeed (the store is down), FailedPrecondition when the
// history cannot be decoded.
func (g *grain) load(c actor.Context, sender *actor.PID) bool {
	err := g.read(c)
	if err == nil {
		return true
	}
	code := codes.Unavailable
	if errors.Is(err, history.ErrCorrupt) {
		code = codes.FailedPrecondition
		g.rt.log.Error("instance cannot be loaded: its history is corrupt", "instance", g.id, "error", err)
	} else {
		g.rt.log.Warn("instance cannot be loaded now", "instance", g.id, "error", err)
	}
	if sender != nil {
		c.Send(sender, errorReply(code, "instance %q cannot be loaded: %v", g.id, err))
	}
	g.stopNow(c, fmt.Errorf("instance %q cannot be loaded: %w", g.id, err))
	return false
}

// read loads the stream into a new instance (state ready, or appending when
// the replay made decisions to record).
func (g *grain) read(c actor.Context) error {
	ctx, cancel := context.WithTimeout(g.rt.ctx, 30*time.Second)
	defer cancel()
	var dec history.Decoder
	var events []orchestration.HistoryEvent
	var records []recordSpan
	for rec, err := range g.rt.store.ReadStream(ctx, g.stream, eventstore.ReadStreamOptions{}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return err
		}
		if rec.Type == history.PurgedType {
			// The instance was purged: what came before is gone.
			g.finishPurge(records, rec.Revision)
			events, records = events[:0], records[:0]
			g.revision, g.position = int64(rec.Revision), rec.Position
			continue
		}
		n := len(events)
		if events, err = dec.DecodeRecord(events, &rec); err != nil {
			return err
		}
		records = append(records, recordSpan{from: n, to: len(events), revision: rec.Revision, position: rec.Position})
		g.revision, g.position = int64(rec.Revision), rec.Position
	}
	g.state = ready
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
	// Decisions the replay made now are carried out by act after their
	// append, not here.
	fresh := make(map[int32]bool)
	for _, ev := range ep.Events {
		if ev.Kind.IsDecision() {
			fresh[ev.EventID] = true
		}
	}
	g.reissue(c, fresh)
	g.redo(c, events, records)
	if len(ep.Events) > 0 {
		g.appendEpisode(c, &episodeWork{episode: ep}, nil)
	}
	return nil
}

// recordSpan is where one stored record's events are in a history.
type recordSpan struct {
	from, to int
	revision uint64
	position uint64
}

func (g *grain) setInstance(inst *orchestration.Instance) {
	g.inst = inst
	start, _ := inst.Started()
	g.generation = start.Generation
}

// reissue starts the activities and sub-orchestrations that have no
// outcome recorded (except the fresh ones, not yet appended), and arms the
// timers that are due soon, unless the instance has ended (its unfinished
// work was abandoned).
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

// fireOverdueTimers arms the timers that are due now or soon and not armed
// yet: recovery wakes an active instance whose timer the bus missed.
func (g *grain) fireOverdueTimers(c actor.Context) {
	if g.inst.Status().IsTerminal() {
		return
	}
	for _, p := range g.inst.Pending() {
		if p.Kind == orchestration.TimerCreated {
			g.armLocalTimer(c, p)
		}
	}
	if start, _ := g.inst.Started(); g.inst.Status() == orchestration.StatusPending && !start.FireAt.After(g.rt.now()) {
		g.tick = true
		g.process(c)
	}
}

// waiter is who waits for the queued inputs [from, to) to be recorded; an
// empty range is a retried Start waiting for the first one's append.
type waiter struct {
	pid      *actor.PID
	from, to int
}

// pids returns the callers of waiters.
func pids(waiters []waiter) []*actor.PID {
	out := make([]*actor.PID, len(waiters))
	for i, w := range waiters {
		out[i] = w.pid
	}
	return out
}

// completionAck answers a retried Start of an instance that has ended with
// its outcome: a parent that starts its child again after a restart learns
// the outcome from it, whose notification a crash may have lost.
func (g *grain) completionAck() *grainpb.Ack {
	out, failure := g.inst.Output()
	ec := orchestration.HistoryEvent{Kind: orchestration.ExecutionCompleted, Status: g.inst.Status(), Result: out, Failure: failure}
	return &grainpb.Ack{Position: g.position, Completion: encodeEvent(&ec)}
}

// idleNow reports whether the grain holds nothing that passivation would lose.
func (g *grain) idleNow() bool {
	return g.state == ready && len(g.queue) == 0 && !g.tick && len(g.jobs) == 0 && g.children == 0 && !g.outbox.busy()
}

// passivate stops an idle grain to free its memory; the next message
// activates it again from the stream.
func (g *grain) passivate(c actor.Context) {
	if g.state == unloaded || g.idleNow() {
		c.Stop(c.Self())
	}
}

// stopIfDone stops a grain whose instance does not exist or has ended,
// once it has answered and its outbox is out: nothing but a request can
// wake such an instance (a status read never needs the grain), so it
// leaves memory at once instead of after the idle timeout. Requests for
// unknown instances leave nothing in memory either.
func (g *grain) stopIfDone(c actor.Context) {
	if g.state != stopped && (g.inst == nil || g.inst.Status().IsTerminal()) && g.idleNow() {
		c.Stop(c.Self())
	}
}

// abandon answers everyone the grain has not answered as it stops for good
// (fenced, unable to load, shutting down), and drops the inputs it holds.
func (g *grain) abandon(c actor.Context, refusal *spb.Status) {
	for _, w := range g.waiters {
		c.Send(w.pid, refusal)
	}
	for _, h := range g.held {
		c.Send(h.sender, refusal)
	}
	g.waiters, g.held, g.queue = nil, nil, nil
	g.addResults(-g.results)
	g.results = 0
}

// teardown releases what the activation holds when it stops.
func (g *grain) teardown() {
	if g.flight != nil {
		if w, ok := g.flight.work.(*episodeWork); ok {
			g.addResults(-w.results)
			if w.previous != nil {
				w.previous.Close()
			}
		}
		// Its epoch stays open: whether the append was recorded is not
		// known, so the acted-on checkpoint must not pass it.
		g.flight = nil
	}
	g.addResults(-g.results)
	g.results = 0
	g.state = stopped
	g.cancelActivities()
	g.stopLocalTimers()
	if g.inst != nil {
		g.inst.Close()
		g.inst = nil
	}
}

// addResults counts activity results the grain holds unrecorded.
func (g *grain) addResults(n int) {
	if n == 0 {
		return
	}
	g.rt.unrecorded.Add(int64(n))
}

func (g *grain) stopLocalTimers() {
	for id, t := range g.timers {
		t.Stop()
		delete(g.timers, id)
	}
}
