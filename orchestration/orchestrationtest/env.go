// Package orchestrationtest runs orchestrators in memory, for tests: with
// real or stubbed activities, a virtual clock that skips ahead to the next
// timer, external events raised at chosen moments, and the history of every
// instance to inspect. It drives the same executor the runtime uses, one
// input per episode, and after every episode it replays the whole history
// into a fresh instance and fails if replay disagrees with what incremental
// execution did, so every test is also a determinism test.
//
// It also replays recorded histories (JSON files, see SaveHistory) against
// current code and reports non-determinism, for checking that a code change
// is safe for instances already running.
package orchestrationtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/orchestration"
)

// ActivityFunc is an activity as the harness runs it: encoded input in,
// encoded output out.
type ActivityFunc func(ctx context.Context, input []byte) ([]byte, error)

// Options configure an Env.
type Options struct {
	// Executor options for every instance.
	Executor orchestration.Options
	// Start is the virtual clock's initial time; 2026-01-01 UTC when zero.
	Start time.Time
	// SkipReplayCheck turns off the replay comparison after every episode.
	SkipReplayCheck bool
}

// Env is an in-memory world of orchestration instances.
type Env struct {
	reg        *orchestration.Registry
	opts       Options
	conv       orchestration.Converter
	now        time.Time
	activities map[string]ActivityFunc
	instances  map[string]*instance
	kinds      map[string]*entities.Kind
	entities   map[string]*entity
	queue      []delivery
	timers     []timer
	// entityTimers are signals scheduled for later; each has a timer of
	// event ID -2 in timers.
	entityTimers []entityTimer
	err          error
}

type instance struct {
	id      string
	exec    *orchestration.Instance
	history []orchestration.HistoryEvent // every generation, in order
	current int                          // where the current generation starts in history
	// activityCalls counts how often each activity decision ran.
	activityCalls int
}

// delivery is an input waiting to be delivered, or an activity to run.
// Outcomes (and activities) carry the generation of the instance that made
// the decision, so a later generation does not take them for its own.
type delivery struct {
	instanceID string
	generation int32
	input      orchestration.HistoryEvent
	activity   *orchestration.HistoryEvent
	entity     *entityRequest
}

type timer struct {
	instanceID string
	generation int32
	at         time.Time
	eventID    int32
}

// New returns an empty Env running the orchestrators of reg.
func New(reg *orchestration.Registry, opts Options) *Env {
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	conv := opts.Executor.Converter
	if conv == nil {
		conv = orchestration.JSON
	}
	return &Env{
		reg:        reg,
		opts:       opts,
		conv:       conv,
		now:        opts.Start,
		activities: make(map[string]ActivityFunc),
		instances:  make(map[string]*instance),
		kinds:      make(map[string]*entities.Kind),
		entities:   make(map[string]*entity),
	}
}

// RegisterActivity adds an activity (real or stub) under name.
func (e *Env) RegisterActivity(name string, fn ActivityFunc) {
	e.activities[name] = fn
}

// Activity registers a typed activity (real or stub) under name.
func Activity[In, Out any](e *Env, name string, fn func(context.Context, In) (Out, error)) {
	e.RegisterActivity(name, func(ctx context.Context, input []byte) ([]byte, error) {
		var in In
		if err := e.conv.Unmarshal(input, &in); err != nil {
			return nil, fmt.Errorf("decode input of activity %q: %w", name, err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		return e.conv.Marshal(out)
	})
}

// Now returns the virtual time.
func (e *Env) Now() time.Time { return e.now }

// StartOptions configure Start.
type StartOptions struct {
	// InstanceID; "instance-N" when empty.
	InstanceID string
	Version    string
	// StartAt schedules the start for a later virtual time.
	StartAt time.Time
}

// Start starts an orchestration and runs it until it has nothing left to do
// without time passing. It returns the instance ID.
func (e *Env) Start(name string, input any, opts StartOptions) (string, error) {
	data, err := e.conv.Marshal(input)
	if err != nil {
		return "", fmt.Errorf("orchestrationtest: encode input: %w", err)
	}
	id := opts.InstanceID
	if id == "" {
		id = fmt.Sprintf("instance-%d", len(e.instances)+1)
	}
	if _, ok := e.instances[id]; ok {
		return "", fmt.Errorf("orchestrationtest: instance %q already exists", id)
	}
	start := orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: name, InstanceID: id, Version: opts.Version, Input: data, FireAt: opts.StartAt}
	e.create(start)
	return id, e.RunUntilIdle()
}

func (e *Env) create(start orchestration.HistoryEvent) {
	in := &instance{id: start.InstanceID, exec: orchestration.NewInstance(e.reg, e.opts.Executor)}
	e.instances[in.id] = in
	if start.FireAt.After(e.now) {
		// A scheduled start: record ExecutionStarted now, run the first
		// episode when the start time comes.
		start.Timestamp = e.now
		in.history = append(in.history, start)
		if _, err := in.exec.Replay(in.history); err != nil {
			e.fail(err)
		}
		e.timers = append(e.timers, timer{instanceID: in.id, at: start.FireAt, eventID: -1})
		return
	}
	e.queue = append(e.queue, delivery{instanceID: in.id, input: start})
}

// RaiseEvent raises an external event on an instance; it is delivered by the
// next Run.
func (e *Env) RaiseEvent(instanceID, name string, payload any) error {
	data, err := e.conv.Marshal(payload)
	if err != nil {
		return fmt.Errorf("orchestrationtest: encode event: %w", err)
	}
	return e.send(instanceID, orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: name, Input: data})
}

// Terminate terminates an instance at its next episode.
func (e *Env) Terminate(instanceID, reason string) error {
	return e.control(instanceID, orchestration.ExecutionTerminated, reason)
}

// Suspend suspends an instance: inputs are held until Resume.
func (e *Env) Suspend(instanceID, reason string) error {
	return e.control(instanceID, orchestration.ExecutionSuspended, reason)
}

// Resume resumes a suspended instance.
func (e *Env) Resume(instanceID, reason string) error {
	return e.control(instanceID, orchestration.ExecutionResumed, reason)
}

// control sends a terminate, suspend or resume with its reason, encoded
// like any payload (no reason is no payload).
func (e *Env) control(instanceID string, kind orchestration.EventKind, reason string) error {
	var data []byte
	if reason != "" {
		var err error
		if data, err = e.conv.Marshal(reason); err != nil {
			return fmt.Errorf("orchestrationtest: encode reason: %w", err)
		}
	}
	return e.send(instanceID, orchestration.HistoryEvent{Kind: kind, Input: data})
}

func (e *Env) send(instanceID string, ev orchestration.HistoryEvent) error {
	if _, ok := e.instances[instanceID]; !ok {
		return fmt.Errorf("orchestrationtest: no instance %q", instanceID)
	}
	e.queue = append(e.queue, delivery{instanceID: instanceID, input: ev})
	return e.RunUntilIdle()
}

// RunUntilIdle delivers queued inputs and runs activities until nothing is
// left to do without time passing. It returns the first error of the
// harness itself (a replay that disagreed with incremental execution).
func (e *Env) RunUntilIdle() error {
	for len(e.queue) > 0 && e.err == nil {
		d := e.queue[0]
		e.queue = e.queue[1:]
		if d.activity != nil {
			e.runActivity(d)
			continue
		}
		if d.entity != nil {
			e.runEntity(d.entity)
			continue
		}
		if d.input.Kind.IsOutcome() && d.generation != e.instances[d.instanceID].generation() {
			continue // the outcome of an earlier generation's decision
		}
		e.deliver(d.instanceID, d.input)
	}
	return e.err
}

// Advance moves the virtual clock forward by d, firing the timers that come
// due on the way, in order.
func (e *Env) Advance(d time.Duration) error {
	return e.advanceTo(e.now.Add(d))
}

func (e *Env) advanceTo(until time.Time) error {
	for e.err == nil {
		if err := e.RunUntilIdle(); err != nil {
			return err
		}
		next, ok := e.nextTimer()
		if !ok || next.at.After(until) {
			break
		}
		e.fireNext()
	}
	if until.After(e.now) {
		e.now = until
	}
	return e.err
}

// RunToCompletion runs instanceID, skipping time to each next timer, until
// it completes, fails or is terminated, or nothing can make it progress
// (it waits for an event no one raises); then it returns its status.
func (e *Env) RunToCompletion(instanceID string) (orchestration.Status, error) {
	in, ok := e.instances[instanceID]
	if !ok {
		return 0, fmt.Errorf("orchestrationtest: no instance %q", instanceID)
	}
	for e.err == nil {
		if err := e.RunUntilIdle(); err != nil {
			return 0, err
		}
		if in.exec.Status().IsTerminal() || len(e.timers) == 0 {
			break
		}
		e.fireNext()
	}
	return in.exec.Status(), e.err
}

func (e *Env) nextTimer() (timer, bool) {
	if len(e.timers) == 0 {
		return timer{}, false
	}
	return slices.MinFunc(e.timers, compareTimers), true
}

func compareTimers(a, b timer) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	if a.instanceID != b.instanceID {
		if a.instanceID < b.instanceID {
			return -1
		}
		return 1
	}
	return int(a.eventID - b.eventID)
}

// fireNext advances the clock to the earliest timer and fires it.
func (e *Env) fireNext() {
	t, _ := e.nextTimer()
	e.timers = slices.DeleteFunc(e.timers, func(x timer) bool { return x == t })
	if t.at.After(e.now) {
		e.now = t.at
	}
	switch t.eventID {
	case -1:
		e.deliver(t.instanceID) // the first episode of a scheduled start
		return
	case -2:
		e.fireEntityTimer()
		return
	}
	e.queue = append(e.queue, delivery{instanceID: t.instanceID, generation: t.generation,
		input: orchestration.HistoryEvent{Kind: orchestration.TimerFired, EventID: t.eventID, FireAt: t.at}})
}

// deliver runs one episode of an instance with the given inputs.
func (e *Env) deliver(instanceID string, inputs ...orchestration.HistoryEvent) {
	in := e.instances[instanceID]
	if in.exec.Status().IsTerminal() {
		return
	}
	ep, err := in.exec.Step(e.now, inputs...)
	if errors.Is(err, orchestration.ErrInstanceCompleted) {
		return
	}
	if err != nil {
		e.fail(err)
		return
	}
	e.record(in, ep)
}

// record appends an episode's events to the instance's history, checks the
// history by replaying it, and acts on the decisions.
func (e *Env) record(in *instance, ep orchestration.Episode) {
	events := ep.Events
	if ep.ContinuedAsNew {
		events = ep.Events[:ep.NewGeneration]
	}
	in.history = append(in.history, events...)
	if !e.opts.SkipReplayCheck {
		e.checkReplay(in)
	}
	for n := range events {
		e.act(in, &events[n])
	}
	if ep.ContinuedAsNew {
		// The timers of the generation that ended never fire.
		gen := in.generation()
		e.timers = slices.DeleteFunc(e.timers, func(t timer) bool { return t.instanceID == in.id && t.generation == gen })
		in.current = len(in.history)
		in.history = append(in.history, ep.Events[ep.NewGeneration:]...)
		in.exec = orchestration.NewInstance(e.reg, e.opts.Executor)
		next, err := in.exec.Replay(in.history[in.current:])
		if err != nil {
			e.fail(err)
			return
		}
		e.record(in, next)
	}
}

// checkReplay replays the current generation into a fresh instance and
// compares its state with the live one.
func (e *Env) checkReplay(in *instance) {
	fresh := orchestration.NewInstance(e.reg, e.opts.Executor)
	defer fresh.Close()
	ep, err := fresh.Replay(in.history[in.current:])
	if err == nil {
		err = fresh.Err()
	}
	if err != nil && !sameError(err, in.exec.Err()) {
		e.fail(fmt.Errorf("orchestrationtest: instance %q: replaying its history: %w", in.id, err))
		return
	}
	if len(ep.Events) > 0 && !ep.ContinuedAsNew {
		e.fail(fmt.Errorf("orchestrationtest: instance %q: replaying its history made new decisions %v", in.id, kinds(ep.Events)))
		return
	}
	type state struct {
		Status       orchestration.Status
		Output       []byte
		Failure      *orchestration.FailureDetails
		CustomStatus []byte
		Pending      []orchestration.HistoryEvent
	}
	snapshot := func(x *orchestration.Instance) state {
		out, failure := x.Output()
		return state{x.Status(), out, failure, x.CustomStatus(), x.Pending()}
	}
	live, replayed := snapshot(in.exec), snapshot(fresh)
	if reflect.DeepEqual(live, replayed) {
		return // the common case, without go-cmp's cost on long pending lists
	}
	if diff := cmp.Diff(live, replayed, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(orchestration.FailureDetails{}, "StackTrace")); diff != "" {
		e.fail(fmt.Errorf("orchestrationtest: instance %q: replay disagrees with incremental execution (-live +replay):\n%s", in.id, diff))
	}
}

// sameError reports whether a replay failed with the error the live
// instance failed with: each run makes its own error value, so they are
// compared by type and message.
func sameError(replayed, live error) bool {
	return live != nil && reflect.TypeOf(replayed) == reflect.TypeOf(live) && replayed.Error() == live.Error()
}

func kinds(events []orchestration.HistoryEvent) []string {
	out := make([]string, len(events))
	for n, ev := range events {
		out[n] = ev.Kind.String()
	}
	return out
}

// generation returns the instance's current generation.
func (in *instance) generation() int32 {
	start, _ := in.exec.Started()
	return start.Generation
}

// act carries out a decision.
func (e *Env) act(in *instance, ev *orchestration.HistoryEvent) {
	gen := in.generation()
	switch ev.Kind {
	case orchestration.TaskScheduled:
		cp := *ev
		e.queue = append(e.queue, delivery{instanceID: in.id, generation: gen, activity: &cp})
	case orchestration.TimerCreated:
		e.timers = append(e.timers, timer{instanceID: in.id, generation: gen, at: ev.FireAt, eventID: ev.EventID})
	case orchestration.SubOrchestrationInstanceCreated:
		if _, exists := e.instances[ev.InstanceID]; exists {
			e.queue = append(e.queue, delivery{instanceID: in.id, generation: gen, input: orchestration.HistoryEvent{
				Kind: orchestration.SubOrchestrationInstanceFailed, EventID: ev.EventID,
				Failure: &orchestration.FailureDetails{ErrorType: "InstanceExists", Message: fmt.Sprintf("instance %q already exists", ev.InstanceID)},
			}})
			return
		}
		start, _ := in.exec.Started()
		e.create(orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: ev.Name, Version: ev.Version, InstanceID: ev.InstanceID, Input: ev.Input,
			Parent: &orchestration.ParentInstance{InstanceID: in.id, Name: start.Name, EventID: ev.EventID, Generation: gen}})
	case orchestration.EventSent:
		if _, ok := e.instances[ev.InstanceID]; ok {
			e.queue = append(e.queue, delivery{instanceID: ev.InstanceID, input: orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: ev.Name, Input: ev.Input}})
		}
	case orchestration.ExecutionCompleted:
		e.notifyParent(in, ev)
	case orchestration.EntityOperationSignaled, orchestration.EntityOperationCalled,
		orchestration.EntityLockRequested, orchestration.EntityUnlockSent:
		e.actOnEntity(in, ev)
	}
}

// notifyParent reports a sub-orchestration's end to its parent.
func (e *Env) notifyParent(in *instance, ev *orchestration.HistoryEvent) {
	start, _ := in.exec.Started()
	if start.Parent == nil || ev.Status == orchestration.StatusContinuedAsNew {
		return
	}
	done := orchestration.SubOrchestrationOutcome(start.Parent.EventID, *ev)
	e.queue = append(e.queue, delivery{instanceID: start.Parent.InstanceID, generation: start.Parent.Generation, input: done})
}

// runActivity runs an activity and queues its outcome.
func (e *Env) runActivity(d delivery) {
	instanceID, ev := d.instanceID, d.activity
	in := e.instances[instanceID]
	in.activityCalls++
	fn := e.activities[ev.Name] // nil when there is none: RunActivity reports it
	result, failure := orchestration.RunActivity(context.Background(), ev.Name, fn, ev.Input, e.opts.Executor.MaxPayloadSize)
	out := orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: ev.EventID, Result: result}
	if failure != nil {
		out = orchestration.HistoryEvent{Kind: orchestration.TaskFailed, EventID: ev.EventID, Failure: failure}
	}
	e.queue = append(e.queue, delivery{instanceID: instanceID, generation: d.generation, input: out})
}

func (e *Env) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// Status returns an instance's runtime status.
func (e *Env) Status(instanceID string) orchestration.Status {
	if in, ok := e.instances[instanceID]; ok {
		return in.exec.Status()
	}
	return orchestration.StatusPending
}

// Output decodes a completed instance's output into v, or returns its
// failure as an error.
func (e *Env) Output(instanceID string, v any) error {
	in, ok := e.instances[instanceID]
	if !ok {
		return fmt.Errorf("orchestrationtest: no instance %q", instanceID)
	}
	out, failure := in.exec.Output()
	if failure != nil {
		return fmt.Errorf("orchestrationtest: instance %q failed: %s", instanceID, failure)
	}
	return e.conv.Unmarshal(out, v)
}

// Failure returns an instance's failure details, if it failed.
func (e *Env) Failure(instanceID string) *orchestration.FailureDetails {
	if in, ok := e.instances[instanceID]; ok {
		_, f := in.exec.Output()
		return f
	}
	return nil
}

// Err returns the executor error that stopped an instance (for example a
// *orchestration.NonDeterminismError), if any.
func (e *Env) Err(instanceID string) error {
	if in, ok := e.instances[instanceID]; ok {
		return in.exec.Err()
	}
	return nil
}

// CustomStatus decodes an instance's custom status into v.
func (e *Env) CustomStatus(instanceID string, v any) error {
	in, ok := e.instances[instanceID]
	if !ok {
		return fmt.Errorf("orchestrationtest: no instance %q", instanceID)
	}
	return e.conv.Unmarshal(in.exec.CustomStatus(), v)
}

// History returns every event recorded for an instance, across
// ContinueAsNew generations, in order.
func (e *Env) History(instanceID string) []orchestration.HistoryEvent {
	if in, ok := e.instances[instanceID]; ok {
		return slices.Clone(in.history)
	}
	return nil
}

// ActivityCalls returns how many activity executions an instance caused.
func (e *Env) ActivityCalls(instanceID string) int {
	if in, ok := e.instances[instanceID]; ok {
		return in.activityCalls
	}
	return 0
}

// Close stops every instance's orchestrator goroutine.
func (e *Env) Close() {
	for _, in := range e.instances {
		in.exec.Close()
	}
}
