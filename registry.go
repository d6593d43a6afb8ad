package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/orchestration"
)

// Registry holds the orchestrators and activities an engine runs, under
// stable names. Names are recorded in every history, so they must survive
// refactoring; they are never derived from Go function names.
type Registry struct {
	orchestrators *orchestration.Registry
	converter     orchestration.Converter

	mu         sync.RWMutex
	activities map[string]actors.Activity
	entities   map[string]*entities.Kind
}

// NewRegistry returns an empty registry that encodes payloads as JSON.
func NewRegistry() *Registry {
	return &Registry{
		orchestrators: orchestration.NewRegistry(),
		converter:     orchestration.JSON,
		activities:    make(map[string]actors.Activity),
		entities:      make(map[string]*entities.Kind),
	}
}

// Orchestrators returns the orchestrator registry.
func (r *Registry) Orchestrators() *orchestration.Registry { return r.orchestrators }

// Converter returns the converter of payloads.
func (r *Registry) Converter() orchestration.Converter { return r.converter }

// AddOrchestrator registers an orchestrator under name.
func (r *Registry) AddOrchestrator(name string, fn orchestration.Orchestrator) error {
	return r.orchestrators.Add(name, fn)
}

// AddActivity registers an activity that takes and returns encoded
// payloads. Most code uses RegisterActivity instead.
func (r *Registry) AddActivity(name string, fn func(ctx context.Context, input []byte) ([]byte, error)) error {
	if name == "" {
		return errors.New("durable: activity name is empty")
	}
	if fn == nil {
		return fmt.Errorf("durable: activity %q is nil", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.activities[name]; ok {
		return fmt.Errorf("durable: activity %q is already registered", name)
	}
	r.activities[name] = fn
	return nil
}

// Activity returns the activity registered under name.
func (r *Registry) Activity(name string) (actors.Activity, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.activities[name]
	return fn, ok
}

// RegisterOrchestrator registers a typed orchestrator and returns a
// reference that starts it (Client.Start or as a sub-orchestration). It
// panics if the name is empty or taken, a programming error found at
// start-up.
func RegisterOrchestrator[In, Out any](r *Registry, name string, fn func(*orchestration.Context, In) (Out, error)) orchestration.OrchestratorRef[In, Out] {
	return orchestration.Register(r.orchestrators, name, fn)
}

// RegisterActivity registers a typed activity and returns a reference that
// orchestrators call it with. Activities run at least once: after a crash
// an activity whose result was not recorded runs again. It panics if the
// name is empty or taken.
func RegisterActivity[In, Out any](r *Registry, name string, fn func(context.Context, In) (Out, error)) orchestration.ActivityRef[In, Out] {
	conv := r.converter
	err := r.AddActivity(name, func(ctx context.Context, input []byte) ([]byte, error) {
		var in In
		if err := conv.Unmarshal(input, &in); err != nil {
			return nil, fmt.Errorf("durable: decode input of activity %q into %T: %w", name, in, err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		return conv.Marshal(out)
	})
	if err != nil {
		panic(err)
	}
	return orchestration.NewActivity[In, Out](name)
}

// AddEntity registers an entity kind built with the entities package.
// Most code uses RegisterEntity, RegisterEntityFunc or
// RegisterEventSourcedEntity instead.
func (r *Registry) AddEntity(kind *entities.Kind) error {
	if kind == nil {
		return errors.New("durable: entity kind is nil")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.entities[kind.Name()]; ok {
		return fmt.Errorf("durable: entity %q is already registered", kind.Name())
	}
	r.entities[kind.Name()] = kind
	return nil
}

// Entity returns the entity kind registered under name (case-insensitive).
func (r *Registry) Entity(name string) (*entities.Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.entities[strings.ToLower(name)]
	return k, ok
}

// EntityRef names a registered entity kind.
type EntityRef struct{ name string }

// ID returns the ID of the entity of this kind with key.
func (e EntityRef) ID(key string) entities.ID { return entities.NewID(e.name, key) }

// Name returns the kind's name.
func (e EntityRef) Name() string { return e.name }

// RegisterEntity registers a function-style entity kind whose state is a
// value of type S, with typed operations (entities.Update, entities.Do):
//
//	counter := durable.RegisterEntity(reg, "counter", entities.Ops[Counter]{
//		"add": entities.Update(func(ctx *entities.Context, c *Counter, n int) error { c.Value += n; return nil }),
//		"get": entities.Do(func(ctx *entities.Context, c *Counter, _ struct{}) (int, error) { return c.Value, nil }),
//	})
//	err := client.SignalEntity(ctx, counter.ID("game-1"), "add", 5)
//
// It panics if the name is invalid or taken, a programming error found at
// start-up.
func RegisterEntity[S any](r *Registry, name string, ops entities.Ops[S]) EntityRef {
	return r.mustAddEntity(entities.Define(name, ops))
}

// RegisterEntityFunc registers a function-style entity kind run by one
// handler, as a Durable Functions entity function is.
func RegisterEntityFunc(r *Registry, name string, h entities.Handler) EntityRef {
	return r.mustAddEntity(entities.DefineFunc(name, h))
}

// RegisterEventSourcedEntity registers an event-sourced entity kind: its
// stream holds the domain events its commands emit (see the entities
// package).
func RegisterEventSourcedEntity[S any](r *Registry, name string, def entities.EventSourced[S]) EntityRef {
	return r.mustAddEntity(entities.DefineEventSourced(name, def))
}

func (r *Registry) mustAddEntity(kind *entities.Kind, err error) EntityRef {
	if err == nil {
		err = r.AddEntity(kind)
	}
	if err != nil {
		panic(err)
	}
	return EntityRef{name: kind.Name()}
}

// ActivityInfo describes the call an activity runs for.
type ActivityInfo = actors.ActivityInfo

// ActivityInfoFrom returns the call an activity's context belongs to.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) { return actors.ActivityInfoFrom(ctx) }
