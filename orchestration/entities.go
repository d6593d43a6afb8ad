package orchestration

import (
	"fmt"
	"slices"

	"github.com/durableactor/durable/entities"
)

// CallEntity calls an operation of an entity and completes with its
// result; a failed operation is a *TaskFailedError of kind EntityTask. The
// entity runs it in order with its other operations. Inside a critical
// section only the locked entities may be called.
func (c *Context) CallEntity(id entities.ID, operation string, input any) *Task {
	i := c.inst
	t := &Task{inst: i, kind: entityTask, name: id.String() + " " + operation}
	if err := checkEntityCall(id, operation); err != nil {
		t.complete(nil, err)
		return t
	}
	if s := i.section; s != nil && !s.holds(id) {
		t.complete(nil, &LockingRulesError{Rule: fmt.Sprintf("inside a critical section only its entities can be called, not %s", id)})
		return t
	}
	data, err := i.encode("entity operation input", input)
	if err != nil {
		t.complete(nil, err)
		return t
	}
	ev := HistoryEvent{Kind: EntityOperationCalled, InstanceID: id.String(), Name: operation, Input: data}
	if s := i.section; s != nil {
		ev.LockID = s.id
	}
	i.decide(ev, t)
	return t
}

// SignalEntity sends a one-way operation to an entity (with entities.At,
// at a later time); nothing reports its outcome. Inside a critical section
// the locked entities cannot be signalled, only called.
func (c *Context) SignalEntity(id entities.ID, operation string, input any, opts ...entities.SignalOption) error {
	i := c.inst
	if err := checkEntityCall(id, operation); err != nil {
		return err
	}
	if s := i.section; s != nil && s.holds(id) {
		return &LockingRulesError{Rule: fmt.Sprintf("inside a critical section its entities can only be called, not signalled (%s)", id)}
	}
	data, err := i.encode("entity operation input", input)
	if err != nil {
		return err
	}
	var at entities.Signal
	for _, f := range opts {
		f(&at)
	}
	i.decide(HistoryEvent{Kind: EntityOperationSignaled, InstanceID: id.String(), Name: operation, Input: data, FireAt: at.At}, nil)
	return nil
}

func checkEntityCall(id entities.ID, operation string) error {
	if err := id.Validate(); err != nil {
		return err
	}
	if operation == "" {
		return fmt.Errorf("orchestration: entity %s: the operation name is empty", id)
	}
	return nil
}

// CriticalSection is a set of entities an orchestration has locked (see
// LockEntities).
type CriticalSection struct {
	inst     *Instance
	id       string
	entities []string
	released bool
}

// ID names the section, for the entities that hold it.
func (s *CriticalSection) ID() string { return s.id }

func (s *CriticalSection) holds(id entities.ID) bool {
	_, found := slices.BinarySearch(s.entities, id.String())
	return found
}

// Release ends the section: its entities run the operations others sent
// them meanwhile. A section is also released when its orchestration ends
// in any way (completes, fails, is terminated, continues as new).
func (s *CriticalSection) Release() {
	i := s.inst
	if s.released || i.section != s {
		return
	}
	s.released = true
	i.section = nil
	for _, e := range s.entities {
		i.decide(HistoryEvent{Kind: EntityUnlockSent, InstanceID: e, LockID: s.id}, nil)
	}
}

// LockEntities locks entities for this orchestration alone and returns
// once all are locked: until Release, the entities run only the
// operations this orchestration calls, and queue everyone else's. The
// entities are locked one after another in one global order (by ID), so
// two sections can never deadlock. Inside a section the rules are Durable
// Functions': no nested section, no sub-orchestration, calls only to the
// locked entities and signals only to others; a call against them fails
// with a *LockingRulesError.
func (c *Context) LockEntities(ids ...entities.ID) (*CriticalSection, error) {
	i := c.inst
	if i.section != nil {
		return nil, &LockingRulesError{Rule: "critical sections cannot be nested"}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("orchestration: LockEntities needs at least one entity")
	}
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := id.Validate(); err != nil {
			return nil, err
		}
		names = append(names, id.String())
	}
	slices.Sort(names)
	names = slices.Compact(names)
	// The section's ID is the decision's: the instance, its generation and
	// the sequence number decide is about to give it.
	lockID := fmt.Sprintf("%s:%d:%d", i.start.InstanceID, i.start.Generation, i.seq)
	t := &Task{inst: i, kind: lockTask, name: fmt.Sprint(names)}
	i.decide(HistoryEvent{Kind: EntityLockRequested, LockSet: names, LockID: lockID}, t)
	s := &CriticalSection{inst: i, id: lockID, entities: names}
	// Until granted, the section is being locked: an instance that ends
	// meanwhile releases it too, so an entity that grants it later lets it
	// go at once.
	i.locking = s
	err := t.Await(nil)
	i.locking = nil
	if err != nil {
		return nil, err
	}
	i.section = s
	return s, nil
}

// releaseSection releases, as the instance ends, the section the code
// holds or is locking.
func (i *Instance) releaseSection() {
	if i.completed {
		return
	}
	if s := i.section; s != nil {
		s.Release()
		return
	}
	if s := i.locking; s != nil {
		i.section = s
		s.Release()
		i.locking = nil
	}
}

// CallEntity calls an entity operation and returns a Future of its result.
func CallEntity[T any](ctx *Context, id entities.ID, operation string, input any) Future[T] {
	return Future[T]{t: ctx.CallEntity(id, operation, input)}
}
