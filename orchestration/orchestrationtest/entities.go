package orchestrationtest

import (
	"fmt"
	"slices"
	"time"

	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/orchestration"
)

// entity is an entity of the Env: its executor, the critical section that
// holds it and the requests waiting for that one to end.
type entity struct {
	exec  *entities.Entity
	lock  string
	queue []entityRequest
}

// entityRequest is a message for an entity: an operation (from a caller
// when it is a call), a lock request, or an unlock.
type entityRequest struct {
	target    string
	operation *orchestration.HistoryEvent
	caller    string
	callerGen int32
	// lock is the section an operation runs in, or the one a lock request
	// or unlock is about; lockSet and index make a lock request.
	lock    string
	lockSet []string
	index   int
	unlock  bool
	request bool
}

// RegisterEntity adds an entity kind (built with the entities package):
// orchestrations of the Env call, signal and lock its entities, which run
// in memory as the engine runs them, one operation at a time, locked
// sections queueing the others.
func (e *Env) RegisterEntity(kind *entities.Kind) {
	e.kinds[kind.Name()] = kind
}

// SignalEntity sends an operation to an entity, as a client does.
func (e *Env) SignalEntity(id entities.ID, operation string, input any) error {
	data, err := e.conv.Marshal(input)
	if err != nil {
		return fmt.Errorf("orchestrationtest: encode entity input: %w", err)
	}
	op := orchestration.HistoryEvent{Kind: orchestration.EntityOperationSignaled, InstanceID: id.String(), Name: operation, Input: data}
	e.queue = append(e.queue, delivery{entity: &entityRequest{target: id.String(), operation: &op}})
	return e.RunUntilIdle()
}

// EntityState decodes an entity's state into v and reports whether it has
// any.
func (e *Env) EntityState(id entities.ID, v any) (bool, error) {
	en, ok := e.entities[id.String()]
	if !ok {
		return false, nil
	}
	data, has := en.exec.State()
	if !has {
		return false, nil
	}
	return true, e.conv.Unmarshal(data, v)
}

// actOnEntity turns an orchestration's entity decision into a request.
func (e *Env) actOnEntity(in *instance, ev *orchestration.HistoryEvent) {
	r := &entityRequest{target: ev.InstanceID, caller: in.id, callerGen: in.generation(), lock: ev.LockID}
	switch ev.Kind {
	case orchestration.EntityOperationSignaled, orchestration.EntityOperationCalled:
		cp := *ev
		r.operation = &cp
		if !ev.FireAt.IsZero() && ev.FireAt.After(e.now) {
			e.entityTimers = append(e.entityTimers, entityTimer{at: ev.FireAt, r: r})
			e.timers = append(e.timers, timer{instanceID: "", at: ev.FireAt, eventID: -2})
			return
		}
	case orchestration.EntityLockRequested:
		r.target, r.lockSet, r.request = ev.LockSet[0], ev.LockSet, true
		r.operation = &orchestration.HistoryEvent{EventID: ev.EventID}
	case orchestration.EntityUnlockSent:
		r.unlock = true
	}
	e.queue = append(e.queue, delivery{entity: r})
}

// entityTimer is a signal for later.
type entityTimer struct {
	at time.Time
	r  *entityRequest
}

// runEntity handles one request at its entity.
func (e *Env) runEntity(r *entityRequest) {
	id, err := entities.ParseID(r.target)
	if err != nil {
		e.fail(err)
		return
	}
	kind, ok := e.kinds[id.Name]
	if !ok {
		e.fail(fmt.Errorf("orchestrationtest: no entity kind %q is registered", id.Name))
		return
	}
	en := e.entities[r.target]
	if en == nil {
		en = &entity{exec: kind.New(id, e.conv, 0)}
		e.entities[r.target] = en
	}
	switch {
	case r.unlock:
		if en.lock != r.lock {
			return
		}
		en.lock = ""
		queue := en.queue
		en.queue = nil
		for n, q := range queue {
			if en.lock != "" {
				en.queue = append(en.queue, queue[n:]...)
				break
			}
			e.runEntityRequest(en, q)
		}
	case en.lock != "" && en.lock != r.lock:
		en.queue = append(en.queue, *r)
	default:
		e.runEntityRequest(en, *r)
	}
}

// runEntityRequest runs an operation or grants a lock.
func (e *Env) runEntityRequest(en *entity, r entityRequest) {
	if r.request {
		en.lock = r.lock
		if next := r.index + 1; next < len(r.lockSet) {
			fwd := r
			fwd.target, fwd.index = r.lockSet[next], next
			e.queue = append(e.queue, delivery{entity: &fwd})
			return
		}
		e.queue = append(e.queue, delivery{instanceID: r.caller, generation: r.callerGen,
			input: orchestration.HistoryEvent{Kind: orchestration.EntityLockGranted, EventID: r.operation.EventID}})
		return
	}
	op := r.operation
	out := en.exec.Run(e.now, entities.Operation{RequestID: fmt.Sprintf("%s:%d", r.caller, op.EventID), Name: op.Name, Input: op.Input})
	for _, s := range out.Signals {
		sig := orchestration.HistoryEvent{Kind: orchestration.EntityOperationSignaled, InstanceID: s.Target.String(), Name: s.Operation.Name, Input: s.Operation.Input}
		e.queue = append(e.queue, delivery{entity: &entityRequest{target: s.Target.String(), operation: &sig}})
	}
	for _, s := range out.Starts {
		if _, exists := e.instances[s.InstanceID]; !exists {
			e.create(orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: s.Orchestrator, InstanceID: s.InstanceID, Input: s.Input})
		}
	}
	if op.Kind != orchestration.EntityOperationCalled {
		return
	}
	reply := orchestration.HistoryEvent{Kind: orchestration.EntityOperationCompleted, EventID: op.EventID, Result: out.Result}
	if out.Failure != nil {
		reply = orchestration.HistoryEvent{Kind: orchestration.EntityOperationFailed, EventID: op.EventID,
			Failure: &orchestration.FailureDetails{ErrorType: out.Failure.ErrorType, Message: out.Failure.Message}}
	}
	e.queue = append(e.queue, delivery{instanceID: r.caller, generation: r.callerGen, input: reply})
}

// fireEntityTimer delivers the earliest signal scheduled for now.
func (e *Env) fireEntityTimer() {
	i := slices.IndexFunc(e.entityTimers, func(t entityTimer) bool { return !t.at.After(e.now) })
	if i < 0 {
		return
	}
	r := e.entityTimers[i].r
	e.entityTimers = slices.Delete(e.entityTimers, i, i+1)
	e.queue = append(e.queue, delivery{entity: r})
}
