package index

import (
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/indexpb"
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

// applyEntity folds an entity's batch record into the cache; its other
// records (domain events) tell nothing the batch does not.
func (x *Index) applyEntity(rec *eventstore.RecordedEvent) {
	id, ok := strings.CutPrefix(rec.Stream, entitylog.StreamPrefix)
	if !ok || rec.Type != entitylog.BatchType {
		return
	}
	var batch entitylog.Batch
	if err := proto.Unmarshal(rec.Data, &batch); err != nil {
		x.log.Error("an entity's batch record cannot be decoded", "entity", id, "error", err)
		return
	}
	old := x.getEntity(id)
	var e *Entity
	if !batch.Removed {
		e = &Entity{ID: id}
		if old != nil {
			*e = *old
		}
		e.LastModified, e.LastPosition, e.HasState = rec.Created, rec.Position, batch.HasState
		e.Lock, e.LockHolder = batch.Lock.GetId(), batch.Lock.GetInstanceId()
		if batch.Checkpoint != nil {
			e.Queued = len(batch.Checkpoint.Queue)
		} else {
			e.Queued = max(0, e.Queued+len(batch.Queued)-int(batch.Dequeued))
		}
	}
	if _, ok := x.dirtyEntities[id]; !ok {
		x.dirtyEntities[id] = old // as the database holds it
	}
	x.mu.Lock()
	x.entities[id] = e
	x.mu.Unlock()
}

// writeEntity puts an entity's record and secondary keys in b (e nil: the
// entity is gone).
func (x *Index) writeEntity(b *pebble.Batch, old, e *Entity) {
	if old == nil && e == nil {
		return
	}
	oldKeys, newKeys := entitySecondary(old), entitySecondary(e)
	for _, k := range oldKeys {
		if !containsKey(newKeys, k) {
			b.Delete(k, nil)
		}
	}
	for _, k := range newKeys {
		if !containsKey(oldKeys, k) {
			b.Set(k, nil, nil)
		}
	}
	switch {
	case e != nil:
		data, _ := proto.Marshal(&indexpb.Entity{Id: e.ID, LastModified: nanos(e.LastModified), HasState: e.HasState,
			Lock: e.Lock, LockHolder: e.LockHolder, Queued: int32(e.Queued), LastPosition: e.LastPosition})
		b.Set(entityKey(e.ID), data, nil)
	case old != nil:
		b.Delete(entityKey(old.ID), nil)
	}
}

func entityOf(v []byte) (*Entity, error) {
	var r indexpb.Entity
	if err := proto.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	return &Entity{ID: r.Id, LastModified: timeOf(r.LastModified), HasState: r.HasState, Lock: r.Lock,
		LockHolder: r.LockHolder, Queued: int(r.Queued), LastPosition: r.LastPosition}, nil
}

// getEntity returns an entity's record: from the cache, or from the
// database.
func (x *Index) getEntity(id string) *Entity {
	x.mu.RLock()
	e, cached := x.entities[id]
	x.mu.RUnlock()
	if cached {
		return e
	}
	if !x.lookup(entityKey(id), func(v []byte) (err error) { e, err = entityOf(v); return err }) {
		return nil
	}
	return e
}

// GetEntity returns what the index knows of an entity.
func (x *Index) GetEntity(id string) (Entity, bool) {
	e := x.getEntity(id)
	if e == nil {
		return Entity{}, false
	}
	return *e, true
}

// EntityQuery selects entities.
type EntityQuery struct {
	// Name keeps the entities of one kind (names are lower case); empty:
	// all.
	Name string
	// KeyPrefix keeps those whose key starts with it (with a Name only).
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

// Entities returns a page of the entities q selects, in ID order. It reads
// the entities of the kind (and key prefix) in order, so a page costs what
// it skips by the time and state filters, not a scan of every entity.
func (x *Index) Entities(q EntityQuery) []Entity {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	prefix := []byte{tableEntity}
	if q.Name != "" {
		prefix = append(append(prefix, strings.ToLower(q.Name)...), '@')
		prefix = append(prefix, q.KeyPrefix...)
	}
	lower := prefix
	if q.After != "" {
		if after := append(entityKey(q.After), 0); string(after) > string(lower) {
			lower = after
		}
	}
	var out []Entity
	x.scan(lower, upper(prefix), func(k, v []byte) bool {
		e, err := entityOf(v)
		switch {
		case err != nil,
			!q.From.IsZero() && e.LastModified.Before(q.From),
			!q.To.IsZero() && !e.LastModified.Before(q.To),
			!q.IncludeEmpty && !e.HasState:
			return true
		}
		out = append(out, *e)
		return len(out) < limit
	})
	return out
}

// LockedEntities returns the IDs of the entities held by a lock.
func (x *Index) LockedEntities() []string { return x.ids([]byte{tableLocked}) }

// EmptyEntities returns the IDs of the entities that hold nothing (see
// Entity.Empty).
func (x *Index) EmptyEntities() []string { return x.ids([]byte{tableEmpty}) }

// entitySecondary returns the secondary keys of an entity record.
func entitySecondary(e *Entity) [][]byte {
	switch {
	case e == nil:
		return nil
	case e.Lock != "":
		return [][]byte{append([]byte{tableLocked}, e.ID...)}
	case e.Empty():
		return [][]byte{append([]byte{tableEmpty}, e.ID...)}
	}
	return nil
}
