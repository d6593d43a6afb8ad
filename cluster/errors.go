package cluster

import (
	"errors"
	"fmt"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrInvalidConfig is wrapped by every error Start returns for a Config or
	// Kind it cannot use.
	ErrInvalidConfig = errors.New("cluster: invalid configuration")

	// ErrUnknownKind means no member of the cluster hosts the requested grain
	// kind. It is never retried: registering kinds is a deployment decision, not
	// a transient condition.
	ErrUnknownKind = errors.New("cluster: unknown grain kind")

	// ErrStopped means Stop has begun: new calls are refused and calls in
	// flight end with it.
	ErrStopped = errors.New("cluster: stopped")

	// ErrTimeout is the transport failure of one attempt that got no reply
	// within Config.RequestTimeout. Request retries it; it only reaches the
	// caller as RequestError.Last.
	ErrTimeout = errors.New("cluster: attempt timed out")

	// ErrDeadLetter is the transport failure of an attempt whose target
	// activation no longer exists (it passivated, or its member left). Request
	// retries it with a fresh activation; it only reaches the caller as
	// RequestError.Last.
	ErrDeadLetter = errors.New("cluster: grain activation is gone (dead letter)")

	// ErrActivation is the transport failure of an attempt whose placement
	// (activation) request was refused by the owning member. Request retries it.
	ErrActivation = errors.New("cluster: grain activation failed")

	// ErrUnavailable is the failure of an attempt whose grain answered with
	// a google.rpc.Status of code Unavailable: that activation cannot serve
	// now (it is stopping, say). Request retries it against a fresh
	// activation; it only reaches the caller as RequestError.Last.
	ErrUnavailable = errors.New("cluster: grain activation unavailable")

	// ErrBadReply means the grain replied with something that is not a
	// protobuf message (or with nil). It is a bug in the grain, so it is not
	// retried.
	ErrBadReply = errors.New("cluster: grain reply is not a protobuf message")
)

// RequestError is returned by Request when a call ends without a reply from
// the grain: the caller's context ended, the cluster stopped, the kind is
// unknown or the reply was unusable. It names the grain so that a log line
// says which call failed.
//
// errors.Is matches both Err and Last, so
// errors.Is(err, context.DeadlineExceeded) and errors.Is(err, ErrTimeout)
// both hold for a call that kept timing out until its deadline.
type RequestError struct {
	Kind     string
	Identity string
	// Attempts is the number of attempts made, 0 if the call was refused
	// before the first one.
	Attempts int
	// Err is why the call ended: ctx.Err(), ErrStopped, ErrUnknownKind,
	// ErrBadReply or an argument error.
	Err error
	// Last is the last transient failure before the end (ErrTimeout,
	// ErrDeadLetter, ErrActivation), nil if there was none.
	Last error
}

func (e *RequestError) Error() string {
	s := fmt.Sprintf("cluster: call to grain kind %q identity %q failed", e.Kind, e.Identity)
	if e.Attempts > 0 {
		s += fmt.Sprintf(" after %d attempt(s)", e.Attempts)
	}
	s += ": " + e.Err.Error()
	if e.Last != nil {
		s += " (last transport failure: " + e.Last.Error() + ")"
	}
	return s
}

// Unwrap exposes Err and Last to errors.Is and errors.As.
func (e *RequestError) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Last}
}

// GrainError is returned by Request when the grain itself answered with an
// error: it replied with a google.rpc.Status message (the gRPC convention;
// build one with status.New(code, msg).Proto() or ErrorReply). The call
// reached the grain and was handled, so it is not retried: what to do about
// it is the caller's business. The one exception is codes.Unavailable, the
// grain's way of saying "not this activation, not now": Request retries it
// (see ErrUnavailable).
type GrainError struct {
	Kind     string
	Identity string
	Status   *status.Status
}

func (e *GrainError) Error() string {
	return fmt.Sprintf("cluster: grain kind %q identity %q replied with an error: %s: %s",
		e.Kind, e.Identity, e.Status.Code(), e.Status.Message())
}

// GRPCStatus lets status.FromError and status.Code read the grain's status.
func (e *GrainError) GRPCStatus() *status.Status { return e.Status }

// ErrorReply is the message a grain replies with to report err to its caller
// as a GrainError. An error that carries a gRPC status (status.Error,
// *GrainError) keeps its code; any other error becomes codes.Unknown.
// ErrorReply(nil) is an OK status, which Request returns as an ordinary
// reply, not as an error.
func ErrorReply(err error) *spb.Status {
	if err == nil {
		return status.New(codes.OK, "").Proto()
	}
	return status.Convert(err).Proto()
}
