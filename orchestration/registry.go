package orchestration

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Orchestrator is an orchestrator function. It must be deterministic: given
// the same history it must make the same calls in the same order, so it may
// use only ctx for time, randomness (NewUUID), waiting and I/O.
type Orchestrator func(ctx *Context) (any, error)

// Registry maps stable orchestrator names to functions. Names are stored in
// every history, so they must not change when code is refactored.
type Registry struct {
	mu  sync.RWMutex
	fns map[string]Orchestrator
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{fns: make(map[string]Orchestrator)}
}

// Add registers fn under name. It fails on an empty name, a nil function or
// a name that is already taken.
func (r *Registry) Add(name string, fn Orchestrator) error {
	if name == "" {
		return errors.New("orchestration: orchestrator name is empty")
	}
	if fn == nil {
		return fmt.Errorf("orchestration: orchestrator %q is nil", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.fns[name]; ok {
		return fmt.Errorf("orchestration: orchestrator %q is already registered", name)
	}
	r.fns[name] = fn
	return nil
}

// Get returns the orchestrator registered under name.
func (r *Registry) Get(name string) (Orchestrator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.fns[name]
	return fn, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.fns))
	for n := range r.fns {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Register adds a typed orchestrator to r and returns a reference that
// starts it as a sub-orchestration. The input is decoded before fn runs; a
// decoding failure fails the instance. Register panics if the name is empty
// or taken, like http.ServeMux, because that is a programming error found at
// start-up.
func Register[In, Out any](r *Registry, name string, fn func(*Context, In) (Out, error)) OrchestratorRef[In, Out] {
	err := r.Add(name, func(ctx *Context) (any, error) {
		var in In
		if err := ctx.Input(&in); err != nil {
			return nil, err
		}
		return fn(ctx, in)
	})
	if err != nil {
		panic(err)
	}
	return OrchestratorRef[In, Out]{Name: name}
}
