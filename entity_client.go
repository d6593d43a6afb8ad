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
	"github.com/durableactor/durable/index"
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

// EntityQuery selects entities for ListEntities.
type EntityQuery struct {
	// Name keeps the entities of one kind (case-insensitive); empty: all.
	Name string
	// KeyPrefix keeps those whose key starts with it.
	KeyPrefix string
	// LastModifiedFrom and LastModifiedTo keep those last modified in
	// [from, to); zero: open.
	LastModifiedFrom, LastModifiedTo time.Time
	// PageSize bounds a page; 100 when zero.
	PageSize int
	// ContinuationToken is the Next of the previous page.
	ContinuationToken string
	// FetchState includes each entity's state.
	FetchState bool
	// IncludeEmpty includes entities without state (deleted, or only
	// locked).
	IncludeEmpty bool
}

// EntityMetadata is what ListEntities tells of an entity.
type EntityMetadata struct {
	ID           entities.ID
	LastModified time.Time
	HasState     bool
	// State is the encoded state, with EntityQuery.FetchState.
	State []byte
	// LockedBy is the orchestration instance whose critical section holds
	// the entity, empty when none; Queued counts the requests waiting for
	// it.
	LockedBy string
	Queued   int
}

// EntityPage is a page of entities and the token of the next, empty on
// the last page.
type EntityPage struct {
	Entities []EntityMetadata
	Next     string
}

// ListEntities returns a page of the entities q selects, in ID order,
// from the index (the entities are not activated).
func (c *Client) ListEntities(ctx context.Context, q EntityQuery) (*EntityPage, error) {
	if err := c.caughtUp(ctx); err != nil {
		return nil, err
	}
	size := q.PageSize
	if size <= 0 {
		size = 100
	}
	found := c.e.index.Entities(index.EntityQuery{Name: q.Name, KeyPrefix: q.KeyPrefix, From: q.LastModifiedFrom, To: q.LastModifiedTo,
		After: q.ContinuationToken, Limit: size + 1, IncludeEmpty: q.IncludeEmpty})
	page := &EntityPage{}
	if len(found) > size {
		found = found[:size]
		page.Next = found[size-1].ID
	}
	for _, e := range found {
		id, err := entities.ParseID(e.ID)
		if err != nil {
			return nil, err
		}
		m := EntityMetadata{ID: id, LastModified: e.LastModified, HasState: e.HasState, LockedBy: e.LockHolder, Queued: e.Queued}
		if q.FetchState && e.HasState {
			kind, err := c.entityKind(id)
			if err != nil {
				return nil, err
			}
			l, err := entitylog.Load(ctx, c.e.store, id, kind, c.e.cfg.Registry.Converter(), c.e.cfg.MaxEntityStateSize)
			if err != nil {
				return nil, fmt.Errorf("durable: read entity %s: %w", id, err)
			}
			m.State, m.HasState = l.Entity.State()
		}
		page.Entities = append(page.Entities, m)
	}
	return page, nil
}

// CleanOptions says what CleanEntityStorage cleans.
type CleanOptions struct {
	// RemoveEmpty removes the entities that hold nothing (no state, no
	// lock, no queue): their streams are truncated to the record of their
	// removal and the index forgets them.
	RemoveEmpty bool
	// ReleaseOrphanedLocks releases the locks held by critical sections of
	// orchestrations that no longer run (ended, or gone).
	ReleaseOrphanedLocks bool
}

// CleanResult counts what CleanEntityStorage did.
type CleanResult struct {
	Removed, LocksReleased int
}

// CleanEntityStorage removes empty entities and releases orphaned locks, as
// Durable Functions' CleanEntityStorage does. Each entity decides for itself
// (it is its stream's only writer), so an entity signalled meanwhile stays.
func (c *Client) CleanEntityStorage(ctx context.Context, opts CleanOptions) (CleanResult, error) {
	var res CleanResult
	if err := c.caughtUp(ctx); err != nil {
		return res, err
	}
	if opts.ReleaseOrphanedLocks {
		for _, id := range c.e.index.LockedEntities() {
			e, ok := c.e.index.GetEntity(id)
			if !ok {
				continue
			}
			if in, found := c.e.index.Get(e.LockHolder); found && !in.Status.IsTerminal() {
				continue
			}
			eid, err := entities.ParseID(id)
			if err != nil {
				return res, err
			}
			if _, err := c.entityCall(ctx, eid, &grainpb.EntityRequest{Unlock: e.Lock}); err != nil {
				return res, err
			}
			res.LocksReleased++
		}
	}
	if opts.RemoveEmpty {
		for _, id := range c.e.index.EmptyEntities() {
			eid, err := entities.ParseID(id)
			if err != nil {
				return res, err
			}
			ack, err := c.entityCall(ctx, eid, &grainpb.EntityRequest{Clean: true})
			if err != nil {
				return res, err
			}
			if ack.Removed {
				res.Removed++
			}
		}
	}
	return res, nil
}
