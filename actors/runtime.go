// Package actors runs orchestration instances and entities as protoactor-go
// grains. Both kinds share one core (core.go): the lifecycle state machine,
// the single writer's fenced appends, retried with the same IDs until the
// store takes them, and the outbox that carries out what was recorded. Each
// kind adds only what is its own.
//
// An entity is a virtual actor of kind "entity" whose identity is its ID
// ("name@key", see entity.go): requests that arrive while an append is in
// flight run as one batch, each operation a transaction, and the batch's
// outcome is one append; operations from anyone but the holder of its lock
// wait in a queue that is recorded too.
//
// Each orchestration instance is a virtual actor of kind "orchestration"
// whose identity is the instance ID. On activation the grain replays the instance's
// stream through the executor and then stays live: every later input (an
// activity result, a raised event, a fired timer) is a Step, with no
// replay. Inputs that arrive while an append is in flight are batched into
// the next episode. Every episode is appended with the expected revision the
// grain last saw; if another activation wrote first, the grain stops at once
// without acting on what it decided (fencing). An append that fails for any
// other reason is retried with the same event IDs, which the store makes
// idempotent, until it succeeds; one the store refuses for good (too large)
// fails the instance with the reason instead. Decisions are carried out only
// after their append: activities run as child actors under a per-node
// concurrency limit, sub-orchestrations are started through the cluster,
// and timers, sent events and the truncation of ended generations go through
// the grain's outbox, in order. An idle grain passivates.
//
// A grain's lifecycle is an explicit state machine (see grainState):
// unloaded, starting, ready, appending, stopped. Recovery (package recovery)
// decides which grains must be woken after a crash or an error; a grain
// asks it only which of its records a crash may have left unacted.
//
// Messages that may cross cluster members (Start, Deliver, Wake and their
// answers, in internal/grainpb) are protobuf, so the grain works the same
// when it lives on another member. Messages a grain gets from its own
// children, background work and timers never leave the process and are
// plain Go values.
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// Kind is the cluster kind of orchestration grains.
const Kind = "orchestration"

// Bus schedules durable timers and keeps dead letters.
type Bus interface {
	Schedule(ctx context.Context, at time.Time, m delivery.Message) error
	Unschedule(ctx context.Context, id string) error
	DeadLetter(ctx context.Context, topic delivery.Topic, m delivery.Message, reason string) error
}

// Grains calls grains through the cluster.
type Grains interface {
	Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error)
}

// Recovery is what grains need of the engine's recovery: every append and
// its acts are counted (Begin, End), so the acted-on checkpoint never
// passes decisions that are not carried out, and a loading grain learns
// which of its records a crash may have left unacted (Unacted), acts on them
// again, and says so (Redone).
type Recovery interface {
	Begin() uint64
	End(epoch uint64)
	Busy() bool
	Unacted(id string) (after, upTo uint64)
	Redone(id string)
}

// Entities looks entity kinds up by name (case-insensitive).
type Entities interface {
	Entity(name string) (*entities.Kind, bool)
}

// Config configures a Runtime.
type Config struct {
	Store         eventstore.Store
	Orchestrators *orchestration.Registry
	Activities    Activities
	Entities      Entities
	Executor      orchestration.Options
	// MaxEntityStateSize bounds an entity's encoded state;
	// entities.DefaultMaxStateSize when zero.
	MaxEntityStateSize int
	Bus                Bus
	Recovery           Recovery
	Logger             *slog.Logger
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
	entities   Entities
	// entityConverter is the executor's converter, as entities see it.
	entityConverter entities.Converter
	maxEntityState  int
	executor        orchestration.Options
	bus             Bus
	recovery        Recovery
	log             *slog.Logger
	clock           func() time.Time
	idle            time.Duration
	localTimer      time.Duration

	limiter *limiter
	// pool runs the grains' and runners' mailboxes, the appends and the
	// outboxes.
	pool        *pool
	runnerProps *actor.Props
	// draining is set when the engine stops taking work: no new activity
	// starts (it stays pending and runs after the next start).
	draining atomic.Bool
	// unrecorded counts the activity results grains hold and have not
	// recorded yet.
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
		store:          cfg.Store,
		reg:            cfg.Orchestrators,
		activities:     cfg.Activities,
		entities:       cfg.Entities,
		maxEntityState: cfg.MaxEntityStateSize,
		executor:       cfg.Executor.WithDefaults(),
		bus:            cfg.Bus,
		recovery:       cfg.Recovery,
		log:            cfg.Logger,
		clock:          cfg.Clock,
		idle:           cfg.IdleTimeout,
		localTimer:     cfg.LocalTimers,
		pool:           newPool(300, 10*time.Second),
		ctx:            ctx,
		cancel:         cancel,
	}
	rt.entityConverter = rt.executor.Converter
	rt.limiter = newLimiter(cfg.MaxConcurrentActivities, func(pid *actor.PID) {
		rt.system.Root.Send(pid, runActivity{})
	})
	rt.runnerProps = actor.PropsFromProducer(func() actor.Actor { return &runner{rt: rt} }, actor.WithDispatcher(rt.pool))
	return rt
}

// Props returns the props of the orchestration grain kind.
func (rt *Runtime) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &grain{core: core{rt: rt}} }, actor.WithDispatcher(rt.pool))
}

// Bind connects the runtime to the running cluster.
func (rt *Runtime) Bind(system *actor.ActorSystem, grains Grains) {
	rt.system = system
	rt.grains = grains
}

func (rt *Runtime) now() time.Time { return rt.clock().UTC() }

// Drain stops new activities from starting; running ones go on.
func (rt *Runtime) Drain() { rt.draining.Store(true) }

// WaitIdle returns once no activity runs, every activity result a grain
// holds is recorded and every append has been acted on, or ctx ends.
func (rt *Runtime) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for rt.limiter.running() > 0 || rt.recovery.Busy() || rt.unrecorded.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%d activities running, %d results not recorded, acts in flight %v: %w",
				rt.limiter.running(), rt.unrecorded.Load(), rt.recovery.Busy(), ctx.Err())
		}
	}
	return nil
}

// Shutdown cancels running activities and background work.
func (rt *Runtime) Shutdown() { rt.cancel() }

// Close releases the runtime's goroutines once the cluster has stopped.
func (rt *Runtime) Close() { rt.pool.close() }

// HandleMessage delivers a bus message to its grain. It returns nil once
// the grain has recorded the message, or has refused a fired timer or
// scheduled start for good (the instance has ended or moved on: the
// message is obsolete). It returns a delivery.Permanent error for a message
// that can never be delivered (the poison topic keeps it, with the reason),
// and any other error when delivery should be retried.
func (rt *Runtime) HandleMessage(ctx context.Context, _ delivery.Topic, m delivery.Message) error {
	var req proto.Message
	switch m.Kind {
	case Kind:
		req = &grainpb.Deliver{}
	case EntityKind:
		req = &grainpb.EntityRequest{}
	default:
		return delivery.Permanent(fmt.Errorf("no grain kind %q on this engine", m.Kind))
	}
	if err := proto.Unmarshal(m.Payload, req); err != nil {
		return delivery.Permanent(fmt.Errorf("undecodable payload: %w", err))
	}
	_, err := rt.grains.Request(ctx, m.Kind, m.Identity, req)
	switch {
	case err == nil:
		return nil
	case Retriable(err):
		return err
	case m.Type == timerType || m.Type == startType:
		rt.log.Debug("dropping a timer its instance no longer waits for", "instance", m.Identity, "type", m.Type, "reason", err)
		return nil
	}
	return delivery.Permanent(fmt.Errorf("refused by %s %q: %s", m.Kind, m.Identity, status.Convert(err).Message()))
}

// Types of the bus messages the runtime schedules.
const (
	timerType = "TimerFired"
	startType = "Start"
)

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

// DeliverMessage builds the request that hands inputs to an instance: raised
// events, terminate, suspend, resume.
func DeliverMessage(events ...orchestration.HistoryEvent) *grainpb.Deliver {
	d := &grainpb.Deliver{}
	for i := range events {
		d.Events = append(d.Events, encodeEvent(&events[i]))
	}
	return d
}

// busMessage builds the bus message that delivers events to an instance;
// id identifies it for de-duplication.
func busMessage(id, instanceID, typ string, events ...orchestration.HistoryEvent) (delivery.Message, error) {
	payload, err := proto.Marshal(DeliverMessage(events...))
	if err != nil {
		return delivery.Message{}, err
	}
	return delivery.Message{ID: id, Kind: Kind, Identity: instanceID, Type: typ, Payload: payload}, nil
}

// retry calls op with growing pauses (exponential backoff, 50ms to 5s)
// until it succeeds, returns a backoff.Permanent error, or the runtime shuts
// down. Each call gets 10 seconds.
func (rt *Runtime) retry(what string, op func(ctx context.Context) error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 50*time.Millisecond, 5*time.Second
	_, _ = backoff.Retry(rt.ctx, func() (struct{}, error) {
		ctx, cancel := context.WithTimeout(rt.ctx, 10*time.Second)
		defer cancel()
		return struct{}{}, op(ctx)
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		if rt.ctx.Err() == nil {
			rt.log.Warn("retrying", "what", what, "in", next.Round(time.Millisecond), "error", err)
		}
	}))
}

// A grain refuses a request by answering with a google.rpc.Status, which
// the cluster returns to the caller as an error carrying its code:
//
//	NotFound            the instance does not exist
//	AlreadyExists       the instance runs; it cannot be started again
//	FailedPrecondition  the instance has completed, failed or been terminated,
//	                    or its history cannot be loaded
//	InvalidArgument     the request is invalid (an unknown orchestrator, say)
//	Aborted             the instance has not ended, and the request (a purge)
//	                    needs it ended
//	Unavailable         the activation cannot serve it now; the cluster
//	                    retries against a new activation
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
	case codes.OK, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.InvalidArgument, codes.Aborted:
		return false
	}
	return true
}

// permanentAppendError reports whether the store refused an append for
// good: retrying the same events cannot succeed.
func permanentAppendError(err error) bool {
	return errors.Is(err, eventstore.ErrEventTooLarge) || errors.Is(err, eventstore.ErrAppendTooLarge) ||
		errors.Is(err, eventstore.ErrInvalidEvent) || errors.Is(err, eventstore.ErrInvalidStreamName)
}
