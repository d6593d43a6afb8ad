package index

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/entitylog"
)

// Entity is what the index knows of one entity, from the batch records of
// its stream.
type Entity struct {
	// ID is the entity's "name@key".
	ID string
	// LastModified is when its last batch was recorded.
	LastModified time.Time
	// HasState reports whether it has state after its last batch.
	HasState bool
	// Lock is the critical section that holds it, and LockHolder the
	// orchestration instance that holds that; both empty when unlocked.
	Lock, LockHolder string
	// Queued counts the requests waiting for the lock.
	Queued int
	// LastPosition is the global position of its last batch.
	LastPosition uint64
}

// Empty reports whether the entity holds nothing: no state, no lock, no
// queue. CleanEntityStorage removes such entities.
func (e *Entity) Empty() bool { return !e.HasState && e.Lock == "" && e.Queued == 0 }

// applyEntity folds an entity's batch record into the index; its other
// records (domain events) tell nothing the batch does not.
func (x *Index) applyEntity(rec *eventstore.RecordedEvent) {
	id, ok := strings.CutPrefix(rec.Stream, entitylog.StreamPrefix)
	if !ok || rec.Type != entitylog.BatchType {
		return
	}
	var b entitylog.Batch
	err := proto.Unmarshal(rec.Data, &b)
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.advance(rec.Position)
	if err != nil {
		x.log.Error("an entity's batch record cannot be decoded", "entity", id, "error", err)
		return
	}
	if b.Removed {
		delete(x.entities, id)
		return
	}
	e := x.entities[id]
	if e == nil {
		e = &Entity{ID: id}
		x.entities[id] = e
	}
	e.LastModified, e.LastPosition, e.HasState = rec.Created, rec.Position, b.HasState
	e.Lock, e.LockHolder = b.Lock.GetId(), b.Lock.GetInstanceId()
	if b.Checkpoint != nil {
		e.Queued = len(b.Checkpoint.Queue)
	} else {
		e.Queued = max(0, e.Queued+len(b.Queued)-int(b.Dequeued))
	}
}

// EntityQuery selects entities.
type EntityQuery struct {
	// Name keeps the entities of one kind (case-insensitive); empty: all.
	Name string
	// KeyPrefix keeps those whose key starts with it.
	KeyPrefix string
	// From and To keep those last modified in [From, To); zero: open.
	From, To time.Time
	// After starts the page after this ID (a continuation).
	After string
	// Limit bounds the page; 100 when zero.
	Limit int
	// IncludeEmpty keeps entities without state too.
	IncludeEmpty bool
}

// Entities returns a page of the entities q selects, in ID order.
func (x *Index) Entities(q EntityQuery) []Entity {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	name := strings.ToLower(q.Name)
	x.mu.RLock()
	var out []Entity
	for id, e := range x.entities {
		kind, key, _ := strings.Cut(id, "@")
		switch {
		case name != "" && kind != name,
			!strings.HasPrefix(key, q.KeyPrefix),
			!q.From.IsZero() && e.LastModified.Before(q.From),
			!q.To.IsZero() && !e.LastModified.Before(q.To),
			q.After != "" && id <= q.After,
			!q.IncludeEmpty && !e.HasState:
			continue
		}
		out = append(out, *e)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entity) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), limit)]
}

// GetEntity returns what the index knows of an entity.
func (x *Index) GetEntity(id string) (Entity, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.entities[id]
	if !ok {
		return Entity{}, false
	}
	return *e, true
}

// SelectEntities returns the IDs of the entities for which keep returns
// true.
func (x *Index) SelectEntities(keep func(*Entity) bool) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var ids []string
	for id, e := range x.entities {
		if keep(e) {
			ids = append(ids, id)
		}
	}
	return ids
}
