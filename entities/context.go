package entities

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Converter turns user values (inputs, results, state, domain events, and
// an orchestration's payloads: orchestration.Converter is this type) into
// bytes and back; JSON unless the engine is given another. Marshal of a
// nil value must return nil, and Unmarshal of empty data must leave the
// target unchanged.
type Converter interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Converter: encoding/json, with nil for a nil value
// and no change for empty data.
var JSON Converter = jsonConverter{}

type jsonConverter struct{}

func (jsonConverter) Marshal(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

func (jsonConverter) Unmarshal(data []byte, v any) error {
	if len(data) == 0 || v == nil {
		return nil
	}
	return json.Unmarshal(data, v)
}

// Operation is one request to an entity: a signal (one-way) or a call
// (answered with the operation's result).
type Operation struct {
	// RequestID identifies the request, so that a repeated delivery runs
	// it once.
	RequestID string
	// Name is the operation, e.g. "add".
	Name string
	// Input is the encoded input, nil when there is none.
	Input []byte
}

// Event is a domain event of an event-sourced entity, as its stream stores
// it: a type name and the encoded data. Any reader of the event store sees
// these, one stored event each, in the entity's stream.
type Event struct {
	Type string
	Data []byte
	conv Converter
}

// Decode decodes the event's data into v.
func (e Event) Decode(v any) error {
	conv := e.conv
	if conv == nil {
		conv = JSON
	}
	if err := conv.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("entities: decode event %q into %T: %w", e.Type, v, err)
	}
	return nil
}

// NewEvent returns a stored event as an event-sourced entity's Apply and
// Upcast see it.
func NewEvent(typ string, data []byte, conv Converter) Event {
	return Event{Type: typ, Data: data, conv: conv}
}

// Signal is a one-way operation an entity sends to another entity.
type Signal struct {
	Target    ID
	Operation Operation
	// At is when to deliver it; zero for now.
	At time.Time
}

// Start is an orchestration an entity starts.
type Start struct {
	Orchestrator string
	InstanceID   string
	Input        []byte
	// RequestID makes the start idempotent.
	RequestID string
}

// SignalOption configures Context.SignalEntity.
type SignalOption func(*Signal)

// At delivers a signal at t instead of at once, on a durable timer.
func At(t time.Time) SignalOption { return func(s *Signal) { s.At = t.UTC() } }

// Context is what an entity operation sees: the entity, the operation and
// its input, the entity's state (function style) or events to emit
// (event-sourced style), and the messages it may send, which go out only
// once the operation's outcome is recorded. A Context is valid only during
// its operation.
type Context struct {
	id   ID
	op   Operation
	now  time.Time
	conv Converter
	m    model
	// outcome of the operation
	result  []byte
	emitted []Event
	signals []Signal
	starts  []Start
	sends   int
}

// ID returns the entity's ID.
func (c *Context) ID() ID { return c.id }

// Operation returns the operation's name.
func (c *Context) Operation() string { return c.op.Name }

// Now returns the time the operation's batch runs.
func (c *Context) Now() time.Time { return c.now }

// Input decodes the operation's input into v.
func (c *Context) Input(v any) error {
	if err := c.conv.Unmarshal(c.op.Input, v); err != nil {
		return fmt.Errorf("entities: decode input of %s operation %q into %T: %w", c.id, c.op.Name, v, err)
	}
	return nil
}

// Return sets the operation's result, which a caller receives.
func (c *Context) Return(v any) error {
	data, err := c.conv.Marshal(v)
	if err != nil {
		return fmt.Errorf("entities: encode the result of %s operation %q: %w", c.id, c.op.Name, err)
	}
	c.result = data
	return nil
}

// HasState reports whether the entity has state (it has none before its
// first SetState, and after DeleteState).
func (c *Context) HasState() bool { return c.m.exists() }

// State decodes the entity's state into v; v is left as it is when there
// is none.
func (c *Context) State(v any) error { return c.m.get(v) }

// SetState replaces a function-style entity's state with v.
func (c *Context) SetState(v any) error { return c.m.set(v) }

// DeleteState deletes the entity's state: it has none afterwards, and once
// it holds no lock either, CleanEntityStorage removes it. In an
// event-sourced entity it emits a DeletedEventType event, so the deletion
// holds when the state is rebuilt from the events.
func (c *Context) DeleteState() {
	if c.m.eventSourced() {
		c.emitted = append(c.emitted, Event{Type: DeletedEventType, conv: c.conv})
		return
	}
	c.m.reset()
}

// Emit records a domain event of an event-sourced entity; it is applied to
// the state and stored if the operation succeeds, and dropped if it fails.
func (c *Context) Emit(eventType string, v any) error {
	if !c.m.eventSourced() {
		return fmt.Errorf("%w: Emit in function-style entity %s", ErrWrongStyle, c.id.Name)
	}
	if eventType == "" {
		return fmt.Errorf("entities: Emit needs an event type")
	}
	data, err := c.conv.Marshal(v)
	if err != nil {
		return fmt.Errorf("entities: encode event %q: %w", eventType, err)
	}
	c.emitted = append(c.emitted, Event{Type: eventType, Data: data, conv: c.conv})
	return nil
}

// SignalEntity sends a one-way operation to another entity (or this one),
// after this operation's outcome is recorded.
func (c *Context) SignalEntity(id ID, operation string, input any, opts ...SignalOption) error {
	if err := id.Validate(); err != nil {
		return err
	}
	if operation == "" {
		return fmt.Errorf("entities: signal to %s: the operation name is empty", id)
	}
	data, err := c.conv.Marshal(input)
	if err != nil {
		return fmt.Errorf("entities: encode the input of %s operation %q: %w", id, operation, err)
	}
	s := Signal{Target: id.Normalized(), Operation: Operation{RequestID: c.nextID(), Name: operation, Input: data}}
	for _, f := range opts {
		f(&s)
	}
	c.signals = append(c.signals, s)
	return nil
}

// StartOrchestration starts an orchestration after this operation's
// outcome is recorded, and returns its instance ID: instanceID if given,
// else one derived from the operation, the same however often the start
// is repeated.
func (c *Context) StartOrchestration(name string, input any, instanceID string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("entities: StartOrchestration needs the orchestrator's name")
	}
	data, err := c.conv.Marshal(input)
	if err != nil {
		return "", fmt.Errorf("entities: encode the input of orchestration %q: %w", name, err)
	}
	requestID := c.nextID()
	if instanceID == "" {
		// A name-based UUID: valid as an instance ID whatever the request
		// ID holds.
		instanceID = strings.ReplaceAll(uuid.NewSHA1(uuid.NameSpaceOID, []byte(c.id.String()+"\x00"+requestID)).String(), "-", "")
	}
	c.starts = append(c.starts, Start{Orchestrator: name, InstanceID: instanceID, Input: data, RequestID: requestID})
	return instanceID, nil
}

// nextID derives the ID of the operation's next outgoing message from its
// request ID, so that it is the same however often it is sent.
func (c *Context) nextID() string {
	c.sends++
	return fmt.Sprintf("%s:%d", c.op.RequestID, c.sends)
}
