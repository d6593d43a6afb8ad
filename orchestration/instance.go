package orchestration

import (
	"errors"
	"log/slog"
	"slices"
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

	started bool
	start   HistoryEvent
	fn      Orchestrator
	// sawEpisodeStart is set by the first OrchestratorStarted: the code
	// runs only in an episode, not for inputs recorded before its start.
	sawEpisodeStart bool
	now             time.Time
	length          int // events in this generation's history
	actions         int // decisions in this episode

	seq   int32
	tasks []*Task // by sequence number
	// pending holds the decisions made while replaying that no recorded
	// event has confirmed yet, from pendingHead on, in sequence order.
	pending     []HistoryEvent
	pendingHead int

	events map[string]*eventQueue
	// arrivals numbers the raised events that are buffered, so that a
	// ContinueAsNew carries them over in the order they came.
	arrivals int
	// requestIDs are the request IDs recorded in this generation or carried
	// into it from the ones before, with the time each was recorded: an
	// input that comes again (a redelivery, a retried request) is a
	// duplicate, also after a ContinueAsNew.
	requestIDs map[string]time.Time
	// carried are the inputs that arrived, in the episode that continued as
	// new, after the code had returned: they belong to the next generation.
	carried []HistoryEvent

	// timers are the due times of the timers that have no outcome, by
	// sequence number. With the events the code waits for they make the
	// wait state that every OrchestratorCompleted records (see Waiting);
	// recordedWait is the state the last one recorded.
	timers       map[int32]time.Time
	recordedWait Waiting
	waitScratch  []string

	suspended bool
	deferred  []HistoryEvent

	// section is the critical section the code holds (LockEntities), and
	// locking the one it waits for.
	section, locking *CriticalSection

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
	log           *slog.Logger // see logger

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

type eventQueue struct {
	// name is the event name as first used, for the wait state.
	name     string
	buffered []bufferedEvent
	waiters  []*Task
}

// bufferedEvent is a raised event no one waited for yet. It keeps what a
// ContinueAsNew carries into the next generation: the name as raised and
// the request ID, so a redelivery is still a duplicate there.
type bufferedEvent struct {
	name      string
	requestID string
	payload   []byte
	arrival   int
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
		reg:    reg,
		opts:   opts.WithDefaults(),
		events: make(map[string]*eventQueue),
		timers: make(map[int32]time.Time),
		status: StatusPending,
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
// Batches are mostly a handful of inputs, compared directly; large ones
// (a fan-out's results) use sets.
func (i *Instance) appendNew(dst []HistoryEvent, now time.Time, inputs []HistoryEvent) []HistoryEvent {
	first := len(dst)
	var outcomes map[int32]struct{}
	var requests map[string]struct{}
	if len(inputs) > 16 {
		outcomes, requests = make(map[int32]struct{}), make(map[string]struct{})
	}
	seen := func(in HistoryEvent) bool {
		if outcomes != nil {
			_, dupOutcome := outcomes[in.EventID]
			_, dupRequest := requests[in.RequestID]
			return in.Kind.IsOutcome() && dupOutcome || in.RequestID != "" && dupRequest
		}
		for _, prev := range dst[first:] {
			if in.Kind.IsOutcome() && prev.Kind.IsOutcome() && prev.EventID == in.EventID ||
				in.RequestID != "" && prev.RequestID == in.RequestID {
				return true
			}
		}
		return false
	}
	for _, in := range inputs {
		if i.isDuplicate(in) || seen(in) {
			continue
		}
		if outcomes != nil {
			if in.Kind.IsOutcome() {
				outcomes[in.EventID] = struct{}{}
			}
			if in.RequestID != "" {
				requests[in.RequestID] = struct{}{}
			}
		}
		if in.Timestamp.IsZero() {
			in.Timestamp = now
		}
		dst = append(dst, in)
	}
	return dst
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
// outcome for the same decision (also while a suspension holds the first),
// a fired timer whose time (when given) is not its timer's, or a request ID
// seen before.
func (i *Instance) isDuplicate(ev HistoryEvent) bool {
	switch {
	case ev.Kind.IsOutcome():
		if ev.EventID < 0 || int(ev.EventID) >= len(i.tasks) {
			return true
		}
		t := i.tasks[ev.EventID]
		if t == nil || t.done || t.held || !matchesCompletion(t.kind, ev.Kind) {
			return true
		}
		// A timer of an earlier generation can share the sequence number;
		// its time tells it apart.
		return ev.Kind == TimerFired && !ev.FireAt.IsZero() && !ev.FireAt.Equal(t.decision.FireAt)
	case ev.Kind == ExecutionStarted:
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
	case EntityOperationCompleted, EntityOperationFailed:
		return k == entityTask
	case EntityLockGranted:
		return k == lockTask
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
	waitChanged := i.updateWaiting()
	if len(i.live) > 0 || i.customDirty || waitChanged {
		oc := HistoryEvent{Kind: OrchestratorCompleted, Timestamp: i.now,
			FireAt: i.recordedWait.NextTimer, AwaitedEvents: i.recordedWait.Events}
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
		t.decision = ev
	}
	i.tasks = append(i.tasks, t)
	i.actions++
	if i.actions > i.opts.MaxActionsPerEpisode {
		i.abort(&LimitError{What: "number of decisions in one episode", Value: i.actions, Limit: i.opts.MaxActionsPerEpisode,
			Hint: "split large fan-outs into sub-orchestrations"})
	}
	if i.replaying() {
		i.pending = append(i.pending, ev)
		return
	}
	i.flushPending() // earlier decisions first, in sequence order
	i.emit(ev)
}

// emit appends a new event to the episode.
func (i *Instance) emit(ev HistoryEvent) {
	ev.Timestamp = i.now
	i.live = append(i.live, ev)
	i.length++
	i.checkLength(i.length - 1)
}

// flushPending turns the decisions still pending at the end of a replayed
// history into new events: the recorded history stopped before them.
func (i *Instance) flushPending() {
	if i.pendingHead == len(i.pending) && i.completion == nil {
		return
	}
	for k := i.pendingHead; k < len(i.pending); k++ {
		i.emit(i.pending[k])
	}
	i.clearPending()
	if i.completion != nil {
		i.emit(*i.completion)
		i.completion = nil
	}
}

// deliver hands a raised event to its oldest waiter, or buffers it.
func (i *Instance) deliver(ev *HistoryEvent) {
	q := i.queue(ev.Name)
	if len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		w.complete(ev.Input, nil)
		return
	}
	q.buffered = append(q.buffered, bufferedEvent{name: ev.Name, requestID: ev.RequestID, payload: ev.Input, arrival: i.arrivals})
	i.arrivals++
}

func (i *Instance) queue(name string) *eventQueue {
	key := strings.ToLower(name)
	q := i.events[key]
	if q == nil {
		q = &eventQueue{name: name}
		i.events[key] = q
	}
	return q
}

// carryOver keeps an input that arrived after the code continued as new, in
// the same episode, for the next generation: a raised event (unless the
// code dropped unprocessed events) or a terminate, suspend or resume
// request. Anything else, an outcome of the ended generation's work, is
// dropped with it.
func (i *Instance) carryOver(ev *HistoryEvent) {
	if i.status != StatusContinuedAsNew || i.continueAsNew == nil {
		return
	}
	switch ev.Kind {
	case EventRaised:
		if !i.continueAsNew.carryEvents {
			return
		}
	case ExecutionTerminated, ExecutionSuspended, ExecutionResumed:
	default:
		return
	}
	i.carried = append(i.carried, *ev)
}

// appendNewGeneration adds the events that start the next generation after
// a ContinueAsNew: OrchestratorStarted, ExecutionStarted with the new input
// and the request IDs to keep recognising, then the inputs carried over,
// in the order they arrived: the buffered events, then the inputs that came
// after the code returned.
func (i *Instance) appendNewGeneration(events []HistoryEvent) ([]HistoryEvent, int) {
	can := i.continueAsNew
	at := len(events)
	var carried []HistoryEvent
	if can.carryEvents {
		var buffered []bufferedEvent
		for _, q := range i.events {
			buffered = append(buffered, q.buffered...)
		}
		slices.SortFunc(buffered, func(a, b bufferedEvent) int { return a.arrival - b.arrival })
		for _, b := range buffered {
			carried = append(carried, HistoryEvent{Kind: EventRaised, Name: b.name, Input: b.payload, RequestID: b.requestID})
		}
	}
	carried = append(carried, i.carried...)
	events = append(events, HistoryEvent{Kind: OrchestratorStarted, Timestamp: i.now})
	start := i.start
	start.Timestamp = i.now
	start.Input = can.input
	start.Generation++
	start.RequestIDs = i.requestIDsToCarry(carried)
	if can.version != "" {
		start.Version = can.version
	}
	events = append(events, start)
	for _, ev := range carried {
		ev.Timestamp = i.now
		events = append(events, ev)
	}
	return events, at
}

// Bounds of the request IDs a ContinueAsNew carries into the next
// generation: those recorded within CarriedRequestIDWindow before it, at
// most MaxCarriedRequestIDs of them, the newest first. The window is far
// longer than any redelivery durable makes (the bus redelivers within
// minutes, a client's retried request ends with its context, recovery acts
// again on the last second or so of records), and the cap bounds the size
// of the new generation's first record.
const (
	CarriedRequestIDWindow = 10 * time.Minute
	MaxCarriedRequestIDs   = 1000
)

// requestIDsToCarry returns the request IDs the next generation must still
// recognise, except those of the inputs carried over with it (they are
// recorded there again, and must not be taken for their own duplicates).
func (i *Instance) requestIDsToCarry(carried []HistoryEvent) []string {
	type seen struct {
		id string
		at time.Time
	}
	skip := make(map[string]bool, len(carried))
	for _, ev := range carried {
		skip[ev.RequestID] = true
	}
	var ids []seen
	since := i.now.Add(-CarriedRequestIDWindow)
	for id, at := range i.requestIDs {
		if !skip[id] && !at.Before(since) {
			ids = append(ids, seen{id, at})
		}
	}
	slices.SortFunc(ids, func(a, b seen) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	ids = ids[:min(len(ids), MaxCarriedRequestIDs)]
	if len(ids) == 0 {
		return nil
	}
	out := make([]string, len(ids))
	for n, s := range ids {
		out[n] = s.id
	}
	return out
}

// Waiting is what a running instance waits for besides its activities and
// sub-orchestrations: its earliest pending timer and the events its code
// awaits. Every OrchestratorCompleted records it (FireAt and AwaitedEvents),
// so the instance index knows, for every instance, the durable reason it
// will run again.
type Waiting struct {
	// NextTimer is when the earliest pending timer fires; zero if none.
	NextTimer time.Time
	// Events are the names of the events the code waits for, sorted.
	Events []string
}

// Waiting returns the instance's wait state after its last episode.
func (i *Instance) Waiting() Waiting { return i.recordedWait }

// updateWaiting computes the wait state at the end of an episode and reports
// whether it differs from the one the last OrchestratorCompleted recorded;
// an episode that changed it (the first one of a generation that only waits,
// say) is recorded even when it holds nothing else.
func (i *Instance) updateWaiting() bool {
	var next time.Time
	names := i.waitScratch[:0]
	if !i.completed {
		for _, at := range i.timers {
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		for _, q := range i.events {
			if len(q.waiters) > 0 {
				names = append(names, q.name)
			}
		}
		slices.Sort(names)
	}
	i.waitScratch = names
	if next.Equal(i.recordedWait.NextTimer) && slices.Equal(names, i.recordedWait.Events) {
		return false
	}
	i.recordedWait = Waiting{NextTimer: next}
	if len(names) > 0 {
		i.recordedWait.Events = slices.Clone(names)
	}
	return true
}

// Recorded reports whether an input with the given request ID is recorded
// in this generation (or was, in one shortly before it): a request that
// comes again is answered as the first one was.
func (i *Instance) Recorded(requestID string) bool {
	_, ok := i.requestIDs[requestID]
	return ok && requestID != ""
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
			out = append(out, t.decision)
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

// logger returns a logger that is silent while the instance replays. It is
// built on first use, when the instance has started.
func (i *Instance) logger() *slog.Logger {
	if i.log == nil {
		i.log = slog.New(replaySafeHandler{inner: i.opts.Logger.Handler(), inst: i}).With(
			"instance", i.start.InstanceID, "orchestrator", i.start.Name)
	}
	return i.log
}
