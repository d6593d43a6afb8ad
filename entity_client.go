package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/grainpb"
)

// SignalOption configures Client.SignalEntity.
type SignalOption func(*signalOptions)

type signalOptions struct {
	requestID string
	at        time.Time
}

// WithSignalRequestID makes a signal idempotent: an entity runs the
// operation of a request ID once, however often it is sent (within its
// last entitylog.RecentRequests requests).
func WithSignalRequestID(id string) SignalOption { return func(o *signalOptions) { o.requestID = id } }

// WithSignalTime delivers the signal at t, on a durable timer, instead of
// at once.
func WithSignalTime(t time.Time) SignalOption { return func(o *signalOptions) { o.at = t } }

// EntityOperationError is the failure of an entity operation a client
// called: the operation's error, as the entity recorded it.
type EntityOperationError struct {
	Entity    entities.ID
	Operation string
	ErrorType string
	Message   string
}

func (e *EntityOperationError) Error() string {
	return fmt.Sprintf("durable: entity %s operation %q failed: %s", e.Entity, e.Operation, e.Message)
}

// SignalEntity sends a one-way operation to an entity. It returns once the
// entity has recorded it: run, or queued behind a critical section that
// holds the entity. Signals one client sends to one entity, one after
// another, run in that order. With WithSignalTime it returns once the
// signal is scheduled.
func (c *Client) SignalEntity(ctx context.Context, id entities.ID, operation string, input any, opts ...SignalOption) error {
	var o signalOptions
	for _, f := range opts {
		f(&o)
	}
	op, err := c.entityOperation(id, operation, input, o.requestID)
	if err != nil {
		return err
	}
	req := &grainpb.EntityRequest{Operations: []*grainpb.EntityOperation{op}}
	if !o.at.IsZero() {
		if c.e.isStopped() {
			return ErrStopped
		}
		payload, err := proto.Marshal(req)
		if err != nil {
			return err
		}
		msg := delivery.Message{ID: "signal:" + op.RequestId, Kind: actors.EntityKind, Identity: id.String(), Type: "EntityRequest", Payload: payload}
		return c.e.bus.Schedule(ctx, o.at, msg)
	}
	_, err = c.entityCall(ctx, id, req)
	return err
}

// CallEntity runs an operation on an entity and decodes its result into
// out (which may be nil). An operation that fails returns an
// *EntityOperationError. Durable Functions lets only orchestrations call
// entities; durable lets any client, as Orleans does.
func (c *Client) CallEntity(ctx context.Context, id entities.ID, operation string, input, out any) error {
	op, err := c.entityOperation(id, operation, input, "")
	if err != nil {
		return err
	}
	op.WantResult = true
	ack, err := c.entityCall(ctx, id, &grainpb.EntityRequest{Operations: []*grainpb.EntityOperation{op}})
	if err != nil {
		return err
	}
	if len(ack.Results) != 1 {
		return fmt.Errorf("durable: entity %s answered a call with %d results", id, len(ack.Results))
	}
	r := ack.Results[0]
	if r.Failed {
		return &EntityOperationError{Entity: id.Normalized(), Operation: operation, ErrorType: r.ErrorType, Message: r.Error}
	}
	if out == nil {
		return nil
	}
	if err := c.e.cfg.Registry.Converter().Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("durable: decode the result of entity %s operation %q into %T: %w", id, operation, out, err)
	}
	return nil
}

// EntityState decodes an entity's state into v and reports whether it has
// any. It reads the entity's stream; the entity is not activated.
func (c *Client) EntityState(ctx context.Context, id entities.ID, v any) (bool, error) {
	kind, err := c.entityKind(id)
	if err != nil {
		return false, err
	}
	l, err := entitylog.Load(ctx, c.e.store, id, kind, c.e.cfg.Registry.Converter(), c.e.cfg.MaxEntityStateSize)
	if err != nil {
		return false, fmt.Errorf("durable: read entity %s: %w", id, err)
	}
	data, has := l.Entity.State()
	if !has {
		return false, nil
	}
	if err := c.e.cfg.Registry.Converter().Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("durable: decode the state of entity %s into %T: %w", id, v, err)
	}
	return true, nil
}

// entityKind validates id and finds its kind.
func (c *Client) entityKind(id entities.ID) (*entities.Kind, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	kind, ok := c.e.cfg.Registry.Entity(id.Name)
	if !ok {
		return nil, fmt.Errorf("%w: no entity kind %q is registered", ErrUnknownEntity, id.Name)
	}
	return kind, nil
}

// entityOperation builds the request of an operation, checking what a
// client can check before sending it.
func (c *Client) entityOperation(id entities.ID, operation string, input any, requestID string) (*grainpb.EntityOperation, error) {
	if _, err := c.entityKind(id); err != nil {
		return nil, err
	}
	if operation == "" {
		return nil, fmt.Errorf("durable: entity %s: the operation name is empty", id)
	}
	data, err := c.encode("entity operation input", input)
	if err != nil {
		return nil, err
	}
	if requestID == "" {
		requestID = uuid.NewString()
	}
	return &grainpb.EntityOperation{RequestId: requestID, Name: operation, Input: data}, nil
}

// entityCall sends a request to an entity's grain and returns its answer
// once recorded.
func (c *Client) entityCall(ctx context.Context, id entities.ID, req *grainpb.EntityRequest) (*grainpb.EntityAck, error) {
	if c.e.isStopped() {
		return nil, ErrStopped
	}
	reply, err := c.e.cluster.Request(ctx, actors.EntityKind, id.String(), req)
	if err != nil {
		if actors.Refused(err) {
			st := status.Convert(err)
			if st.Code() == codes.InvalidArgument {
				return nil, fmt.Errorf("%w: %s", ErrUnknownEntity, st.Message())
			}
			return nil, errors.New("durable: " + st.Message())
		}
		return nil, fmt.Errorf("durable: entity %s: %w", id, err)
	}
	ack, ok := reply.(*grainpb.EntityAck)
	if !ok {
		return nil, fmt.Errorf("durable: entity %s answered with %T", id, reply)
	}
	c.wrote(ack.Position)
	return ack, nil
}
