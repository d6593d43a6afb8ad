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
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/orchestration"
)

// EntityKind is the cluster kind of entity grains; their identity is the
// entity ID's "name@key".
const EntityKind = "entity"

// checkpointEvery is how many batches an entity appends between
// checkpoints (an event-sourced kind also writes one when its snapshot is
// due).
const checkpointEvery = 64

// entityGrain is one entity, active on this node: a core (the lifecycle,
// the fenced appends, the outbox) and what an entity adds: its executor,
// the requests it recognises, its lock and the queue behind it.
//
// Requests that arrive while an append is in flight are handled together
// as the next batch: every operation runs (one at a time, in arrival
// order), and the batch's outcome is one append. Operations from anyone but
// the holder of the entity's lock wait in its queue, which is recorded
// too; releasing the lock runs them.
type entityGrain struct {
	core
	id   entities.ID
	kind *entities.Kind
	// refusal is set when the grain cannot serve its identity at all (no
	// such kind, a malformed ID).
	refusal *spb.Status

	ent    *entities.Entity
	window *entitylog.Window
	queue  []*entitylog.Queued
	lock   *entitylog.Lock
	// sinceCheckpoint counts batches, and events domain events, since the
	// last checkpoint.
	sinceCheckpoint, events int

	// incoming are the requests of the next batch.
	incoming []incomingRequest
	// parked are the callers of operations that wait in the queue, by
	// request ID: they are answered when it runs.
	parked map[string][]*actor.PID
}

// incomingRequest is a request and who asked.
type incomingRequest struct {
	req    *grainpb.EntityRequest
	sender *actor.PID
}

// batchWork is what an entity grain appends: one batch, and who to answer
// with what once it is recorded.
type batchWork struct {
	batch *entitylog.Batch
	acks  []entityAck
}

// entityAck is an answer due once a batch is recorded.
type entityAck struct {
	pid     *actor.PID
	results []*grainpb.EntityResult
}

// EntityProps returns the props of the entity grain kind.
func (rt *Runtime) EntityProps() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &entityGrain{core: core{rt: rt}} }, actor.WithDispatcher(rt.pool))
}

func (g *entityGrain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *cluster.ClusterInit:
		g.activate(c, m.Identity.Identity)
	case *grainpb.EntityRequest:
		g.request(c, m, c.Sender())
	case *grainpb.Wake:
		g.request(c, &grainpb.EntityRequest{}, c.Sender())
	case *appendOp:
		g.appendResult(c, m)
	case retryAppend:
		g.retry(c, m.op)
	case outboxDone:
		g.outboxFinished(c)
	case *actor.ReceiveTimeout:
		if g.state == unloaded || (g.state == ready && len(g.incoming) == 0 && !g.outbox.busy() && len(g.parked) == 0) {
			c.Stop(c.Self())
		}
	case *actor.Stopping:
		g.state = stopped
	}
}

func (g *entityGrain) activate(c actor.Context, identity string) {
	// Recovery and the index know an entity as "@" and its ID, as Durable
	// Functions does: no orchestration ID starts with '@'.
	g.init(g.rt, "@"+identity, "", g)
	g.parked = make(map[string][]*actor.PID)
	c.SetReceiveTimeout(g.rt.idle)
	id, err := entities.ParseID(identity)
	if err != nil {
		g.refusal = errorReply(codes.InvalidArgument, "%v", err)
		return
	}
	kind, ok := g.rt.entities.Entity(id.Name)
	if !ok {
		g.refusal = errorReply(codes.InvalidArgument, "no entity kind %q is registered", id.Name)
		return
	}
	g.id, g.kind, g.stream = id, kind, entitylog.StreamName(id)
}

// request takes a request into the next batch.
func (g *entityGrain) request(c actor.Context, req *grainpb.EntityRequest, sender *actor.PID) {
	switch {
	case g.refusal != nil:
		c.Send(sender, g.refusal)
		return
	case g.state == stopped:
		g.refuseStopped(c, sender)
		return
	case g.state == unloaded && !g.load(c, sender):
		return
	}
	g.incoming = append(g.incoming, incomingRequest{req: req, sender: sender})
	g.process(c)
}

// empty reports whether the entity holds nothing: no state, no lock, no
// queue, nothing under way.
func (g *entityGrain) empty() bool {
	_, has := g.ent.State()
	return !has && g.lock == nil && len(g.queue) == 0 && len(g.parked) == 0 && !g.outbox.busy()
}

// clean removes an empty entity: a last batch marked removed (so the index
// forgets it, also when rebuilt from a log that keeps deleted events), then
// the deletion of its stream. An entity that is not empty stays.
func (g *entityGrain) clean(c actor.Context, sender *actor.PID) {
	if g.revision == eventstore.NoRevision || !g.empty() {
		c.Send(sender, &grainpb.EntityAck{Position: g.position})
		return
	}
	record, err := entitylog.BatchData(&entitylog.Batch{Removed: true}, eventID())
	if err != nil {
		c.Send(sender, errorReply(codes.Internal, "entity %s: %v", g.id, err))
		return
	}
	g.append(c, &appendOp{data: []eventstore.EventData{record}, work: &batchWork{batch: &entitylog.Batch{Removed: true},
		acks: []entityAck{{pid: sender}}}}, false)
}

// load reads the entity from its stream and acts again on what a crash may
// have left unacted. When the stream cannot be read it answers sender and
// stops.
func (g *entityGrain) load(c actor.Context, sender *actor.PID) bool {
	ctx, cancel := context.WithTimeout(g.rt.ctx, 30*time.Second)
	defer cancel()
	l, err := entitylog.Load(ctx, g.rt.store, g.id, g.kind, g.rt.entityConverter, g.rt.maxEntityState)
	if err != nil {
		code := codes.Unavailable
		if errors.Is(err, entitylog.ErrCorrupt) || errors.Is(err, entitylog.ErrUnreadable) {
			code = codes.FailedPrecondition
			g.rt.log.Error("entity cannot be loaded", "entity", g.id, "error", err)
		} else {
			g.rt.log.Warn("entity cannot be loaded now", "entity", g.id, "error", err)
		}
		c.Send(sender, errorReply(code, "entity %s cannot be loaded: %v", g.id, err))
		g.stopNow(c, err)
		return false
	}
	g.ent, g.window, g.queue, g.lock = l.Entity, l.Window, l.Queue, l.Lock
	g.revision, g.position = l.Revision, l.Position
	g.sinceCheckpoint, g.events = l.SinceCheckpoint, l.EventsSinceSnapshot
	g.state = ready
	g.redo(c, l.Batches)
	return true
}

// redo sends again the messages of the batches a crash may have left
// unacted (see Recovery.Unacted).
func (g *entityGrain) redo(c actor.Context, batches []entitylog.Stored) {
	after, upTo := g.rt.recovery.Unacted(g.identity)
	b := outboxBatch{}
	for _, s := range batches {
		if s.Position > after && s.Position <= upTo {
			b.redone = true
			g.outgoing(&b, s.Batch.Out)
		}
	}
	if b.empty() {
		return
	}
	b.epoch = g.rt.recovery.Begin()
	g.post(c, b)
}

// process runs the incoming requests as one batch and appends it, unless
// an append is in flight: they then wait and run together after it.
func (g *entityGrain) process(c actor.Context) {
	if g.state != ready || len(g.incoming) == 0 {
		return
	}
	if in := g.incoming[0]; in.req.Clean {
		g.incoming = g.incoming[1:]
		g.clean(c, in.sender)
		g.process(c)
		return
	}
	incoming, rest := g.incoming, []incomingRequest(nil)
	for n, in := range incoming {
		if in.req.Clean { // the next batch starts with it
			incoming, rest = incoming[:n], incoming[n:]
			break
		}
	}
	g.incoming = rest
	now := g.rt.now()
	b := &entitylog.Batch{}
	w := &batchWork{batch: b}
	var events []eventstore.EventData
	for _, in := range incoming {
		ack := entityAck{pid: in.sender}
		answerNow := true
		for _, op := range in.req.Operations {
			res, queued := g.operation(now, op, b, &events)
			if queued && op.WantResult {
				g.parked[op.RequestId] = append(g.parked[op.RequestId], in.sender)
				answerNow = false
			}
			if res != nil && op.WantResult {
				ack.results = append(ack.results, res)
			}
		}
		if in.req.Lock != nil {
			g.lockRequest(in.req.Lock, b)
		}
		if in.req.Unlock != "" {
			g.unlock(now, in.req.Unlock, b, w, &events)
		}
		if answerNow {
			w.acks = append(w.acks, ack)
		}
	}
	if len(b.Ran) == 0 && len(b.Queued) == 0 && len(b.Requests) == 0 && b.Dequeued == 0 {
		// Nothing new to record (repetitions, a Wake): answer at once.
		for _, a := range w.acks {
			c.Send(a.pid, &grainpb.EntityAck{Position: g.position, Results: a.results})
		}
		g.stopIfEmpty(c)
		return
	}
	g.appendBatch(c, w, events)
}

// operation runs one operation, or queues it behind another's lock, or
// recognises it as a repetition. It returns the outcome for a caller (nil
// while queued) and whether the operation waits in the queue.
func (g *entityGrain) operation(now time.Time, op *grainpb.EntityOperation, b *entitylog.Batch, events *[]eventstore.EventData) (*grainpb.EntityResult, bool) {
	if g.window.Seen(op.RequestId) {
		if r, ok := g.window.Result(op.RequestId); ok {
			return resultOf(r), false
		}
		if g.isQueued(op.RequestId) {
			return nil, true
		}
		return &grainpb.EntityResult{RequestId: op.RequestId, Failed: true, ErrorType: "EntityRequestRepeated",
			Error: "the operation ran already and its result is no longer kept"}, false
	}
	g.window.Add(op.RequestId)
	if g.lock != nil && op.Lock != g.lock.Id {
		q := &entitylog.Queued{Operation: op}
		b.Queued = append(b.Queued, q)
		g.queue = append(g.queue, q)
		return nil, true
	}
	return g.run(now, op, b, events), false
}

// run runs an operation and records its outcome in the batch: the result,
// the domain events, the messages it sends.
func (g *entityGrain) run(now time.Time, op *grainpb.EntityOperation, b *entitylog.Batch, events *[]eventstore.EventData) *grainpb.EntityResult {
	out := g.ent.Run(now, entities.Operation{RequestID: op.RequestId, Name: op.Name, Input: op.Input})
	ran := &entitylog.Ran{RequestId: op.RequestId, Name: op.Name, Call: op.WantResult || op.Caller != nil, Result: out.Result}
	if out.Failure != nil {
		ran.Failed, ran.ErrorType, ran.Error = true, out.Failure.ErrorType, out.Failure.Message
		if !ran.Call {
			g.rt.log.Warn("an entity operation signalled to it failed", "entity", g.id, "operation", op.Name, "error", out.Failure.Message)
		}
	}
	if ran.Call {
		g.window.Keep(ran)
	} else {
		ran.Result = nil
	}
	b.Ran = append(b.Ran, ran)
	for _, ev := range out.Events {
		*events = append(*events, eventstore.EventData{ID: eventID(), Type: ev.Type, ContentType: eventstore.ContentTypeJSON, Data: ev.Data,
			Metadata: fmt.Appendf(nil, `{"operation":%q,"requestId":%q}`, op.Name, op.RequestId)})
	}
	for _, s := range out.Signals {
		req := &grainpb.EntityRequest{Operations: []*grainpb.EntityOperation{{RequestId: s.Operation.RequestID, Name: s.Operation.Name, Input: s.Operation.Input}}}
		b.Out = append(b.Out, outgoingRequest(EntityKind, s.Target.String(), "EntityRequest", s.Operation.RequestID, s.At, req))
	}
	for _, s := range out.Starts {
		es := orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: s.Orchestrator, InstanceID: s.InstanceID, Input: s.Input, RequestID: s.RequestID}
		b.Out = append(b.Out, outgoingRequest(Kind, s.InstanceID, "Start", s.RequestID, time.Time{}, StartMessage(es)))
	}
	if op.Caller != nil {
		ev := orchestration.HistoryEvent{Kind: orchestration.EntityOperationCompleted, EventID: op.Caller.EventId, Result: out.Result, Generation: op.Caller.Generation}
		if out.Failure != nil {
			ev = orchestration.HistoryEvent{Kind: orchestration.EntityOperationFailed, EventID: op.Caller.EventId, Generation: op.Caller.Generation,
				Failure: &orchestration.FailureDetails{ErrorType: out.Failure.ErrorType, Message: out.Failure.Message, StackTrace: out.Failure.StackTrace}}
		}
		b.Out = append(b.Out, outgoingRequest(Kind, op.Caller.InstanceId, "Deliver", "reply:"+op.RequestId, time.Time{}, DeliverMessage(ev)))
	}
	return resultOf(ran)
}

// lockRequest grants a critical section the entity's lock, and passes the
// request on to the section's next entity (or tells the orchestration that
// the last is locked); or queues it while another section holds the lock.
func (g *entityGrain) lockRequest(lr *grainpb.LockRequest, b *entitylog.Batch) {
	id := entitylog.LockRequestID(lr.Lock, lr.Index)
	if g.window.Seen(id) || g.window.Seen(unlockID(lr.Lock)) {
		return // a repetition, or a section its orchestration released already
	}
	g.window.Add(id)
	if g.lock != nil && g.lock.Id != lr.Lock {
		q := &entitylog.Queued{Lock: lr}
		b.Queued = append(b.Queued, q)
		g.queue = append(g.queue, q)
		return
	}
	b.Requests = append(b.Requests, id)
	g.grant(lr, b)
}

// grant gives the lock to a section and passes the request on.
func (g *entityGrain) grant(lr *grainpb.LockRequest, b *entitylog.Batch) {
	g.lock = &entitylog.Lock{Id: lr.Lock, InstanceId: lr.Caller.GetInstanceId()}
	if next := lr.Index + 1; int(next) < len(lr.Entities) {
		fwd := proto.Clone(lr).(*grainpb.LockRequest)
		fwd.Index = next
		b.Out = append(b.Out, outgoingRequest(EntityKind, lr.Entities[next], "EntityRequest",
			entitylog.LockRequestID(lr.Lock, next), time.Time{}, &grainpb.EntityRequest{Lock: fwd}))
		return
	}
	ev := orchestration.HistoryEvent{Kind: orchestration.EntityLockGranted, EventID: lr.Caller.GetEventId(), Generation: lr.Caller.GetGeneration()}
	b.Out = append(b.Out, outgoingRequest(Kind, lr.Caller.GetInstanceId(), "Deliver", "granted:"+lr.Lock, time.Time{}, DeliverMessage(ev)))
}

// unlock ends a critical section, and runs the requests that waited for
// it: operations, until a queued lock request takes the lock. A section
// released before the entity granted it (its orchestration ended while
// locking) is remembered, so its lock request, queued or still on its way,
// is dropped.
func (g *entityGrain) unlock(now time.Time, lockID string, b *entitylog.Batch, w *batchWork, events *[]eventstore.EventData) {
	id := unlockID(lockID)
	if g.window.Seen(id) {
		return
	}
	g.window.Add(id)
	b.Requests = append(b.Requests, id)
	if g.lock == nil || g.lock.Id != lockID {
		return
	}
	g.lock = nil
	for len(g.queue) > 0 && g.lock == nil {
		q := g.queue[0]
		g.queue = g.queue[1:]
		b.Dequeued++
		if q.Lock != nil {
			if !g.window.Seen(unlockID(q.Lock.Lock)) {
				g.grant(q.Lock, b)
			}
			continue
		}
		res := g.run(now, q.Operation, b, events)
		for _, pid := range g.parked[q.Operation.RequestId] {
			w.acks = append(w.acks, entityAck{pid: pid, results: []*grainpb.EntityResult{res}})
		}
		delete(g.parked, q.Operation.RequestId)
	}
}

func unlockID(lockID string) string { return "unlock:" + lockID }

func (g *entityGrain) isQueued(requestID string) bool {
	for _, q := range g.queue {
		if q.Operation != nil && q.Operation.RequestId == requestID {
			return true
		}
	}
	return false
}

// appendBatch appends a batch: its domain events, then the batch record
// with the state (function style) and, when due, a checkpoint.
func (g *entityGrain) appendBatch(c actor.Context, w *batchWork, events []eventstore.EventData) {
	b := w.batch
	if g.lock != nil {
		b.Lock = g.lock
	}
	if g.kind.EventSourced() {
		_, b.HasState = g.ent.State()
	} else {
		b.State, b.HasState = g.ent.State()
	}
	g.events += len(events)
	g.sinceCheckpoint++
	if g.sinceCheckpoint >= checkpointEvery || (g.kind.EventSourced() && g.events >= g.kind.SnapshotEvery()) {
		cp := &entitylog.Checkpoint{Recent: g.window.Fingerprints(), Queue: g.queue, Version: int32(g.kind.Version())}
		if g.kind.EventSourced() {
			cp.Snapshot, cp.HasSnapshot = g.ent.State()
		}
		b.Checkpoint = cp
		g.sinceCheckpoint, g.events = 0, 0
	}
	record, err := entitylog.BatchData(b, eventID())
	if err != nil {
		g.rt.log.Error("encoding an entity batch failed", "entity", g.id, "error", err)
		g.stopNow(c, err)
		return
	}
	g.append(c, &appendOp{data: append(events, record), work: w}, false)
}

// appended answers the batch's requests and sends its messages.
func (g *entityGrain) appended(c actor.Context, op *appendOp) {
	w := op.work.(*batchWork)
	if w.batch.Removed {
		g.removed(c, op, w)
		return
	}
	b := outboxBatch{epoch: op.epoch}
	g.outgoing(&b, w.batch.Out)
	if w.batch.Checkpoint != nil && !g.kind.EventSourced() {
		// The checkpoint and the state in its batch hold all a load needs.
		b.truncateBefore = op.result.Revision
	}
	g.post(c, b)
	for _, a := range w.acks {
		c.Send(a.pid, &grainpb.EntityAck{Position: g.position, Results: a.results})
	}
	g.process(c)
	g.stopIfEmpty(c)
}

// removed truncates the stream of an entity whose removal is recorded
// (through the outbox) and stops the grain; the next request finds no
// entity. The Removed record stays, so every reader of the global log (the
// index, a rebuild of it) learns of the removal, and a load stops at it
// when a crash kept the truncation from happening.
func (g *entityGrain) removed(c actor.Context, op *appendOp, w *batchWork) {
	g.post(c, outboxBatch{epoch: op.epoch, truncateBefore: op.result.Revision, erase: true})
	for _, a := range w.acks {
		c.Send(a.pid, &grainpb.EntityAck{Position: g.position, Removed: true})
	}
	g.stopNow(c, errors.New("removed"))
}

// outgoing adds a batch's messages to the outbox: through the cluster, or
// on a durable timer when they are due later.
func (g *entityGrain) outgoing(b *outboxBatch, out []*entitylog.Outgoing) {
	for _, o := range out {
		dead := delivery.Message{ID: o.Id, Kind: o.Kind, Identity: o.Identity, Type: o.Type, Payload: o.Request}
		if o.At != 0 {
			b.timers = append(b.timers, scheduled{at: time.Unix(0, o.At), msg: dead})
			continue
		}
		req, err := decodeRequest(o.Type, o.Request)
		if err != nil {
			g.rt.log.Error("an entity's outgoing message cannot be decoded", "entity", g.id, "error", err)
			continue
		}
		b.sends = append(b.sends, send{kind: o.Kind, identity: o.Identity, request: req, dead: dead})
	}
}

// conflicted stops the grain: another activation writes this entity.
func (g *entityGrain) conflicted(c actor.Context, op *appendOp) { g.fenced(c, op) }

// refused handles a batch the store refused for good (its events too
// large): the entity is read back from its stream, where none of the
// batch's outcomes are, and the batch's callers hear why.
func (g *entityGrain) refused(c actor.Context, op *appendOp) {
	w := op.work.(*batchWork)
	g.rt.log.Error("an entity batch cannot be recorded; its operations are dropped", "entity", g.id, "error", op.err)
	refusal := errorReply(codes.FailedPrecondition, "entity %s: the event store refused the batch: %v", g.id, op.err)
	for _, a := range w.acks {
		c.Send(a.pid, refusal)
	}
	g.state = unloaded
	if g.load(c, nil) {
		g.process(c)
	}
}

// abandon answers everyone waiting as the grain stops for good.
func (g *entityGrain) abandon(c actor.Context, refusal *spb.Status) {
	for _, in := range g.incoming {
		c.Send(in.sender, refusal)
	}
	if g.flight != nil {
		for _, a := range g.flight.work.(*batchWork).acks {
			c.Send(a.pid, refusal)
		}
	}
	for _, pids := range g.parked {
		for _, pid := range pids {
			c.Send(pid, refusal)
		}
	}
	g.incoming, g.parked = nil, nil
}

// stopIfEmpty lets an entity that has nothing go at once: a request that
// found no state and left none keeps nothing in memory.
func (g *entityGrain) stopIfEmpty(c actor.Context) {
	if g.state != ready || len(g.incoming) > 0 || g.outbox.busy() || len(g.parked) > 0 || g.lock != nil || len(g.queue) > 0 {
		return
	}
	if _, has := g.ent.State(); !has && g.revision == eventstore.NoRevision {
		c.Stop(c.Self())
	}
}

// outgoingRequest builds an outgoing message.
func outgoingRequest(kind, identity, typ, id string, at time.Time, req proto.Message) *entitylog.Outgoing {
	data, _ := proto.Marshal(req) // grain messages always encode
	o := &entitylog.Outgoing{Kind: kind, Identity: identity, Type: typ, Request: data, Id: id}
	if !at.IsZero() {
		o.At = at.UnixNano()
	}
	return o
}

// decodeRequest decodes an outgoing message's request by its type.
func decodeRequest(typ string, data []byte) (proto.Message, error) {
	var m proto.Message
	switch typ {
	case "Start":
		m = &grainpb.Start{}
	case "Deliver":
		m = &grainpb.Deliver{}
	case "EntityRequest":
		m = &grainpb.EntityRequest{}
	default:
		return nil, fmt.Errorf("unknown message type %q", typ)
	}
	return m, proto.Unmarshal(data, m)
}

func resultOf(r *entitylog.Ran) *grainpb.EntityResult {
	return &grainpb.EntityResult{RequestId: r.RequestId, Result: r.Result, Failed: r.Failed, ErrorType: r.ErrorType, Error: r.Error}
}
