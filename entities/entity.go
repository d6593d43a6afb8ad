package entities

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"time"
)

// Entity runs the operations of one entity, one at a time, each a
// transaction: an operation that fails or panics leaves the state as it was
// before it, sends nothing and stores no event, and the operations after it
// run as usual. It is pure: state and events in, outcomes out, no I/O. An
// Entity is not safe for concurrent use.
type Entity struct {
	kind *Kind
	id   ID
	conv Converter
	m    model
	// maxState bounds the encoded state, in bytes.
	maxState int
	// committed is the state as of the last operation that succeeded,
	// encoded: what a failed operation is rolled back to, and what a
	// function-style entity stores.
	committed    []byte
	committedHas bool
}

// DefaultMaxStateSize bounds an entity's encoded state unless the runtime
// says otherwise.
const DefaultMaxStateSize = 1<<20 - 16<<10

// New returns the executor of entity id of the kind, with no state;
// Restore and Replay bring its state back.
func (k *Kind) New(id ID, conv Converter, maxStateSize int) *Entity {
	if conv == nil {
		conv = JSON
	}
	if maxStateSize <= 0 {
		maxStateSize = DefaultMaxStateSize
	}
	return &Entity{kind: k, id: id.Normalized(), conv: conv, m: k.newModel(conv), maxState: maxStateSize}
}

// Kind returns the entity's kind.
func (e *Entity) Kind() *Kind { return e.kind }

// Restore sets the state from a stored state or snapshot (has false: none).
func (e *Entity) Restore(data []byte, has bool) error {
	if err := e.m.load(data, has); err != nil {
		return fmt.Errorf("entities: %s: %w", e.id, err)
	}
	e.committed, e.committedHas = data, has
	return nil
}

// Replay folds stored domain events into an event-sourced entity's state,
// through the kind's Upcast first.
func (e *Entity) Replay(events []Event) error {
	for _, ev := range events {
		ev.conv = e.conv
		if e.kind.upcast != nil && ev.Type != DeletedEventType {
			up, err := e.kind.upcast(ev)
			if err != nil {
				return fmt.Errorf("entities: %s: upcast event %q: %w", e.id, ev.Type, err)
			}
			ev = up
			ev.conv = e.conv
		}
		if err := e.m.apply(ev); err != nil {
			return fmt.Errorf("entities: %s: apply event %q: %w", e.id, ev.Type, err)
		}
	}
	data, has, err := e.m.save()
	if err != nil {
		return fmt.Errorf("entities: %s: encode the state: %w", e.id, err)
	}
	e.committed, e.committedHas = data, has
	return nil
}

// State returns the encoded state as of the last operation that
// succeeded, and whether there is any.
func (e *Entity) State() ([]byte, bool) { return e.committed, e.committedHas }

// Outcome is what one operation did.
type Outcome struct {
	// Result is the encoded result (ctx.Return), for a caller.
	Result []byte
	// Failure is why the operation failed; nil if it succeeded. A failed
	// operation has no events, signals or starts.
	Failure *Failure
	// Events are the domain events an event-sourced entity's operation
	// emitted, applied to the state and to be stored.
	Events []Event
	// Signals and Starts are the messages to send once the outcome is
	// recorded.
	Signals []Signal
	Starts  []Start
}

// Failure describes an operation's failure: the Go type of its error (or
// "panic") and the message.
type Failure struct {
	ErrorType  string
	Message    string
	StackTrace string
}

func (f *Failure) Error() string { return f.ErrorType + ": " + f.Message }

// Run runs one operation at time now.
func (e *Entity) Run(now time.Time, op Operation) (out Outcome) {
	ctx := &Context{id: e.id, op: op, now: now, conv: e.conv, m: e.m}
	defer func() {
		if r := recover(); r != nil {
			e.rollback()
			out = Outcome{Failure: &Failure{ErrorType: "panic", Message: fmt.Sprint(r), StackTrace: string(debug.Stack())}}
		}
	}()
	err := e.m.run(ctx)
	if err == nil && e.m.eventSourced() {
		for _, ev := range ctx.emitted {
			if err = e.m.apply(ev); err != nil {
				err = fmt.Errorf("entities: apply event %q: %w", ev.Type, err)
				break
			}
		}
	}
	if err == nil && (!e.m.eventSourced() || len(ctx.emitted) > 0) {
		err = e.commit()
	}
	if err != nil {
		e.rollback()
		return Outcome{Failure: failureOf(err)}
	}
	return Outcome{Result: ctx.result, Events: ctx.emitted, Signals: ctx.signals, Starts: ctx.starts}
}

// commit encodes the state after a successful operation, checking its size.
func (e *Entity) commit() error {
	data, has, err := e.m.save()
	if err != nil {
		return fmt.Errorf("entities: encode the state of %s: %w", e.id, err)
	}
	if len(data) > e.maxState {
		return fmt.Errorf("%w: the state of %s would be %d bytes, over the limit of %d", ErrStateTooLarge, e.id, len(data), e.maxState)
	}
	e.committed, e.committedHas = data, has
	return nil
}

// rollback restores the state of the last operation that succeeded.
func (e *Entity) rollback() {
	if err := e.m.load(e.committed, e.committedHas); err != nil {
		// The bytes were encoded from this very model: they decode.
		panic(fmt.Sprintf("entities: %s: the committed state does not decode: %v", e.id, err))
	}
}

func failureOf(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{ErrorType: reflect.TypeOf(err).String(), Message: err.Error()}
}
