package durable

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/durableactor/durable/actors"
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
}

// NewRegistry returns an empty registry that encodes payloads as JSON.
func NewRegistry() *Registry {
	return &Registry{
		orchestrators: orchestration.NewRegistry(),
		converter:     orchestration.JSON,
		activities:    make(map[string]actors.Activity),
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

// ActivityInfo describes the call an activity runs for.
type ActivityInfo = actors.ActivityInfo

// ActivityInfoFrom returns the call an activity's context belongs to.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) { return actors.ActivityInfoFrom(ctx) }
