package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v5"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/grainpb"
)

// grainState is where a grain is in its lifecycle. Every kind of grain
// (orchestration, entity) goes through the same states:
//
//	unloaded ──Start──▶ starting ──appended──▶ ready ◀──appended, nothing queued──┐
//	   │                   │                     │                               │
//	   │                   └─the stream existed: │ inputs                        │
//	   │                     load, Start again   ▼                               │
//	   └──any other request: load──────────▶ ready ──▶ appending ────────────────┘
//	                                                   (a failed append is tried
//	                                                    again until the store takes it)
//
//	any state ──fenced, cannot load, shutting down──▶ stopped
//
// unloaded: activated, the stream not read yet. An orchestration's Start
// appends at once, expecting no stream (most starts are of new instances);
// anything else loads the stream first.
//
// starting: that optimistic Start's append is in flight and the grain does
// not know yet whether the instance it made up is the one that exists, so
// every other request waits until the append settles (orchestrations only).
//
// ready: loaded (the instance may not exist), no append in flight. Inputs
// are handled at once.
//
// appending: an append is in flight; inputs queue and are handled together
// after it.
//
// stopped: the grain will not serve again. Fenced by another activation's
// write, unable to read its stream, or shutting down. It answers every
// request Unavailable, so the cluster retries against a fresh activation,
// and acts on nothing.
type grainState uint8

const (
	unloaded grainState = iota
	starting
	ready
	appending
	stopped
)

var stateNames = [...]string{"unloaded", "starting", "ready", "appending", "stopped"}

func (s grainState) String() string { return stateNames[s] }

// core is what every event-sourced grain shares: its lifecycle state, the
// revision it last saw of its stream (the single writer's fence), the append
// in flight and its retries, and the outbox that carries out what was
// recorded. Each kind of grain embeds a core and adds what is its own
// through grainHooks.
type core struct {
	rt       *Runtime
	identity string
	stream   string
	state    grainState
	// revision is the stream's last revision (NoRevision for no stream)
	// and position the global position of the grain's last known append.
	revision int64
	position uint64
	// flight is the append in flight (starting, appending).
	flight *appendOp
	outbox outbox
	hooks  grainHooks
}

// grainHooks is what a kind of grain adds to the core.
type grainHooks interface {
	// appended acts on a recorded append.
	appended(c actor.Context, op *appendOp)
	// conflicted handles an append another writer beat: the stream has a
	// revision the grain did not expect.
	conflicted(c actor.Context, op *appendOp)
	// refused handles an append the store refused for good (too large).
	refused(c actor.Context, op *appendOp)
	// abandon answers, with refusal, everyone the grain has not answered,
	// as it stops for good.
	abandon(c actor.Context, refusal *spb.Status)
}

// appendOp is one append of a grain: what it asks for, and, when it comes
// back to the grain as a message, the outcome of one attempt.
type appendOp struct {
	// data and expected are fixed by the first attempt: a retry sends the
	// same event IDs with the same expected revision, which the store
	// takes as the same append (idempotent) if an earlier attempt was
	// recorded after all.
	data     []eventstore.EventData
	expected eventstore.ExpectedRevision
	// waiters are answered once the append is recorded.
	waiters []*actor.PID
	epoch   uint64
	// retries paces the attempts after a failure.
	retries *backoff.ExponentialBackOff
	// work is what the kind of grain appended, for its hooks.
	work any

	result eventstore.AppendResult
	err    error
}

// retryAppend asks the grain to try its append in flight again.
type retryAppend struct{ op *appendOp }

func (k *core) init(rt *Runtime, identity, stream string, hooks grainHooks) {
	k.rt, k.identity, k.stream, k.hooks = rt, identity, stream, hooks
	k.state = unloaded
	k.revision = eventstore.NoRevision
}

// append appends op.data in the background, expecting the revision the
// grain last saw, and counts it for the acted-on checkpoint; the grain
// learns the outcome from appendResult. starting marks an optimistic Start.
func (k *core) append(c actor.Context, op *appendOp, optimistic bool) {
	op.expected = eventstore.NoStream
	if k.revision != eventstore.NoRevision {
		op.expected = eventstore.Exact(uint64(k.revision))
	}
	op.epoch = k.rt.recovery.Begin()
	k.flight = op
	k.state = appending
	if optimistic {
		k.state = starting
	}
	k.attempt(c, op)
}

// attempt runs one try of the append in flight on the pool.
func (k *core) attempt(c actor.Context, op *appendOp) {
	self, stream, rt := c.Self(), k.stream, k.rt
	rt.pool.Schedule(func() {
		ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
		defer cancel()
		op.result, op.err = rt.store.Append(ctx, stream, op.expected, op.data...)
		rt.system.Root.Send(self, op)
	})
}

// appendResult handles the outcome of an attempt: a recorded append goes to
// the kind to act on; a failed one is tried again, or goes to the kind
// (conflict, refusal), or stops the grain (shutting down).
func (k *core) appendResult(c actor.Context, op *appendOp) {
	if k.flight != op || (k.state != starting && k.state != appending) {
		return // the grain stopped meanwhile
	}
	if op.err == nil {
		k.flight = nil
		k.state = ready
		k.revision, k.position = int64(op.result.Revision), op.result.Position
		k.hooks.appended(c, op)
		return
	}
	switch {
	case errors.Is(op.err, eventstore.ErrWrongExpectedRevision):
		k.hooks.conflicted(c, op)
	case permanentAppendError(op.err):
		k.rt.recovery.End(op.epoch) // not recorded: nothing to act on
		k.flight = nil
		k.hooks.refused(c, op)
	case k.rt.ctx.Err() != nil || errors.Is(op.err, eventstore.ErrClosed):
		k.rt.log.Warn("appending failed; the activation stops", "grain", k.identity, "error", op.err)
		k.stopNow(c, op.err)
	default:
		if op.retries == nil {
			op.retries = backoff.NewExponentialBackOff()
			op.retries.InitialInterval, op.retries.MaxInterval = 20*time.Millisecond, 5*time.Second
		}
		wait := op.retries.NextBackOff()
		k.rt.log.Warn("appending failed; trying again", "grain", k.identity, "in", wait.Round(time.Millisecond), "error", op.err)
		self, rt := c.Self(), k.rt
		time.AfterFunc(wait, func() { rt.system.Root.Send(self, retryAppend{op}) })
	}
}

// retry tries the append in flight again, unless the grain moved on.
func (k *core) retry(c actor.Context, op *appendOp) {
	if k.state == starting || k.state == appending {
		k.attempt(c, op)
	}
}

// fenced stops the grain after another activation wrote its stream: the
// same event IDs would have been taken as a retry, so this append was not
// recorded, and nothing it decided may be acted on.
func (k *core) fenced(c actor.Context, op *appendOp) {
	k.rt.log.Warn("another activation wrote first; stopping without acting", "grain", k.identity, "error", op.err)
	k.rt.recovery.End(op.epoch)
	k.flight = nil
	k.stopNow(c, op.err)
}

// stopNow stops the grain for good without acting on anything it holds:
// everyone waiting for an answer is told to retry elsewhere.
func (k *core) stopNow(c actor.Context, reason error) {
	if k.state == stopped {
		return
	}
	k.state = stopped
	k.hooks.abandon(c, errorReply(codes.Unavailable, "%s: %v", k.identity, reason))
	c.Stop(c.Self())
}

// refuseStopped answers a request to a stopped grain.
func (k *core) refuseStopped(c actor.Context, sender *actor.PID) {
	c.Send(sender, errorReply(codes.Unavailable, "the activation of %s has stopped", k.identity))
}

// acknowledge answers the waiters of inputs that are recorded.
func (k *core) acknowledge(c actor.Context, waiters []*actor.PID) {
	if len(waiters) > 0 {
		k.reply(c, waiters, &grainpb.Ack{Position: k.position})
	}
}

func (k *core) reply(c actor.Context, to []*actor.PID, msg any) {
	for _, pid := range to {
		if pid != nil {
			c.Send(pid, msg)
		}
	}
}

// outbox holds the acts of recorded appends that go out through the bus
// and the cluster (timers, messages to other grains, truncations). One job
// at a time carries them out, batch after batch, so what one grain sends
// to another arrives in the order it was sent.
type outbox struct {
	batches []outboxBatch
	// sending is set while a job carries batches out.
	sending bool
}

func (o *outbox) busy() bool { return o.sending || len(o.batches) > 0 }

// outboxBatch is the acts of one append; epoch ends when they are out.
type outboxBatch struct {
	epoch          uint64
	timers         []scheduled
	sends          []send
	truncateBefore uint64
	// erase makes the truncation a must, retried until the store takes it
	// (a purge, a removal: the data is to go), where otherwise a failed one
	// only leaves the stream longer to load.
	erase bool
	// redone marks the acts a loading grain carries out again for records
	// a crash may have left unacted.
	redone bool
}

func (b *outboxBatch) empty() bool {
	return len(b.timers) == 0 && len(b.sends) == 0 && b.truncateBefore == 0 && !b.redone
}

// outboxDone tells the grain that its outbox job has finished.
type outboxDone struct{}

// scheduled is a durable timer to schedule on the bus.
type scheduled struct {
	at  time.Time
	msg delivery.Message
}

// send is a message for another grain, delivered through the cluster, and
// the bus message a refusal keeps as a dead letter (which a redrive
// delivers through the bus).
type send struct {
	kind, identity string
	request        proto.Message
	dead           delivery.Message
}

// post queues a batch of acts; a batch with nothing to do ends its epoch at
// once.
func (k *core) post(c actor.Context, b outboxBatch) {
	if b.empty() {
		k.rt.recovery.End(b.epoch)
		return
	}
	k.outbox.batches = append(k.outbox.batches, b)
	k.flushOutbox(c)
}

// flushOutbox starts a job for the queued batches unless one runs.
func (k *core) flushOutbox(c actor.Context) {
	if k.outbox.sending || len(k.outbox.batches) == 0 {
		return
	}
	batches := k.outbox.batches
	k.outbox.batches, k.outbox.sending = nil, true
	self, rt, id, stream := c.Self(), k.rt, k.identity, k.stream
	rt.pool.Schedule(func() {
		for _, b := range batches {
			if !rt.carryOut(stream, b) {
				return // shutting down: the epochs stay open, a restart acts again
			}
			if b.redone {
				rt.recovery.Redone(id)
			}
			rt.recovery.End(b.epoch)
		}
		rt.system.Root.Send(self, outboxDone{})
	})
}

// outboxFinished takes the end of an outbox job and starts the next.
func (k *core) outboxFinished(c actor.Context) {
	k.outbox.sending = false
	if k.state != stopped {
		k.flushOutbox(c)
	}
}

// carryOut schedules a batch's timers, delivers its sends and truncates,
// retrying each until it is done; it reports false if the runtime shut down
// first.
func (rt *Runtime) carryOut(stream string, b outboxBatch) bool {
	for _, t := range b.timers {
		rt.retry("schedule timer "+t.msg.ID, func(ctx context.Context) error {
			return rt.bus.Schedule(ctx, t.at, t.msg)
		})
	}
	for _, s := range b.sends {
		rt.deliverSend(s)
	}
	switch {
	case b.truncateBefore == 0 || rt.ctx.Err() != nil:
	case b.erase:
		rt.retry("truncate "+stream, func(ctx context.Context) error {
			err := rt.store.TruncateBefore(ctx, stream, b.truncateBefore)
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return nil // gone already
			}
			return err
		})
	default:
		rt.truncate(stream, b.truncateBefore)
	}
	return rt.ctx.Err() == nil
}

// deliverSend hands a message to its grain through the cluster, retrying
// while the grain cannot be reached. A grain that refuses it (its instance
// does not exist, or has ended) leaves it as a dead letter with the reason,
// where an operator sees it and may redrive it.
func (rt *Runtime) deliverSend(s send) {
	rt.retry(fmt.Sprintf("send to %s %s", s.kind, s.identity), func(ctx context.Context) error {
		_, err := rt.grains.Request(ctx, s.kind, s.identity, s.request)
		if err == nil || Retriable(err) {
			return err
		}
		reason := fmt.Sprintf("refused by %s %q: %s", s.kind, s.identity, status.Convert(err).Message())
		if err := rt.bus.DeadLetter(ctx, delivery.Events, s.dead, reason); err != nil {
			return err
		}
		rt.log.Warn("a message was refused by its grain; it is kept as a dead letter", "to", s.identity, "id", s.dead.ID, "reason", reason)
		return nil
	})
}

// truncate drops a stream's records before revision, which no load needs
// any more (the generations that have ended, the batches before a
// snapshot).
func (rt *Runtime) truncate(stream string, revision uint64) {
	ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
	defer cancel()
	if err := rt.store.TruncateBefore(ctx, stream, revision); err != nil {
		// A longer stream is only slower to load; the next load truncates
		// again.
		rt.log.Warn("truncating a stream failed", "stream", stream, "error", err)
	}
}
