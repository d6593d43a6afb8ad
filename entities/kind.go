package entities

import (
	"fmt"
	"strings"
)

// Kind is an entity kind: its name and what its operations do. Define,
// DefineFunc and DefineEventSourced build one; the root package registers
// them (durable.RegisterEntity and its siblings).
type Kind struct {
	name          string
	eventSourced  bool
	snapshotEvery int
	version       int
	upcast        func(Event) (Event, error)
	newModel      func(conv Converter) model
}

// Name returns the kind's name, lower-cased.
func (k *Kind) Name() string { return k.name }

// EventSourced reports whether the kind stores domain events (else it
// stores its state after every batch of operations).
func (k *Kind) EventSourced() bool { return k.eventSourced }

// SnapshotEvery is how many domain events an event-sourced entity stores
// between snapshots of its state.
func (k *Kind) SnapshotEvery() int { return k.snapshotEvery }

// Version is the version of an event-sourced kind's state shape; a
// snapshot of another version is discarded and the state rebuilt from the
// events.
func (k *Kind) Version() int { return k.version }

// model is one entity's state in memory, as its kind keeps it.
type model interface {
	eventSourced() bool
	exists() bool
	get(v any) error
	set(v any) error
	reset()
	// run runs one operation.
	run(ctx *Context) error
	// apply folds a domain event (event-sourced kinds).
	apply(ev Event) error
	// save encodes the state; load restores it (has false: no state).
	save() (data []byte, has bool, err error)
	load(data []byte, has bool) error
}

func validName(name string) error {
	if name == "" || strings.Contains(name, "@") {
		return fmt.Errorf("entities: invalid kind name %q: it must be non-empty and without '@'", name)
	}
	return nil
}

// Op is an operation of a function-style entity whose state is S: it reads
// and changes *state, and its input and result go through ctx (Input,
// Return). Build typed ones with Update and Do.
type Op[S any] func(ctx *Context, state *S) error

// Ops maps operation names to operations.
type Ops[S any] map[string]Op[S]

// Update adapts a typed operation that changes the state and returns
// nothing.
func Update[S, In any](f func(ctx *Context, state *S, in In) error) Op[S] {
	return func(ctx *Context, state *S) error {
		var in In
		if err := ctx.Input(&in); err != nil {
			return err
		}
		return f(ctx, state, in)
	}
}

// Do adapts a typed operation that returns a result (to a caller).
func Do[S, In, Out any](f func(ctx *Context, state *S, in In) (Out, error)) Op[S] {
	return func(ctx *Context, state *S) error {
		var in In
		if err := ctx.Input(&in); err != nil {
			return err
		}
		out, err := f(ctx, state, in)
		if err != nil {
			return err
		}
		return ctx.Return(out)
	}
}

// Define returns a function-style entity kind whose state is a value of
// type S: each operation gets a pointer to it and changes it in place. The
// state exists (HasState) from the first operation that succeeds until
// DeleteState, and is stored after every batch of operations.
func Define[S any](name string, ops Ops[S]) (*Kind, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("entities: kind %q has no operations", name)
	}
	normalized := make(Ops[S], len(ops))
	for op, f := range ops {
		if f == nil {
			return nil, fmt.Errorf("entities: kind %q: operation %q is nil", name, op)
		}
		normalized[strings.ToLower(op)] = f
	}
	return &Kind{name: strings.ToLower(name), newModel: func(conv Converter) model {
		return &typedModel[S]{conv: conv, ops: normalized}
	}}, nil
}

// Handler runs every operation of an entity defined with DefineFunc: it
// dispatches on ctx.Operation() and uses ctx.State, SetState and
// DeleteState, as a Durable Functions entity function does.
type Handler func(ctx *Context) error

// DefineFunc returns a function-style entity kind run by one handler.
func DefineFunc(name string, h Handler) (*Kind, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("entities: kind %q has a nil handler", name)
	}
	return &Kind{name: strings.ToLower(name), newModel: func(conv Converter) model {
		return &rawModel{conv: conv, handler: h}
	}}, nil
}

// Command is a command of an event-sourced entity whose state is S: it
// reads the state (a copy: change nothing through it) and emits domain
// events with ctx.Emit, which Apply then folds into the state. Build typed
// ones with Handle.
type Command[S any] func(ctx *Context, state S) error

// Handle adapts a typed command that may return a result (to a caller).
func Handle[S, In, Out any](f func(ctx *Context, state S, in In) (Out, error)) Command[S] {
	return func(ctx *Context, state S) error {
		var in In
		if err := ctx.Input(&in); err != nil {
			return err
		}
		out, err := f(ctx, state, in)
		if err != nil {
			return err
		}
		return ctx.Return(out)
	}
}

// EventSourced describes an event-sourced entity whose state is S. Its
// stream holds the domain events its commands emit, one stored event each
// with the event's type, so any reader of the event store can follow an
// entity or the whole category; snapshots bound what a load replays.
type EventSourced[S any] struct {
	// Commands maps operation names to commands.
	Commands map[string]Command[S]
	// Apply folds one domain event into the state. It must accept every
	// event a command of the kind emitted, now and in the past (see
	// Upcast).
	Apply func(state *S, ev Event) error
	// SnapshotEvery is how many events are stored between snapshots of
	// the state; 100 when zero.
	SnapshotEvery int
	// Version is the version of the state's shape. Change it when S
	// changes incompatibly: snapshots of another version are discarded and
	// the state is rebuilt from every event of the stream.
	Version int
	// Upcast, when set, turns each stored event into its current form
	// before Apply sees it: a renamed event type, a changed payload. Old
	// events stay as they were stored.
	Upcast func(Event) (Event, error)
}

// DeletedEventType is the domain event that DeleteState stores in an
// event-sourced entity's stream: the state is empty after it, also when the
// state is rebuilt from the events.
const DeletedEventType = "durable.EntityDeleted"

// DefineEventSourced returns an event-sourced entity kind.
func DefineEventSourced[S any](name string, def EventSourced[S]) (*Kind, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if len(def.Commands) == 0 || def.Apply == nil {
		return nil, fmt.Errorf("entities: event-sourced kind %q needs commands and an Apply function", name)
	}
	commands := make(map[string]Command[S], len(def.Commands))
	for op, f := range def.Commands {
		if f == nil {
			return nil, fmt.Errorf("entities: kind %q: command %q is nil", name, op)
		}
		commands[strings.ToLower(op)] = f
	}
	every := def.SnapshotEvery
	if every <= 0 {
		every = 100
	}
	return &Kind{
		name: strings.ToLower(name), eventSourced: true, snapshotEvery: every, version: def.Version, upcast: def.Upcast,
		newModel: func(conv Converter) model {
			return &eventModel[S]{conv: conv, commands: commands, fold: def.Apply}
		},
	}, nil
}

// typedModel is the model of Define.
type typedModel[S any] struct {
	conv    Converter
	ops     Ops[S]
	state   S
	has     bool
	deleted bool // DeleteState was called by the running operation
}

func (m *typedModel[S]) eventSourced() bool { return false }
func (m *typedModel[S]) exists() bool       { return m.has }

func (m *typedModel[S]) get(v any) error {
	if !m.has {
		return nil
	}
	return recode(m.conv, m.state, v)
}

func (m *typedModel[S]) set(v any) error {
	var s S
	if err := recode(m.conv, v, &s); err != nil {
		return err
	}
	m.state, m.has, m.deleted = s, true, false
	return nil
}

func (m *typedModel[S]) reset() {
	var zero S
	m.state, m.has, m.deleted = zero, false, true
}

func (m *typedModel[S]) run(ctx *Context) error {
	op, ok := m.ops[strings.ToLower(ctx.op.Name)]
	m.deleted = false
	if !ok && strings.EqualFold(ctx.op.Name, DeleteOperation) {
		ctx.DeleteState()
		return nil
	}
	if !ok {
		return fmt.Errorf("%w: entity %q has no operation %q", ErrUnknownOperation, ctx.id.Name, ctx.op.Name)
	}
	if err := op(ctx, &m.state); err != nil {
		return err
	}
	if !m.deleted {
		m.has = true // created by its first operation
	}
	return nil
}

func (m *typedModel[S]) apply(Event) error {
	return fmt.Errorf("%w: events in a function-style entity", ErrWrongStyle)
}

func (m *typedModel[S]) save() ([]byte, bool, error) {
	if !m.has {
		return nil, false, nil
	}
	data, err := m.conv.Marshal(m.state)
	return data, true, err
}

func (m *typedModel[S]) load(data []byte, has bool) error {
	var s S
	if has {
		if err := m.conv.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("entities: decode state into %T: %w", s, err)
		}
	}
	m.state, m.has = s, has
	return nil
}

// rawModel is the model of DefineFunc: the state as encoded bytes.
type rawModel struct {
	conv    Converter
	handler Handler
	data    []byte
	has     bool
}

func (m *rawModel) eventSourced() bool { return false }
func (m *rawModel) exists() bool       { return m.has }

func (m *rawModel) get(v any) error {
	if !m.has {
		return nil
	}
	return m.conv.Unmarshal(m.data, v)
}

func (m *rawModel) set(v any) error {
	data, err := m.conv.Marshal(v)
	if err != nil {
		return err
	}
	m.data, m.has = data, true
	return nil
}

func (m *rawModel) reset()                 { m.data, m.has = nil, false }
func (m *rawModel) run(ctx *Context) error { return m.handler(ctx) }
func (m *rawModel) apply(Event) error {
	return fmt.Errorf("%w: events in a function-style entity", ErrWrongStyle)
}
func (m *rawModel) save() ([]byte, bool, error) { return m.data, m.has, nil }
func (m *rawModel) load(data []byte, has bool) error {
	m.data, m.has = data, has
	return nil
}

// eventModel is the model of DefineEventSourced.
type eventModel[S any] struct {
	conv     Converter
	commands map[string]Command[S]
	fold     func(*S, Event) error
	state    S
	has      bool
}

func (m *eventModel[S]) eventSourced() bool { return true }
func (m *eventModel[S]) exists() bool       { return m.has }

func (m *eventModel[S]) get(v any) error {
	if !m.has {
		return nil
	}
	return recode(m.conv, m.state, v)
}

func (m *eventModel[S]) set(any) error {
	return fmt.Errorf("%w: SetState in an event-sourced entity (emit events instead)", ErrWrongStyle)
}

// reset is DeleteState: it is stored as a DeletedEventType event, which
// the executor emits and applies (see applyDeleted).
func (m *eventModel[S]) reset() {}

func (m *eventModel[S]) run(ctx *Context) error {
	cmd, ok := m.commands[strings.ToLower(ctx.op.Name)]
	if !ok && strings.EqualFold(ctx.op.Name, DeleteOperation) {
		ctx.DeleteState()
		return nil
	}
	if !ok {
		return fmt.Errorf("%w: entity %q has no operation %q", ErrUnknownOperation, ctx.id.Name, ctx.op.Name)
	}
	return cmd(ctx, m.state)
}

func (m *eventModel[S]) apply(ev Event) error {
	if ev.Type == DeletedEventType {
		var zero S
		m.state, m.has = zero, false
		return nil
	}
	if err := m.fold(&m.state, ev); err != nil {
		return err
	}
	m.has = true
	return nil
}

func (m *eventModel[S]) save() ([]byte, bool, error) {
	if !m.has {
		return nil, false, nil
	}
	data, err := m.conv.Marshal(m.state)
	return data, true, err
}

func (m *eventModel[S]) load(data []byte, has bool) error {
	var s S
	if has {
		if err := m.conv.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("entities: decode snapshot into %T: %w", s, err)
		}
	}
	m.state, m.has = s, has
	return nil
}

// recode copies a value into another through the converter.
func recode(conv Converter, from, to any) error {
	data, err := conv.Marshal(from)
	if err != nil {
		return err
	}
	return conv.Unmarshal(data, to)
}
