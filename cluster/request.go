package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Backoff between attempts that failed fast (dead letter, refused
// activation). An attempt that timed out has already waited RequestTimeout
// and is retried at once.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// Request calls the grain kind/identity with msg and returns its reply,
// activating the grain on the member that owns the identity if it is not
// active.
//
// Each attempt (placement, then the call) is bounded by Config.RequestTimeout;
// an attempt that times out, reaches an activation that is gone (the grain
// passivated, its member left) or is answered Unavailable is retried against
// a fresh placement until ctx ends. Retrying means a grain may receive the same message more than
// once, for example when it replied too late: grains must deduplicate by a
// message ID, as durable's grains do (invariant 4).
//
// Errors:
//   - *GrainError: the grain replied with a google.rpc.Status whose code is
//     not OK; not retried.
//   - *RequestError: the call ended without a usable reply. Its Err is
//     ctx.Err() (with Last the last transport failure), ErrStopped,
//     ErrUnknownKind (no member hosts kind; not retried) or ErrBadReply.
func (c *Cluster) Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error) {
	if err := checkCall(kind, identity, msg); err != nil {
		return nil, &RequestError{Kind: kind, Identity: identity, Err: err}
	}
	reply, attempts, last, err := c.retry(ctx, kind, identity, func() (any, error) {
		return c.call(ctx, kind, identity, msg)
	})
	if err != nil {
		return nil, &RequestError{Kind: kind, Identity: identity, Attempts: attempts, Err: err, Last: last}
	}
	switch r := reply.(type) {
	case *spb.Status:
		if codes.Code(r.GetCode()) != codes.OK {
			return nil, &GrainError{Kind: kind, Identity: identity, Status: status.FromProto(r)}
		}
		return r, nil
	case proto.Message:
		return r, nil
	}
	return nil, &RequestError{Kind: kind, Identity: identity, Attempts: attempts,
		Err: fmt.Errorf("%w: got %T", ErrBadReply, reply)}
}

func checkCall(kind, identity string, msg proto.Message) error {
	switch {
	case kind == "":
		return errors.New("empty kind")
	case identity == "":
		return errors.New("empty identity")
	case msg == nil:
		return errors.New("nil message")
	}
	return nil
}

// retry runs attempt until it succeeds, fails for good, ctx ends or Stop
// begins. It returns the result, the number of attempts, the last transient
// failure and the final error.
func (c *Cluster) retry(ctx context.Context, kind, identity string, attempt func() (any, error)) (any, int, error, error) {
	var (
		last     error
		fastFail int // consecutive failures that did not wait out a timeout
	)
	for n := 1; ; n++ {
		if c.isStopping() {
			return nil, n - 1, last, ErrStopped
		}
		if err := ctx.Err(); err != nil {
			return nil, n - 1, last, err
		}
		res, err := attempt()
		if err == nil {
			return res, n, nil, nil
		}
		if !transient(err) {
			return nil, n, last, err
		}
		last = err
		c.log.Debug("cluster: grain call attempt failed, retrying",
			slog.String("kind", kind), slog.String("identity", identity),
			slog.Int("attempt", n), slog.Any("error", err))
		if errors.Is(err, ErrTimeout) {
			fastFail = 0
			continue
		}
		delay := min(minBackoff<<min(fastFail, 10), maxBackoff)
		fastFail++
		if err := c.wait(ctx, delay); err != nil {
			return nil, n, last, err
		}
	}
}

func transient(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrDeadLetter) || errors.Is(err, ErrActivation) || errors.Is(err, ErrUnavailable)
}

// wait sleeps for d unless ctx ends or Stop begins first.
func (c *Cluster) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopping:
		return ErrStopped
	}
}

// call is one attempt of Request: place the grain, then call it.
func (c *Cluster) call(ctx context.Context, kind, identity string, msg proto.Message) (any, error) {
	pid, err := c.resolve(ctx, kind, identity)
	if err != nil {
		return nil, err
	}
	reply, err := c.roundTrip(ctx, pid, msg)
	if st, ok := reply.(*spb.Status); ok && err == nil && codes.Code(st.GetCode()) == codes.Unavailable {
		err = fmt.Errorf("%w: %s", ErrUnavailable, st.GetMessage())
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrDeadLetter) || errors.Is(err, ErrUnavailable) {
		// Forget this activation: the next attempt asks the owner again,
		// which either confirms it (a slow grain) or places it anew (it
		// passivated, or its member is gone).
		c.member.PidCache.RemoveByValue(identity, kind, pid)
		if c.local != nil && !errors.Is(err, ErrTimeout) {
			// A stopping activation is forgotten only once it has stopped;
			// the next attempt must not find it again meanwhile.
			c.local.RemovePid(protocluster.NewClusterIdentity(identity, kind), pid)
		}
	}
	return reply, err
}

// resolve returns the PID of the activation of kind/identity: from
// protoactor's PID cache (which its cluster middleware clears when a grain
// stops and the member list clears when a member leaves), or by asking the
// placement actor of the owning member, chosen by the same rendezvous hash
// as disthash, to activate it.
//
// This is disthash's IdentityLookup.Get with two changes: the activation
// request is bounded by RequestTimeout and ctx instead of a fixed,
// uncancellable 5s, and an unknown kind is reported as such instead of as a
// nil PID.
func (c *Cluster) resolve(ctx context.Context, kind, identity string) (*actor.PID, error) {
	ci := protocluster.NewClusterIdentity(identity, kind)
	if c.local != nil {
		if pid := c.local.Get(ci); pid != nil {
			return pid, nil
		}
		return nil, ErrUnknownKind
	}
	if pid, ok := c.member.PidCache.Get(identity, kind); ok && pid != nil {
		return pid, nil
	}
	owner := c.placement.GetByClusterIdentity(ci)
	if owner == "" {
		return nil, ErrUnknownKind
	}
	activator := actor.NewPID(owner, disthash.PartitionActivatorActorName)
	reply, err := c.roundTrip(ctx, activator, &protocluster.ActivationRequest{ClusterIdentity: ci})
	if err != nil {
		return nil, err
	}
	switch r := reply.(type) {
	case *protocluster.ActivationResponse:
		if r.GetFailed() || r.GetPid() == nil {
			return nil, fmt.Errorf("%w: member %s refused", ErrActivation, owner)
		}
		c.member.PidCache.Set(identity, kind, r.GetPid())
		return r.GetPid(), nil
	case nil:
		// disthash's placement actor answers nil for a kind its member
		// does not host.
		return nil, fmt.Errorf("%w: not hosted by its owner %s", ErrUnknownKind, owner)
	default:
		return nil, fmt.Errorf("%w: unexpected placement reply %T", ErrActivation, reply)
	}
}

// roundTrip sends msg to target and waits for one reply, at most
// RequestTimeout, or until ctx ends or Stop begins.
//
// The reply is received by a one-shot process registered for this attempt
// only, rather than by an actor.Future: a future can only be waited on
// without a context (its Result blocks until its own timeout), whereas this
// can be abandoned at once when ctx ends. A reply that arrives after the
// attempt ended goes to the dead-letter process, which protoactor logs at
// Info (Debug here).
func (c *Cluster) roundTrip(ctx context.Context, target *actor.PID, msg any) (any, error) {
	reg := c.system.ProcessRegistry
	inbox := &replyProcess{replies: make(chan any, 1)}
	self, ok := reg.Add(inbox, "durable-call-"+reg.NextId())
	if !ok {
		return nil, fmt.Errorf("%w: reply process id taken", ErrActivation)
	}
	defer reg.Remove(self)

	timer := time.NewTimer(c.cfg.RequestTimeout)
	defer timer.Stop()

	c.system.Root.RequestWithCustomSender(target, msg, self)
	select {
	case reply := <-inbox.replies:
		if _, dead := reply.(*actor.DeadLetterResponse); dead {
			return nil, ErrDeadLetter
		}
		return reply, nil
	case <-timer.C:
		return nil, ErrTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.stopping:
		return nil, ErrStopped
	}
}

// replyProcess is the sender of one attempt: it keeps the first user message
// it receives. For a remote target the reply comes back over the remote
// layer to this PID's address and is delivered here the same way.
type replyProcess struct{ replies chan any }

func (p *replyProcess) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	select {
	case p.replies <- msg:
	default: // a second reply to the same attempt is dropped
	}
}

func (p *replyProcess) SendSystemMessage(*actor.PID, any) {}

func (p *replyProcess) Stop(*actor.PID) {}
