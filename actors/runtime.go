// Package actors runs orchestration instances as protoactor-go grains.
//
// Each instance is a virtual actor of kind "orchestration" whose identity
// is the instance ID. On activation the grain replays the instance's
// stream through the executor and then stays live: every later input (an
// activity result, a raised event, a fired timer) is a Step, with no
// replay. Inputs that arrive while an append is in flight are batched into
// the next episode. Every episode is appended with the expected revision the
// grain last saw; if another activation wrote first, the grain stops at once
// without acting on what it decided (fencing). Decisions are carried out
// only after their append: activities run as child actors under a per-node
// concurrency limit, timers are scheduled on the bus, events are sent, a
// finished child notifies its parent. An idle grain passivates.
//
// Messages that may cross cluster members (Start, Deliver, Wake and their
// answers, in internal/grainpb) are protobuf, so the grain works the same
// when it lives on another member. Messages a grain gets from its own
// children, background work and timers never leave the process and are
// plain Go values.
package actors

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// Kind is the cluster kind of orchestration grains.
const Kind = "orchestration"

// Bus carries messages to grains and schedules durable timers.
type Bus interface {
	Publish(ctx context.Context, topic delivery.Topic, msgs ...delivery.Message) error
	Schedule(ctx context.Context, at time.Time, m delivery.Message) error
	Unschedule(ctx context.Context, id string) error
}

// Grains calls grains through the cluster.
type Grains interface {
	Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error)
}

// Config configures a Runtime.
type Config struct {
	Store         eventstore.Store
	Orchestrators *orchestration.Registry
	Activities    Activities
	Executor      orchestration.Options
	Bus           Bus
	Logger        *slog.Logger
	// Clock gives the episodes' time; time.Now when nil.
	Clock func() time.Time
	// IdleTimeout is how long a grain stays active without messages.
	IdleTimeout time.Duration
	// MaxConcurrentActivities bounds the activities running on this node.
	MaxConcurrentActivities int
	// LocalTimers arms timers due within this long in the active grain as
	// well as on the bus, for precision below the bus's; the timer's ID
	// removes the duplicate.
	LocalTimers time.Duration
}

// Runtime holds what every grain of this node shares.
type Runtime struct {
	store      eventstore.Store
	reg        *orchestration.Registry
	activities Activities
	executor   orchestration.Options
	bus        Bus
	log        *slog.Logger
	clock      func() time.Time
	idle       time.Duration
	localTimer time.Duration

	limiter *limiter
	acted   *actedTracker
	// pool runs the grains' and runners' mailboxes and the appends.
	pool        *pool
	runnerProps *actor.Props
	// draining is set when the engine stops taking work: no new activity
	// starts (it stays pending and runs after the next start).
	draining atomic.Bool
	// unacted is the window of global positions, from the last checkpoint
	// to the end of the log at start-up, whose decisions a crash may have
	// kept from the bus (see SetRecoveryWindow).
	unactedAfter, unactedUpTo uint64
	// unrecorded counts activity results on their way to being appended.
	unrecorded atomic.Int64

	// Bound by Start, once the cluster runs.
	grains Grains
	system *actor.ActorSystem

	// ctx is cancelled when the runtime shuts down: activities and
	// background sends end with it.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewRuntime returns a runtime; Bind it to the cluster before use.
func NewRuntime(cfg Config) *Runtime {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.MaxConcurrentActivities <= 0 {
		cfg.MaxConcurrentActivities = 100
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt := &Runtime{
		store:      cfg.Store,
		reg:        cfg.Orchestrators,
		activities: cfg.Activities,
		executor:   cfg.Executor.WithDefaults(),
		bus:        cfg.Bus,
		log:        cfg.Logger,
		clock:      cfg.Clock,
		idle:       cfg.IdleTimeout,
		localTimer: cfg.LocalTimers,
		acted:      newActedTracker(),
		pool:       newPool(300, 10*time.Second),
		ctx:        ctx,
		cancel:     cancel,
	}
	rt.limiter = newLimiter(cfg.MaxConcurrentActivities, func(pid *actor.PID) {
		rt.system.Root.Send(pid, runActivity{})
	})
	rt.runnerProps = actor.PropsFromProducer(func() actor.Actor { return &runner{rt: rt} }, actor.WithDispatcher(rt.pool))
	return rt
}

// Props returns the props of the orchestration grain kind.
func (rt *Runtime) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &grain{rt: rt} }, actor.WithDispatcher(rt.pool))
}

// Bind connects the runtime to the running cluster.
func (rt *Runtime) Bind(system *actor.ActorSystem, grains Grains) {
	rt.system = system
	rt.grains = grains
}

func (rt *Runtime) now() time.Time { return rt.clock().UTC() }

// SetRecoveryWindow tells the runtime which records a crash may have left
// unacted: those after the checkpoint and up to the end of the log when the
// engine started. Grains that load such records act on them again. Call it
// before grains activate.
func (rt *Runtime) SetRecoveryWindow(after, upTo uint64) {
	rt.unactedAfter, rt.unactedUpTo = after, upTo
}

func (rt *Runtime) mayBeUnacted(position uint64) bool {
	return position > rt.unactedAfter && position <= rt.unactedUpTo
}

// LastPosition returns the global position of the store's last event.
func (rt *Runtime) LastPosition(ctx context.Context) (uint64, error) { return rt.lastPosition(ctx) }

// Drain stops new activities from starting; running ones go on.
func (rt *Runtime) Drain() { rt.draining.Store(true) }

// WaitIdle returns once no activity runs and every append has been acted
// on, or ctx ends.
func (rt *Runtime) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for rt.limiter.running() > 0 || rt.acted.busy() || rt.unrecorded.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%d activities still running: %w", rt.limiter.running(), ctx.Err())
		}
	}
	return nil
}

// Shutdown cancels running activities and background work.
func (rt *Runtime) Shutdown() { rt.cancel() }

// Close releases the runtime's goroutines once the cluster has stopped.
func (rt *Runtime) Close() { rt.pool.close() }

// Checkpoint returns a global position up to which every recorded decision
// has been acted on; see actedTracker.
func (rt *Runtime) Checkpoint(ctx context.Context) (uint64, error) {
	return rt.acted.checkpoint(ctx, rt.lastPosition)
}

func (rt *Runtime) lastPosition(ctx context.Context) (uint64, error) {
	for ev, err := range rt.store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.AllEnd, Limit: 1}) {
		if err != nil {
			return 0, err
		}
		return ev.Position, nil
	}
	return 0, nil
}

// HandleMessage delivers a bus message to its grain. It returns nil once
// the grain has recorded the message (or refused it for good: an unknown or
// finished instance), and an error when delivery should be retried.
func (rt *Runtime) HandleMessage(ctx context.Context, _ delivery.Topic, m delivery.Message) error {
	if m.Kind != Kind {
		rt.log.Warn("dropping a message for an unknown grain kind", "kind", m.Kind, "id", m.ID)
		return nil
	}
	var deliver grainpb.Deliver
	if err := proto.Unmarshal(m.Payload, &deliver); err != nil {
		rt.log.Error("dropping an undecodable message", "id", m.ID, "type", m.Type, "error", err)
		return nil
	}
	_, err := rt.grains.Request(ctx, Kind, m.Identity, &deliver)
	if Retriable(err) {
		return err
	}
	if err != nil {
		rt.log.Debug("message refused by its instance", "instance", m.Identity, "type", m.Type, "reason", err)
	}
	return nil
}

// eventID returns a random event ID. The ID only needs to be unique, so it
// comes from the runtime's fast generator rather than crypto/rand.
func eventID() uuid.UUID {
	var id uuid.UUID
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		id[i] = byte(hi >> (56 - 8*i))
		id[8+i] = byte(lo >> (56 - 8*i))
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

// encodeEvent encodes a history event for a grain message.
func encodeEvent(ev *orchestration.HistoryEvent) *grainpb.Event {
	return &grainpb.Event{Type: history.EventType(ev.Kind), Data: history.Append(nil, ev)}
}

// decodeEvents decodes the events of a grain message.
func decodeEvents(events []*grainpb.Event) ([]orchestration.HistoryEvent, error) {
	var d history.Decoder
	out := make([]orchestration.HistoryEvent, len(events))
	for i, e := range events {
		if err := d.Decode(e.Type, e.Data, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// StartMessage builds the request that starts an instance with es, an
// ExecutionStarted event.
func StartMessage(es orchestration.HistoryEvent) *grainpb.Start {
	return &grainpb.Start{ExecutionStarted: encodeEvent(&es)}
}

// DeliverMessage builds the bus message that delivers events to an
// instance; id identifies it for de-duplication.
func DeliverMessage(id, instanceID, typ string, events ...orchestration.HistoryEvent) (delivery.Message, error) {
	d := &grainpb.Deliver{}
	for i := range events {
		d.Events = append(d.Events, encodeEvent(&events[i]))
	}
	payload, err := proto.Marshal(d)
	if err != nil {
		return delivery.Message{}, err
	}
	return delivery.Message{ID: id, Kind: Kind, Identity: instanceID, Type: typ, Payload: payload}, nil
}

// retry calls f with growing pauses until it succeeds, gives up (stop
// true) or the runtime shuts down.
func (rt *Runtime) retry(what string, f func(ctx context.Context) (stop bool, err error)) {
	pause := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(rt.ctx, 10*time.Second)
		stop, err := f(ctx)
		cancel()
		if err == nil || stop {
			return
		}
		if rt.ctx.Err() != nil {
			return
		}
		rt.log.Warn("retrying", "what", what, "error", err)
		select {
		case <-time.After(pause):
		case <-rt.ctx.Done():
			return
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// A grain refuses a request by answering with a google.rpc.Status, which
// the cluster returns to the caller as an error carrying its code:
//
//	NotFound            the instance does not exist
//	AlreadyExists       the instance runs; it cannot be started again
//	FailedPrecondition  the instance has completed, failed or been terminated
//	InvalidArgument     the request is invalid (an unknown orchestrator, say)
//	Unavailable         the activation cannot serve it now; retry
func errorReply(code codes.Code, format string, args ...any) *spb.Status {
	return status.Newf(code, format, args...).Proto()
}

// Refused reports whether err is a grain's answer refusing a request, as
// opposed to a failure to reach the grain.
func Refused(err error) bool {
	_, ok := status.FromError(err)
	return ok && err != nil
}

// Retriable reports whether a call to a grain failed in a way that a retry
// may cure: the grain was unavailable, or the call did not reach it. A
// refusal for good (any other code) and success are not.
func Retriable(err error) bool {
	switch status.Code(err) {
	case codes.OK, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.InvalidArgument:
		return false
	}
	return true
}
