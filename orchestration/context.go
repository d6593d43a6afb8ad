package orchestration

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Context is what an orchestrator sees of the world. It is deliberately not
// a context.Context: everything on it is deterministic, recorded in history
// and replayed, so the orchestrator must use it (and nothing else) for
// time, waiting, randomness and work with side effects. A Context must only
// be used on the orchestrator's own goroutine.
type Context struct {
	inst *Instance
}

// ID returns the instance ID.
func (c *Context) ID() string { return c.inst.start.InstanceID }

// Name returns the orchestrator's registered name.
func (c *Context) Name() string { return c.inst.start.Name }

// Version returns the version the instance was started with.
func (c *Context) Version() string { return c.inst.start.Version }

// Parent returns the orchestration that started this one as a
// sub-orchestration, or nil.
func (c *Context) Parent() *ParentInstance { return c.inst.start.Parent }

// Generation counts how often the instance continued as new.
func (c *Context) Generation() int { return int(c.inst.start.Generation) }

// Now returns the current time of the episode: the same on every replay.
func (c *Context) Now() time.Time { return c.inst.now }

// IsReplaying reports whether the code is re-executing recorded history.
func (c *Context) IsReplaying() bool { return c.inst.replaying() }

// Logger returns a logger that is silent while the instance replays, so
// each message is logged once.
func (c *Context) Logger() *slog.Logger { return c.inst.logger() }

// NewUUID returns a deterministic UUID: a name-based (version 5) UUID of the
// instance ID, the episode time and a counter, as Durable Functions does.
func (c *Context) NewUUID() uuid.UUID {
	i := c.inst
	name := i.start.InstanceID + "_" + i.now.UTC().Format(time.RFC3339Nano) + "_" + strconv.Itoa(i.uuidCounter)
	i.uuidCounter++
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name))
}

// Input decodes the instance's input into v.
func (c *Context) Input(v any) error {
	if err := c.inst.opts.Converter.Unmarshal(c.inst.start.Input, v); err != nil {
		return fmt.Errorf("orchestration: decode input of %q into %T: %w", c.inst.start.Name, v, err)
	}
	return nil
}

// CallOption configures CallActivity and CallSubOrchestrator.
type CallOption func(*callOptions)

type callOptions struct {
	retry      *RetryPolicy
	instanceID string
	version    string
}

// WithRetry retries a failed call according to p, waiting on durable timers.
func WithRetry(p RetryPolicy) CallOption {
	return func(o *callOptions) { o.retry = &p }
}

// WithInstanceID sets a sub-orchestration's instance ID; by default it is
// derived from the parent's ID and the call's sequence number.
func WithInstanceID(id string) CallOption {
	return func(o *callOptions) { o.instanceID = id }
}

// WithVersion sets the version passed to the activity or sub-orchestration.
func WithVersion(v string) CallOption {
	return func(o *callOptions) { o.version = v }
}

func applyCallOptions(opts []CallOption) callOptions {
	if len(opts) == 0 {
		return callOptions{} // o below escapes to the options; spare the common call
	}
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// CallActivity schedules the activity registered under name with input.
// Activities run at least once; awaiting the task gives the result or a
// *TaskFailedError.
func (c *Context) CallActivity(name string, input any, opts ...CallOption) *Task {
	o := applyCallOptions(opts)
	return c.inst.call(activityTask, name, input, o)
}

// CallSubOrchestrator starts the orchestrator registered under name as a
// child instance and completes with its output.
func (c *Context) CallSubOrchestrator(name string, input any, opts ...CallOption) *Task {
	o := applyCallOptions(opts)
	return c.inst.call(subOrchestrationTask, name, input, o)
}

// CreateTimer returns a durable timer that fires after d.
func (c *Context) CreateTimer(d time.Duration) *Task {
	return c.inst.timer(c.inst.now.Add(d))
}

// CreateTimerAt returns a durable timer that fires at t.
func (c *Context) CreateTimerAt(t time.Time) *Task {
	return c.inst.timer(t)
}

// WaitOption configures WaitForEvent.
type WaitOption func(*waitOptions)

type waitOptions struct {
	timeout time.Duration
}

// WithTimeout makes WaitForEvent fail with a *TimeoutError if no event
// arrives within d (measured on a durable timer).
func WithTimeout(d time.Duration) WaitOption {
	return func(o *waitOptions) { o.timeout = d }
}

// WaitForEvent waits for the next external event raised with name (names
// are case-insensitive). Events that arrived before anyone waited are
// buffered; each event satisfies one wait, oldest first.
func (c *Context) WaitForEvent(name string, opts ...WaitOption) *Task {
	var o waitOptions
	for _, f := range opts {
		f(&o)
	}
	return c.inst.waitForEvent(name, o)
}

// WhenAll returns a task that completes when all tasks have; awaiting it
// returns the first error in argument order.
func (c *Context) WhenAll(tasks ...Awaitable) *Task { return c.inst.whenAll(tasks) }

// WhenAny returns a task that completes with the index of the first task to
// complete; await it into an *int. Timers and event waits that lose are
// cancelled.
func (c *Context) WhenAny(tasks ...Awaitable) *Task { return c.inst.whenAny(tasks) }

// ContinueAsNewOption configures ContinueAsNew.
type ContinueAsNewOption func(*continueAsNew)

// DropUnprocessedEvents discards buffered external events instead of
// carrying them into the new generation.
func DropUnprocessedEvents() ContinueAsNewOption {
	return func(c *continueAsNew) { c.carryEvents = false }
}

// WithNewVersion starts the new generation with another version.
func WithNewVersion(v string) ContinueAsNewOption {
	return func(c *continueAsNew) { c.version = v }
}

// ContinueAsNew restarts the instance with a fresh history and input once
// the orchestrator returns (its return value is ignored). External events
// that arrived but were not consumed are carried into the new generation
// unless DropUnprocessedEvents is given. Eternal orchestrations use it to
// keep their history short.
func (c *Context) ContinueAsNew(input any, opts ...ContinueAsNewOption) error {
	data, err := c.inst.encode("ContinueAsNew input", input)
	if err != nil {
		return err
	}
	can := &continueAsNew{input: data, carryEvents: true}
	for _, f := range opts {
		f(can)
	}
	c.inst.continueAsNew = can
	return nil
}

// SetCustomStatus records a value that status queries show, for progress
// reporting. Its encoding is limited to Options.MaxCustomStatusSize (16 KiB
// by default).
func (c *Context) SetCustomStatus(v any) error {
	i := c.inst
	data, err := i.opts.Converter.Marshal(v)
	if err != nil {
		return fmt.Errorf("orchestration: encode custom status: %w", err)
	}
	if len(data) > i.opts.MaxCustomStatusSize {
		return &LimitError{What: "custom status size", Value: len(data), Limit: i.opts.MaxCustomStatusSize}
	}
	i.customStatus = data
	if !i.replaying() {
		i.customDirty = true
	}
	return nil
}

// SendEvent raises an event on another orchestration instance. It is
// one-way: nothing reports whether the instance exists.
func (c *Context) SendEvent(instanceID, name string, payload any) error {
	i := c.inst
	data, err := i.encode("event payload", payload)
	if err != nil {
		return err
	}
	i.decide(HistoryEvent{Kind: EventSent, InstanceID: instanceID, Name: name, Input: data}, nil)
	return nil
}

// encode marshals a payload and checks its size.
func (i *Instance) encode(what string, v any) ([]byte, error) {
	data, err := i.opts.Converter.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("orchestration: encode %s: %w", what, err)
	}
	if len(data) > i.opts.MaxPayloadSize {
		return nil, &LimitError{What: what + " size", Value: len(data), Limit: i.opts.MaxPayloadSize}
	}
	return data, nil
}

// call schedules an activity or sub-orchestration, with retries when asked.
func (i *Instance) call(kind taskKind, name string, input any, o callOptions) *Task {
	data, err := i.encode("input", input)
	if err != nil {
		t := &Task{inst: i, kind: kind, name: name}
		t.complete(nil, err)
		return t
	}
	if o.retry != nil {
		return i.retry(kind, name, data, o)
	}
	return i.schedule(kind, name, data, o)
}

// schedule makes one activity or sub-orchestration decision.
func (i *Instance) schedule(kind taskKind, name string, data []byte, o callOptions) *Task {
	t := &Task{inst: i, kind: kind, name: name}
	if kind == subOrchestrationTask && i.section != nil {
		t.complete(nil, &LockingRulesError{Rule: "sub-orchestrations cannot be started inside a critical section"})
		return t
	}
	if kind == activityTask {
		i.decide(HistoryEvent{Kind: TaskScheduled, Name: name, Version: o.version, Input: data}, t)
		return t
	}
	id := o.instanceID
	if id == "" {
		id = fmt.Sprintf("%s:%04x", i.start.InstanceID, i.seq)
	}
	i.decide(HistoryEvent{Kind: SubOrchestrationInstanceCreated, Name: name, Version: o.version, InstanceID: id, Input: data}, t)
	return t
}

// timer makes a TimerCreated decision.
func (i *Instance) timer(at time.Time) *Task {
	t := &Task{inst: i, kind: timerTask, name: "timer"}
	i.decide(HistoryEvent{Kind: TimerCreated, FireAt: at.UTC()}, t)
	if t.decision.Kind == TimerCreated { // decided: the instance goes on
		i.timers[t.decision.EventID] = t.decision.FireAt
	}
	return t
}

// waitForEvent registers a waiter, or takes a buffered event.
func (i *Instance) waitForEvent(name string, o waitOptions) *Task {
	w := &Task{inst: i, kind: eventTask, name: name}
	q := i.queue(name)
	if len(q.buffered) > 0 {
		payload := q.buffered[0].payload
		q.buffered = q.buffered[1:]
		w.complete(payload, nil)
		return w
	}
	q.waiters = append(q.waiters, w)
	w.cancel = func() {
		q.waiters = slices.DeleteFunc(q.waiters, func(t *Task) bool { return t == w })
	}
	if o.timeout <= 0 {
		return w
	}
	timeout := i.timer(i.now.Add(o.timeout))
	timed := &Task{inst: i, kind: eventTask, name: name}
	timed.cancel = func() {
		w.abandon()
		timeout.abandon()
	}
	w.then(func(w *Task) {
		if w.err == nil {
			timeout.abandon()
			timed.complete(w.result, nil)
		}
	})
	timeout.then(func(t *Task) {
		if t.err == nil {
			w.abandon()
			timed.complete(nil, &TimeoutError{EventName: name})
		}
	})
	return timed
}

// replaySafeHandler drops log records while the instance replays.
type replaySafeHandler struct {
	inner slog.Handler
	inst  *Instance
}

func (h replaySafeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.inst.replaying() && h.inner.Enabled(ctx, l)
}

func (h replaySafeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.inst.replaying() {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h replaySafeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return replaySafeHandler{inner: h.inner.WithAttrs(attrs), inst: h.inst}
}

func (h replaySafeHandler) WithGroup(name string) slog.Handler {
	return replaySafeHandler{inner: h.inner.WithGroup(name), inst: h.inst}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
