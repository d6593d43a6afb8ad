package orchestration

import (
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"reflect"
	"runtime/debug"
	"strings"
	"time"
)

// Instance executes one generation of one orchestration instance: history
// in, decisions out, no I/O. The runtime keeps an Instance alive between
// episodes, so an episode costs only the new events, not a replay.
//
// # How it runs
//
// The orchestrator function runs as a coroutine (iter.Pull), never at the
// same time as the caller: control passes back and forth like a baton. When
// the code awaits a task that has no outcome yet, it applies the next history
// event itself and carries on as soon as the task completes. So a full replay
// costs no switches at all; only when the history runs out does the code
// park and hand control back to the caller of Replay or Step, and a
// coroutine switch costs far less than waking a goroutine.
//
// Because the same loop applies the same events in the same order, a replay
// reproduces exactly the state that incremental execution built.
//
// # Matching decisions
//
// Each decision the code makes (CallActivity, CreateTimer, ...) takes the
// next sequence number. While history remains to be replayed, the decision is
// held as pending until the replay reaches the recorded event with that
// sequence number, which must be of the same kind and name. The
// OrchestratorCompleted event that closes every recorded episode proves that
// the episode's decisions are all recorded, so a pending decision left at
// that point is a call the code did not make back then. Decisions made after
// the end of the recorded history are new, and go into the Episode.
//
// An Instance is not safe for concurrent use.
type Instance struct {
	reg  *Registry
	opts Options
	ctx  *Context

	// stored is the recorded history passed to Replay, live the events of
	// the episode being executed; cursor counts the events applied of both.
	stored []HistoryEvent
	live   []HistoryEvent
	cursor int

	started     bool
	start       HistoryEvent
	fn          Orchestrator
	episodeOpen bool
	now         time.Time
	length      int // events in this generation's history
	actions     int // decisions in this episode

	seq     int32
	tasks   []*Task // by sequence number
	pending map[int32]pendingDecision

	events     map[string]*eventQueue
	requestIDs map[string]struct{}

	suspended bool
	deferred  []HistoryEvent

	status       Status
	result       []byte
	failure      *FailureDetails
	customStatus []byte
	customDirty  bool
	completion   *HistoryEvent // issued during replay, not yet confirmed
	completed    bool
	// hardFailed is the error that stopped the executor (see Err).
	hardFailed    error
	continueAsNew *continueAsNew
	uuidCounter   int

	// The orchestrator runs as a coroutine (iter.Pull): resume switches to
	// it, and it parks by yielding back, with no trip through the scheduler.
	fnState  fnState
	resume   func() (struct{}, bool)
	stop     func()
	park     func(struct{}) bool
	aborting bool
}

type fnState uint8

const (
	fnNotStarted fnState = iota
	fnAlive              // the coroutine exists: running, or parked in await
	fnFinished
)

// pendingDecision is a decision made while replaying, waiting for the
// recorded event that confirms it.
type pendingDecision struct {
	event HistoryEvent
}

// describeCall names the call that made a decision, for error messages.
func describeCall(ev *HistoryEvent) string {
	switch ev.Kind {
	case TaskScheduled:
		return fmt.Sprintf("CallActivity(%q)", ev.Name)
	case SubOrchestrationInstanceCreated:
		return fmt.Sprintf("CallSubOrchestrator(%q)", ev.Name)
	case TimerCreated:
		return fmt.Sprintf("CreateTimer(%s)", ev.FireAt.Format(time.RFC3339Nano))
	case EventSent:
		return fmt.Sprintf("SendEvent(%q, %q)", ev.InstanceID, ev.Name)
	}
	return ev.Kind.String()
}

type eventQueue struct {
	buffered [][]byte
	waiters  []*Task
}

type continueAsNew struct {
	input       []byte
	version     string
	carryEvents bool
}

// abortSignal unwinds the orchestrator's goroutine when the instance is
// terminated, fails non-deterministically, or is closed.
type abortSignal struct{}

// Episode is the outcome of Replay or Step.
type Episode struct {
	// Events are the events to append to the instance's history, in order.
	// For Step: OrchestratorStarted, the inputs that were kept, the
	// decisions, OrchestratorCompleted. For Replay: the decisions the code
	// made after the end of the recorded history, if any, and
	// OrchestratorCompleted. Inputs that were already recorded (a duplicate
	// completion or request) are dropped and not returned.
	Events []HistoryEvent
	// Status is the instance's status after the episode.
	Status Status
	// ContinuedAsNew is true when the instance restarted: Events end with
	// ExecutionCompleted(ContinuedAsNew), OrchestratorStarted and the new
	// generation's ExecutionStarted (and any carried-over EventRaised). The
	// runtime should truncate the history before that OrchestratorStarted
	// and continue with a new Instance replaying from there.
	ContinuedAsNew bool
	// NewGeneration is the index in Events of the new generation's first
	// event when ContinuedAsNew is true.
	NewGeneration int
}

// NewInstance returns an instance that has not seen any history yet.
func NewInstance(reg *Registry, opts Options) *Instance {
	i := &Instance{
		reg:     reg,
		opts:    opts.withDefaults(),
		pending: make(map[int32]pendingDecision),
		events:  make(map[string]*eventQueue),
		status:  StatusPending,
	}
	i.ctx = &Context{inst: i}
	return i
}

// Replay applies a recorded history (of the current generation; events
// before the last ExecutionStarted are skipped) and runs the orchestrator
// through it. The instance keeps the state for later Steps. Decisions the
// code makes after the end of the history are returned as new events.
func (i *Instance) Replay(history []HistoryEvent) (Episode, error) {
	if i.cursor != 0 || i.stored != nil || i.live != nil {
		return Episode{}, errors.New("orchestration: Replay must be the first call on an instance")
	}
	for n := len(history) - 1; n >= 0; n-- {
		if history[n].Kind == ExecutionStarted {
			if n > 0 && history[n-1].Kind == OrchestratorStarted {
				n-- // the generation's first episode began just before
			}
			history = history[n:]
			break
		}
	}
	i.stored = history
	i.length = len(history)
	i.drive()
	i.flushPending()
	return i.finishEpisode(), nil
}

// Step runs a new episode at time now with the given inputs (completions,
// fired timers, raised events, terminate/suspend/resume, or the
// ExecutionStarted of a new instance).
func (i *Instance) Step(now time.Time, inputs ...HistoryEvent) (Episode, error) {
	if i.completed || i.status.IsTerminal() {
		return Episode{}, ErrInstanceCompleted
	}
	if !i.started && !hasStart(inputs) {
		return Episode{}, ErrNotStarted
	}
	i.stored = nil
	i.cursor = 0
	i.live = make([]HistoryEvent, 0, len(inputs)+4)
	i.live = append(i.live, HistoryEvent{Kind: OrchestratorStarted, Timestamp: now})
	i.live = i.appendNew(i.live, now, inputs)
	if len(inputs) > 0 && len(i.live) == 1 {
		// Every input was already recorded: there is no episode.
		i.live = nil
		return Episode{Status: i.status}, nil
	}
	i.length += len(i.live)
	i.drive()
	return i.finishEpisode(), nil
}

// Record applies inputs to an instance whose orchestrator has not started
// yet (a start scheduled for later), without an episode: raised events are
// buffered for the code to find when it starts, a termination ends the
// instance at once. It returns the events to append (no
// OrchestratorStarted or OrchestratorCompleted: nothing ran).
func (i *Instance) Record(now time.Time, inputs ...HistoryEvent) (Episode, error) {
	if i.completed || i.status.IsTerminal() {
		return Episode{}, ErrInstanceCompleted
	}
	if !i.started {
		return Episode{}, ErrNotStarted
	}
	if i.fnState != fnNotStarted {
		return Episode{}, errors.New("orchestration: Record is only for instances whose orchestrator has not started")
	}
	i.stored = nil
	i.cursor = 0
	i.live = i.appendNew(make([]HistoryEvent, 0, len(inputs)+1), now, inputs)
	i.length += len(i.live)
	i.drive()
	ep := Episode{Events: i.live, Status: i.status}
	i.live = nil
	return ep, nil
}

// appendNew appends the inputs that were not recorded before, nor earlier
// in the same batch (a redelivered message can arrive twice in one batch).
func (i *Instance) appendNew(dst []HistoryEvent, now time.Time, inputs []HistoryEvent) []HistoryEvent {
	var outcomes map[int32]struct{}
	var requests map[string]struct{}
	for _, in := range inputs {
		if i.isDuplicate(in) {
			continue
		}
		if isOutcome(in.Kind) {
			if _, seen := outcomes[in.EventID]; seen {
				continue
			}
			if outcomes == nil {
				outcomes = make(map[int32]struct{})
			}
			outcomes[in.EventID] = struct{}{}
		}
		if in.RequestID != "" {
			if _, seen := requests[in.RequestID]; seen {
				continue
			}
			if requests == nil {
				requests = make(map[string]struct{})
			}
			requests[in.RequestID] = struct{}{}
		}
		if in.Timestamp.IsZero() {
			in.Timestamp = now
		}
		dst = append(dst, in)
	}
	return dst
}

func isOutcome(k EventKind) bool {
	switch k {
	case TaskCompleted, TaskFailed, SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed, TimerFired:
		return true
	}
	return false
}

func hasStart(events []HistoryEvent) bool {
	for _, ev := range events {
		if ev.Kind == ExecutionStarted {
			return true
		}
	}
	return false
}

// isDuplicate reports whether an input was already recorded: a second
// outcome for the same decision, or a request ID seen before.
func (i *Instance) isDuplicate(ev HistoryEvent) bool {
	switch ev.Kind {
	case TaskCompleted, TaskFailed, SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed, TimerFired:
		if ev.EventID < 0 || int(ev.EventID) >= len(i.tasks) {
			return true
		}
		t := i.tasks[ev.EventID]
		return t == nil || t.done || !matchesCompletion(t.kind, ev.Kind)
	case ExecutionStarted:
		return i.started
	}
	if ev.RequestID != "" {
		_, seen := i.requestIDs[ev.RequestID]
		return seen
	}
	return false
}

func matchesCompletion(k taskKind, ev EventKind) bool {
	switch ev {
	case TaskCompleted, TaskFailed:
		return k == activityTask
	case SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed:
		return k == subOrchestrationTask
	case TimerFired:
		return k == timerTask
	}
	return false
}

// finishEpisode closes the episode with OrchestratorCompleted, when it
// recorded anything, and reports it.
func (i *Instance) finishEpisode() Episode {
	if len(i.live) > 0 || i.customDirty {
		oc := HistoryEvent{Kind: OrchestratorCompleted, Timestamp: i.now}
		if i.customDirty {
			oc.CustomStatus = i.customStatus
			i.customDirty = false
		}
		i.live = append(i.live, oc)
		i.length++
	}
	ep := Episode{Events: i.live, Status: i.status}
	if i.continueAsNew != nil && i.status == StatusContinuedAsNew {
		ep.ContinuedAsNew = true
		ep.Events, ep.NewGeneration = i.appendNewGeneration(ep.Events)
	}
	i.live = nil
	i.stored = nil
	return ep
}

// drive runs the instance until every available event is applied: it
// applies events itself while the orchestrator is not running, starts the
// orchestrator when its ExecutionStarted is applied within an episode, and
// hands control to the parked orchestrator when there are events for it.
func (i *Instance) drive() {
	for {
		switch {
		case i.fnState == fnAlive && i.cursor < i.available():
			i.resume()
		case i.fnState == fnNotStarted && i.started && i.episodeOpen && !i.completed && i.fn != nil && !i.now.Before(i.start.FireAt):
			i.fnState = fnAlive
			if !i.suspended {
				i.status = StatusRunning
			}
			i.resume, i.stop = iter.Pull(i.runFunction)
			i.resume()
		case i.cursor < i.available():
			if err := i.applyNext(); err != nil {
				i.failHard(err)
			}
		default:
			return
		}
	}
}

func (i *Instance) available() int { return len(i.stored) + len(i.live) }

func (i *Instance) replaying() bool { return i.cursor < len(i.stored) }

// applyNext applies the event at the cursor.
func (i *Instance) applyNext() error {
	n := i.cursor
	var ev *HistoryEvent
	stored := n < len(i.stored)
	if stored {
		ev = &i.stored[n]
	} else {
		ev = &i.live[n-len(i.stored)]
	}
	i.cursor++
	if i.completed && !ev.Kind.IsDecision() && ev.Kind != OrchestratorStarted {
		return nil // after the end, inputs change nothing; recorded decisions are still checked
	}
	if i.suspended && isDeferrable(ev.Kind) {
		i.deferred = append(i.deferred, *ev)
		return nil
	}
	return i.apply(ev, stored, n)
}

func isDeferrable(k EventKind) bool {
	switch k {
	case TaskCompleted, TaskFailed, SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed, TimerFired, EventRaised:
		return true
	}
	return false
}

func (i *Instance) apply(ev *HistoryEvent, stored bool, index int) error {
	if ev.RequestID != "" {
		if i.requestIDs == nil {
			i.requestIDs = make(map[string]struct{})
		}
		i.requestIDs[ev.RequestID] = struct{}{}
	}
	switch ev.Kind {
	case OrchestratorStarted:
		i.now = ev.Timestamp
		i.episodeOpen = true
		i.actions = 0
	case OrchestratorCompleted:
		if ev.CustomStatus != nil {
			i.customStatus = ev.CustomStatus
		}
		if stored {
			for seq, p := range i.pending {
				return i.nonDeterminism(-1, nil, describeCall(&p.event), seq)
			}
		}
	case ExecutionStarted:
		return i.begin(ev)
	case TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent:
		if stored {
			return i.confirm(ev, index)
		}
	case ExecutionCompleted:
		if stored {
			return i.confirmCompletion(ev, index)
		}
	case TaskCompleted:
		i.finishTask(ev.EventID, ev.Result, nil)
	case TaskFailed:
		if t := i.task(ev.EventID); t != nil {
			i.finishTask(ev.EventID, nil, &TaskFailedError{Kind: ActivityTask, Name: t.name, EventID: ev.EventID, Failure: ev.Failure})
		}
	case SubOrchestrationInstanceCompleted:
		i.finishTask(ev.EventID, ev.Result, nil)
	case SubOrchestrationInstanceFailed:
		if t := i.task(ev.EventID); t != nil {
			i.finishTask(ev.EventID, nil, &TaskFailedError{Kind: SubOrchestrationTask, Name: t.name, EventID: ev.EventID, Failure: ev.Failure})
		}
	case TimerFired:
		i.finishTask(ev.EventID, nil, nil)
	case EventRaised:
		i.deliver(ev.Name, ev.Input)
	case ExecutionTerminated:
		i.terminate(ev.Input)
	case ExecutionSuspended:
		if !i.completed {
			i.suspended = true
			i.status = StatusSuspended
		}
	case ExecutionResumed:
		if i.suspended {
			i.suspended = false
			i.status = StatusRunning
			deferred := i.deferred
			i.deferred = nil
			for n := range deferred {
				if err := i.apply(&deferred[n], false, -1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// begin applies ExecutionStarted.
func (i *Instance) begin(ev *HistoryEvent) error {
	if i.started {
		return nil
	}
	i.started = true
	i.start = *ev
	fn, ok := i.reg.Get(ev.Name)
	if !ok {
		i.failHard(&UnknownOrchestratorError{Name: ev.Name})
		return nil
	}
	i.fn = fn
	return nil
}

func (i *Instance) task(seq int32) *Task {
	if seq < 0 || int(seq) >= len(i.tasks) {
		return nil
	}
	return i.tasks[seq]
}

// finishTask completes the task of a decision and forgets it, so the
// instance does not hold the results of a long history.
func (i *Instance) finishTask(seq int32, result []byte, err error) {
	if t := i.task(seq); t != nil {
		i.tasks[seq] = nil
		t.complete(result, err)
	}
}

// confirm matches a recorded decision with the pending decision of the same
// sequence number.
func (i *Instance) confirm(ev *HistoryEvent, index int) error {
	p, ok := i.pending[ev.EventID]
	if !ok {
		return i.nonDeterminism(index, ev, i.waitingOn(), -1)
	}
	if p.event.Kind != ev.Kind || !strings.EqualFold(p.event.Name, ev.Name) {
		return i.nonDeterminism(index, ev, describeCall(&p.event), -1)
	}
	delete(i.pending, ev.EventID)
	return nil
}

func (i *Instance) confirmCompletion(ev *HistoryEvent, index int) error {
	c := i.completion
	if c == nil {
		return i.nonDeterminism(index, ev, i.waitingOn(), -1)
	}
	if c.Status != ev.Status {
		return i.nonDeterminism(index, ev, fmt.Sprintf("ExecutionCompleted(%s)", c.Status), -1)
	}
	i.completion = nil
	return nil
}

// waitingOn describes what the code did instead of a recorded decision.
func (i *Instance) waitingOn() string {
	if i.completed {
		return "no further call (it completed)"
	}
	return "no call (it is waiting)"
}

func (i *Instance) nonDeterminism(index int, ev *HistoryEvent, call string, seq int32) error {
	err := &NonDeterminismError{InstanceID: i.start.InstanceID, Orchestrator: i.start.Name, Index: index, Call: call}
	if ev != nil {
		cp := *ev
		err.Event = &cp
	} else if seq >= 0 {
		err.Call = fmt.Sprintf("%s (#%d) that no recorded episode has", call, seq)
	}
	return err
}

// decide records a decision the code made: pending while replaying, new
// otherwise. It assigns the decision the next sequence number and binds t
// to it.
func (i *Instance) decide(ev HistoryEvent, t *Task) {
	if i.completed || i.aborting {
		return // code running while the instance unwinds decides nothing
	}
	ev.EventID = i.seq
	i.seq++
	if t != nil {
		t.decision = &ev
	}
	i.tasks = append(i.tasks, t)
	i.actions++
	if i.actions > i.opts.MaxActionsPerEpisode {
		i.abort(&LimitError{What: "number of decisions in one episode", Value: i.actions, Limit: i.opts.MaxActionsPerEpisode,
			Hint: "split large fan-outs into sub-orchestrations"})
	}
	if i.replaying() {
		i.pending[ev.EventID] = pendingDecision{event: ev}
		return
	}
	i.emit(ev)
}

// emit appends a new event to the episode.
func (i *Instance) emit(ev HistoryEvent) {
	ev.Timestamp = i.now
	i.live = append(i.live, ev)
	i.length++
	if i.length > i.opts.MaxHistoryEvents {
		i.abort(&LimitError{What: "history length", Value: i.length, Limit: i.opts.MaxHistoryEvents,
			Hint: "restart long-running orchestrations with ContinueAsNew"})
	}
}

// flushPending turns the decisions still pending at the end of a replayed
// history into new events: the recorded history stopped before them.
func (i *Instance) flushPending() {
	if len(i.pending) == 0 && i.completion == nil {
		return
	}
	for seq := int32(0); seq < i.seq; seq++ {
		if p, ok := i.pending[seq]; ok {
			i.emit(p.event)
		}
	}
	clear(i.pending)
	if i.completion != nil {
		i.emit(*i.completion)
		i.completion = nil
	}
}

// await runs the instance until t completes. It is called on the
// orchestrator's goroutine.
func (i *Instance) await(t *Task) {
	if i.aborting {
		panic(abortSignal{})
	}
	for !t.done {
		if i.cursor < i.available() {
			if err := i.applyNext(); err != nil {
				i.abort(err)
			}
			if i.aborting {
				panic(abortSignal{})
			}
			continue
		}
		if !i.park(struct{}{}) {
			i.aborting = true // Close
			panic(abortSignal{})
		}
	}
}

// abort fails the instance and unwinds the orchestrator, when it runs.
func (i *Instance) abort(err error) {
	i.failHard(err)
	if i.fnState == fnAlive {
		i.aborting = true
	}
}

// runFunction is the orchestrator's coroutine; it parks through park.
func (i *Instance) runFunction(park func(struct{}) bool) {
	i.park = park
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(abortSignal); !ok {
				i.fail(failureError{panicFailure(r)})
			}
		}
		// Apply what is left of the history: the code is done with it.
		for !i.aborting && i.cursor < i.available() {
			if err := i.applyNext(); err != nil {
				i.failHard(err)
			}
		}
		i.fnState = fnFinished
	}()
	out, err := i.fn(i.ctx)
	switch {
	case i.continueAsNew != nil:
		i.complete(StatusContinuedAsNew, i.continueAsNew.input, nil)
	case err != nil:
		i.fail(err)
	default:
		data, merr := i.opts.Converter.Marshal(out)
		switch {
		case merr != nil:
			i.fail(fmt.Errorf("orchestration: encode output: %w", merr))
		case len(data) > i.opts.MaxPayloadSize:
			i.fail(&LimitError{What: "output size", Value: len(data), Limit: i.opts.MaxPayloadSize})
		default:
			i.complete(StatusCompleted, data, nil)
		}
	}
}

func panicFailure(r any) *FailureDetails {
	return &FailureDetails{ErrorType: "panic", Message: fmt.Sprint(r), StackTrace: string(debug.Stack())}
}

// Failure turns an error into FailureDetails: its Go type and message, and
// the failure of a task it wraps as the inner failure.
func Failure(err error) *FailureDetails {
	if err == nil {
		return nil
	}
	f := &FailureDetails{ErrorType: reflect.TypeOf(err).String(), Message: err.Error()}
	var tf *TaskFailedError
	if errors.As(err, &tf) {
		f.Inner = tf.Failure
	}
	var nonRetriable interface{ NonRetriable() bool }
	if errors.As(err, &nonRetriable) {
		f.NonRetriable = nonRetriable.NonRetriable()
	}
	return f
}

// fail ends the instance because the orchestrator failed: it returned an
// error, panicked, or its output could not be encoded. Replay reproduces
// such a failure, so while replaying it is matched against history like any
// other decision.
func (i *Instance) fail(err error) {
	i.complete(StatusFailed, nil, failureOf(err))
}

// failHard ends the instance because the executor cannot go on: the code is
// not deterministic, an orchestrator is unknown, a limit was exceeded. Such
// a failure is new even while replaying, and replaces a completion the same
// run made earlier.
func (i *Instance) failHard(err error) {
	if i.hardFailed != nil {
		return
	}
	if i.completed {
		i.removeCompletion()
	}
	clear(i.pending) // decisions of a run that cannot go on are not made
	i.hardFailed = err
	i.completed = true
	i.status, i.result, i.failure = StatusFailed, nil, failureOf(err)
	i.emit(HistoryEvent{Kind: ExecutionCompleted, Status: StatusFailed, Failure: i.failure})
}

func failureOf(err error) *FailureDetails {
	if f, ok := err.(failureError); ok {
		return f.details
	}
	return Failure(err)
}

// failureError carries prepared FailureDetails through the error path.
type failureError struct{ details *FailureDetails }

func (f failureError) Error() string { return f.details.String() }

// complete ends the instance with an ExecutionCompleted decision.
func (i *Instance) complete(status Status, result []byte, failure *FailureDetails) {
	if i.completed {
		return
	}
	i.completed = true
	i.status, i.result, i.failure = status, result, failure
	ev := HistoryEvent{Kind: ExecutionCompleted, Status: status, Result: result, Failure: failure}
	if i.replaying() {
		i.completion = &ev
		return
	}
	i.emit(ev)
}

// removeCompletion drops an ExecutionCompleted this episode emitted or
// holds pending, so a failure found later can take its place.
func (i *Instance) removeCompletion() {
	i.completion = nil
	for n := len(i.live) - 1; n >= 0; n-- {
		if i.live[n].Kind == ExecutionCompleted {
			i.live = append(i.live[:n], i.live[n+1:]...)
			i.length--
			return
		}
	}
}

// terminate applies ExecutionTerminated.
func (i *Instance) terminate(reason []byte) {
	if i.completed {
		return
	}
	i.complete(StatusTerminated, reason, nil)
	if i.fnState == fnAlive {
		i.aborting = true
	}
}

// deliver hands a raised event to its oldest waiter, or buffers it.
func (i *Instance) deliver(name string, payload []byte) {
	q := i.queue(name)
	if len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		w.complete(payload, nil)
		return
	}
	q.buffered = append(q.buffered, payload)
}

func (i *Instance) queue(name string) *eventQueue {
	key := strings.ToLower(name)
	q := i.events[key]
	if q == nil {
		q = &eventQueue{}
		i.events[key] = q
	}
	return q
}

// appendNewGeneration adds the events that start the next generation after
// a ContinueAsNew: OrchestratorStarted, ExecutionStarted with the new input,
// and the buffered events carried over.
func (i *Instance) appendNewGeneration(events []HistoryEvent) ([]HistoryEvent, int) {
	can := i.continueAsNew
	at := len(events)
	events = append(events, HistoryEvent{Kind: OrchestratorStarted, Timestamp: i.now})
	start := i.start
	start.Timestamp = i.now
	start.Input = can.input
	start.Generation++
	if can.version != "" {
		start.Version = can.version
	}
	events = append(events, start)
	if can.carryEvents {
		for _, name := range sortedKeys(i.events) {
			for _, payload := range i.events[name].buffered {
				events = append(events, HistoryEvent{Kind: EventRaised, Timestamp: i.now, Name: name, Input: payload})
			}
		}
	}
	return events, at
}

// Status returns the instance's runtime status.
func (i *Instance) Status() Status { return i.status }

// Output returns the encoded output (the new input after ContinueAsNew, the
// reason after a termination) and the failure, if any.
func (i *Instance) Output() ([]byte, *FailureDetails) { return i.result, i.failure }

// Err returns the error that stopped the executor, if one did: a
// *NonDeterminismError, an *UnknownOrchestratorError or a *LimitError. The
// instance has failed with it. Failures of the orchestrator itself (an
// error it returned, a panic) are not errors of the executor; see Output.
func (i *Instance) Err() error { return i.hardFailed }

// CustomStatus returns the encoded custom status.
func (i *Instance) CustomStatus() []byte { return i.customStatus }

// Started returns the ExecutionStarted event of the instance.
func (i *Instance) Started() (HistoryEvent, bool) { return i.start, i.started }

// Pending returns the decisions that have no outcome yet: activities,
// sub-orchestrations and timers in flight. After a restart the runtime
// re-issues the activities and sub-orchestrations among them.
func (i *Instance) Pending() []HistoryEvent {
	var out []HistoryEvent
	for _, t := range i.tasks {
		if t != nil && !t.done {
			out = append(out, *t.decision)
		}
	}
	return out
}

// Close stops the orchestrator's goroutine. The instance cannot be used
// afterwards.
func (i *Instance) Close() {
	if i.stop != nil {
		i.stop()
	}
	i.fnState = fnFinished
}

// logger returns a logger that is silent while the instance replays.
func (i *Instance) logger() *slog.Logger {
	return slog.New(replaySafeHandler{inner: i.opts.Logger.Handler(), inst: i}).With(
		"instance", i.start.InstanceID, "orchestrator", i.start.Name)
}
