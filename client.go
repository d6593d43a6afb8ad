package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// Client starts orchestrations and queries and controls them. Status
// reads come from the instance index, without activating instances, and a
// client always sees its own completed writes.
type Client struct {
	e *Engine

	mu sync.Mutex
	// written is the global position of this client's latest recorded
	// write; reads wait until the index has applied it.
	written uint64
}

// StartOption configures Start.
type StartOption func(*startOptions)

type startOptions struct {
	instanceID string
	startAt    time.Time
	version    string
	requestID  string
}

// WithInstanceID sets the instance ID; by default it is a random 32-digit
// hex string.
func WithInstanceID(id string) StartOption { return func(o *startOptions) { o.instanceID = id } }

// WithStartTime delays the start until t; until then the instance is Pending.
func WithStartTime(t time.Time) StartOption { return func(o *startOptions) { o.startAt = t } }

// WithVersion stamps the instance with a version its code can read.
func WithVersion(v string) StartOption { return func(o *startOptions) { o.version = v } }

// WithRequestID makes Start idempotent: a start retried with the same
// request ID (after a timeout, say) is answered like the first, instead of
// failing because the instance already runs.
func WithRequestID(id string) StartOption { return func(o *startOptions) { o.requestID = id } }

// Start starts an orchestration and returns its instance ID once the start
// is recorded. Starting an ID whose instance runs is ErrInstanceExists; an
// instance that has finished starts over.
func (c *Client) Start(ctx context.Context, name string, input any, opts ...StartOption) (string, error) {
	data, err := c.encode("input", input)
	if err != nil {
		return "", err
	}
	return c.start(ctx, name, data, opts...)
}

// start starts an orchestration with an encoded input.
func (c *Client) start(ctx context.Context, name string, input []byte, opts ...StartOption) (string, error) {
	var o startOptions
	for _, f := range opts {
		f(&o)
	}
	if o.instanceID == "" {
		o.instanceID = strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	if err := ValidateInstanceID(o.instanceID); err != nil {
		return "", err
	}
	if _, ok := c.e.cfg.Registry.Orchestrators().Get(name); !ok {
		return "", fmt.Errorf("%w: no orchestrator is registered under the name %q", ErrUnknownOrchestrator, name)
	}
	if o.requestID == "" {
		o.requestID = uuid.NewString()
	}
	es := orchestration.HistoryEvent{
		Kind: orchestration.ExecutionStarted, Name: name, Version: o.version, InstanceID: o.instanceID,
		Input: input, RequestID: o.requestID,
	}
	if !o.startAt.IsZero() {
		es.FireAt = o.startAt.UTC()
	}
	if _, err := c.call(ctx, o.instanceID, actors.StartMessage(es)); err != nil {
		return "", err
	}
	return o.instanceID, nil
}

// call sends a request to an instance's grain and records the position of
// what it wrote.
func (c *Client) call(ctx context.Context, id string, msg proto.Message) (*grainpb.Ack, error) {
	if c.e.isStopped() {
		return nil, ErrStopped
	}
	reply, err := c.e.cluster.Request(ctx, actors.Kind, id, msg)
	if err != nil {
		return nil, grainError(id, err)
	}
	ack, ok := reply.(*grainpb.Ack)
	if !ok {
		return nil, fmt.Errorf("durable: instance %q answered with %T", id, reply)
	}
	c.wrote(ack.Position)
	return ack, nil
}

// grainError turns the failure of a call to an instance's grain into the
// client's errors: a refusal (see the actors package for the codes) or a
// failure to reach it.
func grainError(id string, err error) error {
	if !actors.Refused(err) {
		return fmt.Errorf("durable: instance %q: %w", id, err)
	}
	st := status.Convert(err)
	var base error
	switch st.Code() {
	case codes.NotFound:
		base = ErrInstanceNotFound
	case codes.AlreadyExists:
		base = ErrInstanceExists
	case codes.FailedPrecondition:
		base = ErrInstanceNotRunning
	case codes.Aborted:
		base = ErrInstanceRunning
	case codes.InvalidArgument:
		return errors.New("durable: " + st.Message())
	default:
		return errors.New("durable: instance unavailable: " + st.Message())
	}
	return fmt.Errorf("%w: %s", base, st.Message())
}

func (c *Client) wrote(position uint64) {
	c.mu.Lock()
	c.written = max(c.written, position)
	c.mu.Unlock()
}

// caughtUp waits until the index holds this client's writes.
func (c *Client) caughtUp(ctx context.Context) error {
	c.mu.Lock()
	written := c.written
	c.mu.Unlock()
	err := c.e.index.WaitFor(ctx, written)
	if errors.Is(err, index.ErrStopped) {
		return fmt.Errorf("%w: %w", ErrIndexStopped, err)
	}
	return err
}

// encode marshals a payload with the registry's converter and checks its size.
func (c *Client) encode(what string, v any) ([]byte, error) {
	data, err := c.e.cfg.Registry.Converter().Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("durable: encode %s: %w", what, err)
	}
	if limit := c.e.cfg.Orchestration.MaxPayloadSize; len(data) > limit {
		return nil, &PayloadTooLargeError{What: what, Size: len(data), Limit: limit}
	}
	return data, nil
}

// instance returns an instance's entry in the index, once the index holds
// this client's writes.
func (c *Client) instance(ctx context.Context, id string) (index.Instance, error) {
	if err := ValidateInstanceID(id); err != nil {
		return index.Instance{}, err
	}
	if err := c.caughtUp(ctx); err != nil {
		return index.Instance{}, err
	}
	in, ok := c.e.index.Get(id)
	if !ok {
		return index.Instance{}, fmt.Errorf("%w: %q", ErrInstanceNotFound, id)
	}
	return in, nil
}

// Status is an orchestration instance's state, as the HTTP status API
// shows it.
type Status struct {
	InstanceID       string
	Name             string
	Version          string
	RuntimeStatus    orchestration.Status
	ParentInstanceID string
	// Input, Output and CustomStatus are encoded by the registry's
	// converter; the Decode methods decode them.
	Input        []byte
	Output       []byte
	CustomStatus []byte
	Failure      *orchestration.FailureDetails
	// CreatedAt is when the current generation started; CompletedAt when
	// it ended (zero while it runs).
	CreatedAt   time.Time
	LastUpdated time.Time
	CompletedAt time.Time
	// InputSize and OutputSize are the sizes of the encoded payloads, also
	// when a list leaves the input out.
	InputSize, OutputSize int
	// WaitsFor says, for people, what the instance waits for: its durable
	// reason to run again (activities in flight, a timer, events, a
	// Resume), or nothing once it has ended.
	WaitsFor string

	conv orchestration.Converter
}

// DecodeInput decodes the instance's input into v.
func (s *Status) DecodeInput(v any) error { return s.conv.Unmarshal(s.Input, v) }

// DecodeOutput decodes the instance's output into v.
func (s *Status) DecodeOutput(v any) error { return s.conv.Unmarshal(s.Output, v) }

// DecodeCustomStatus decodes the instance's custom status into v.
func (s *Status) DecodeCustomStatus(v any) error { return s.conv.Unmarshal(s.CustomStatus, v) }

// Status returns an instance's status, or ErrInstanceNotFound.
func (c *Client) Status(ctx context.Context, id string) (*Status, error) {
	in, err := c.instance(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.status(ctx, &in, true)
}

// status makes the Status of an index entry, reading from the instance's
// stream the payloads too large for the index (the input only when
// withInput is set).
func (c *Client) status(ctx context.Context, in *index.Instance, withInput bool) (*Status, error) {
	st := &Status{
		InstanceID: in.ID, Name: in.Name, Version: in.Version, RuntimeStatus: in.Status, ParentInstanceID: in.ParentID,
		CreatedAt: in.Created, LastUpdated: in.LastUpdated, CompletedAt: in.Completed, WaitsFor: in.WaitsFor(),
		InputSize: in.InputSize, OutputSize: in.OutputSize, conv: c.e.cfg.Registry.Converter(),
	}
	st.Output, st.CustomStatus, st.Failure = in.Output, in.CustomStatus, in.Failure
	if withInput {
		st.Input = in.Input
	}
	// Large payloads are read from the stream; a record is read once (the
	// final episode usually holds both the output and the custom status).
	r := recordReader{c: c, stream: history.StreamName(in.ID), revision: -1}
	if withInput && !in.InlineInput() {
		start, err := r.last(ctx, int64(in.StartRevision), orchestration.ExecutionStarted)
		if err != nil {
			return nil, err
		}
		st.Input = start.Input
	}
	if in.CompletionRevision != index.NoRevision && !in.InlineOutput() {
		ec, err := r.last(ctx, in.CompletionRevision, orchestration.ExecutionCompleted)
		if err != nil {
			return nil, err
		}
		st.Output = ec.Result
	}
	if in.CustomStatusRevision != index.NoRevision && !in.InlineCustomStatus() {
		oc, err := r.last(ctx, in.CustomStatusRevision, orchestration.OrchestratorCompleted)
		if err != nil {
			return nil, err
		}
		st.CustomStatus = oc.CustomStatus
	}
	return st, nil
}

// recordReader reads events of an instance's records, keeping the last
// record it read.
type recordReader struct {
	c        *Client
	stream   string
	revision int64
	events   []orchestration.HistoryEvent
	dec      history.Decoder
}

// last returns the last event of the given kind in the record at revision
// (for the custom status: the last one that set it).
func (r *recordReader) last(ctx context.Context, revision int64, kind orchestration.EventKind) (orchestration.HistoryEvent, error) {
	if r.revision != revision {
		r.events = r.events[:0]
		for rec, err := range r.c.e.store.ReadStream(ctx, r.stream, eventstore.ReadStreamOptions{From: eventstore.FromRevision(uint64(revision)), Limit: 1}) {
			if err != nil {
				return orchestration.HistoryEvent{}, fmt.Errorf("durable: read %s@%d: %w", r.stream, revision, err)
			}
			if r.events, err = r.dec.DecodeRecord(r.events, &rec); err != nil {
				return orchestration.HistoryEvent{}, err
			}
		}
		r.revision = revision
	}
	for i := len(r.events) - 1; i >= 0; i-- {
		ev := r.events[i]
		if ev.Kind == kind && (kind != orchestration.OrchestratorCompleted || ev.CustomStatus != nil) {
			return ev, nil
		}
	}
	return orchestration.HistoryEvent{}, fmt.Errorf("durable: %s@%d holds no %s (the instance restarted)", r.stream, revision, kind)
}

// Wait waits until an instance completes, fails or is terminated and
// returns its final status.
func (c *Client) Wait(ctx context.Context, id string) (*Status, error) {
	if _, err := c.instance(ctx, id); err != nil {
		return nil, err
	}
	select {
	case <-c.e.index.Ended(id):
	case <-c.e.index.Stopped():
		// The index no longer follows the store: nothing would end the wait.
		if err := c.e.index.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrIndexStopped, err)
		}
		return nil, ErrIndexStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.Status(ctx, id)
}

// RaiseEvent sends an external event to a running instance. It returns
// once the instance has recorded the event, so events one client raises one
// after another are received in that order. Raising an event to an
// instance that does not exist is ErrInstanceNotFound, to one that has
// ended ErrInstanceNotRunning.
func (c *Client) RaiseEvent(ctx context.Context, id, name string, payload any) error {
	if name == "" {
		return errors.New("durable: event name is empty")
	}
	data, err := c.encode("event payload", payload)
	if err != nil {
		return err
	}
	return c.send(ctx, id, orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: name, Input: data})
}

// Terminate ends a running instance at its next episode; its output is the
// reason. Like every control request it returns once the instance has
// recorded it, so requests made one after another take effect in order.
func (c *Client) Terminate(ctx context.Context, id, reason string) error {
	return c.control(ctx, id, orchestration.ExecutionTerminated, reason)
}

// Suspend pauses a running instance: inputs are held until Resume.
func (c *Client) Suspend(ctx context.Context, id, reason string) error {
	return c.control(ctx, id, orchestration.ExecutionSuspended, reason)
}

// Resume continues a suspended instance.
func (c *Client) Resume(ctx context.Context, id, reason string) error {
	return c.control(ctx, id, orchestration.ExecutionResumed, reason)
}

func (c *Client) control(ctx context.Context, id string, kind orchestration.EventKind, reason string) error {
	var data []byte
	if reason != "" {
		var err error
		if data, err = c.encode("reason", reason); err != nil {
			return err
		}
	}
	return c.send(ctx, id, orchestration.HistoryEvent{Kind: kind, Input: data})
}

// send hands an input to a running instance through the cluster and
// returns once the instance has recorded it (ack after persist). The
// request ID makes the cluster's retries of the same request one input.
func (c *Client) send(ctx context.Context, id string, ev orchestration.HistoryEvent) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	ev.RequestID = uuid.NewString()
	_, err := c.call(ctx, id, actors.DeliverMessage(ev))
	return err
}

// History returns an instance's recorded history (of its current
// generation, after a ContinueAsNew).
func (c *Client) History(ctx context.Context, id string) ([]orchestration.HistoryEvent, error) {
	if err := ValidateInstanceID(id); err != nil {
		return nil, err
	}
	if err := c.caughtUp(ctx); err != nil {
		return nil, err
	}
	out, err := history.ReadCurrent(ctx, c.e.store, id)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrInstanceNotFound, id)
	}
	return out, nil
}

// ValidateInstanceID reports whether durable accepts id as an instance ID:
// 1 to 256 bytes of UTF-8 without control characters or / \ # ?, not
// starting with '@' (kept for entities), as Durable Functions requires.
func ValidateInstanceID(id string) error {
	reason := ""
	switch {
	case id == "":
		reason = "empty"
	case len(id) > 256:
		reason = "longer than 256 bytes"
	case !utf8.ValidString(id):
		reason = "not valid UTF-8"
	case strings.HasPrefix(id, "@"):
		reason = "IDs starting with '@' are reserved for entities"
	case strings.ContainsAny(id, `/\#?`):
		reason = `contains one of / \ # ?`
	case strings.IndexFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		reason = "contains a control character"
	}
	if reason != "" {
		return &InvalidInstanceIDError{ID: id, Reason: reason}
	}
	return nil
}
