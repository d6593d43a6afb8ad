// Package index is the instance index: a projection of the event store's
// global log that knows, for every orchestration instance, its name, status,
// times, pending work and the durable reason it will run again, without
// activating its grain.
//
// Status queries read it (and fetch payloads from the instance's stream on
// demand, so the index itself stays small). Recovery asks it which
// instances have work in flight and which are due: every running instance
// has a wake reason (see Instance.Due and Instance.Stranded), and the due
// ones are kept in order of their due time, so finding the overdue ones
// costs what they are, not a scan of every instance. Like everything
// derived in durable, it is rebuilt from the store: Open catches up on the
// global log, then follows it.
//
// A record that cannot be decoded does not stop the index: its instance is
// shown Failed with the decoding error, and every other instance goes on.
package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/btree"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// NoRevision marks a revision the index has not seen.
const NoRevision int64 = -1

// Instance is what the index knows of one orchestration instance.
type Instance struct {
	ID         string
	Name       string
	Version    string
	Status     orchestration.Status
	Generation int32
	ParentID   string
	// Created is when the current generation's ExecutionStarted was
	// recorded; LastUpdated when the latest event was.
	Created     time.Time
	LastUpdated time.Time
	// Revisions in the instance's stream of the records that hold payloads:
	// the input (ExecutionStarted), the output or failure
	// (ExecutionCompleted) and the custom status (OrchestratorCompleted).
	StartRevision        uint64
	CompletionRevision   int64
	CustomStatusRevision int64
	// Small payloads are kept here, so a status query needs no read; those
	// over MaxInlinePayload are read from the stream by revision.
	Input, Output, CustomStatus []byte
	Failure                     *orchestration.FailureDetails
	inputInline, outputInline   bool
	customInline                bool
	// PendingTasks counts activities, sub-orchestrations, entity calls and
	// lock requests in flight: made and not yet answered.
	PendingTasks int
	// StartAt is when a start scheduled for later is due (Pending).
	StartAt time.Time
	// NextTimer is when the earliest pending timer fires and AwaitedEvents
	// are the events the code waits for, as the last episode recorded.
	NextTimer     time.Time
	AwaitedEvents []string
	// Runnable is set while a started generation has not had an episode
	// recorded: the records of a ContinueAsNew are in, the first episode of
	// the new generation is not yet.
	Runnable bool
	// LastPosition is the global position of the instance's latest event.
	LastPosition uint64
}

// Due returns when a non-terminal instance must run at the latest, if
// nothing else wakes it first: the time of a scheduled start, of its
// earliest timer, or (Runnable) at once. The message bus delivers timers
// and scheduled starts on time; Due is what recovery checks that against.
func (in *Instance) Due() (time.Time, bool) {
	switch {
	case in.Status.IsTerminal():
		return time.Time{}, false
	case in.Runnable:
		return in.LastUpdated, true
	case in.Status == orchestration.StatusPending && !in.StartAt.IsZero():
		return in.StartAt, true
	case !in.NextTimer.IsZero():
		return in.NextTimer, true
	}
	return time.Time{}, false
}

// Stranded reports whether a non-terminal instance has no durable reason to
// run again: no activity or sub-orchestration in flight, no timer, no
// awaited event, no scheduled start, and it is not suspended (waiting for a
// Resume). Nothing would ever wake such an instance; the engine's invariant
// is that none exists.
func (in *Instance) Stranded() bool {
	if in.Status.IsTerminal() || in.Status == orchestration.StatusSuspended || in.PendingTasks > 0 || len(in.AwaitedEvents) > 0 {
		return false
	}
	_, due := in.Due()
	return !due
}

// WaitsFor describes an instance's reason to run again, for people.
func (in *Instance) WaitsFor() string {
	var parts []string
	switch {
	case in.Status.IsTerminal():
		return "nothing (" + in.Status.String() + ")"
	case in.Status == orchestration.StatusSuspended:
		parts = append(parts, "a Resume")
	case in.Runnable:
		parts = append(parts, "its next episode, now")
	case in.Status == orchestration.StatusPending && !in.StartAt.IsZero():
		parts = append(parts, "its start at "+in.StartAt.Format(time.RFC3339))
	}
	if in.PendingTasks > 0 {
		parts = append(parts, fmt.Sprintf("%d activities, sub-orchestrations or entity calls", in.PendingTasks))
	}
	if !in.NextTimer.IsZero() {
		parts = append(parts, "a timer at "+in.NextTimer.Format(time.RFC3339Nano))
	}
	if len(in.AwaitedEvents) > 0 {
		parts = append(parts, "events "+strings.Join(in.AwaitedEvents, ", "))
	}
	if len(parts) == 0 {
		return "nothing: stranded"
	}
	return strings.Join(parts, "; ")
}

// dueEntry orders the instances that have a due time.
type dueEntry struct {
	at time.Time
	id string
}

func dueLess(a, b dueEntry) bool {
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	return a.id < b.id
}

// Index is the projection. It is safe for concurrent use.
type Index struct {
	store eventstore.Store
	log   *slog.Logger

	mu        sync.RWMutex
	instances map[string]*Instance
	entities  map[string]*Entity
	// due orders the instances that have a due time; dueAt is each one's
	// entry in it.
	due     *btree.BTreeG[dueEntry]
	dueAt   map[string]time.Time
	applied uint64
	changed chan struct{}
	// watched is set when someone holds changed; advance replaces the
	// channel only then, not for every event.
	watched bool
	err     error
	// ended holds channels closed when an instance ends, for Wait.
	ended map[string]chan struct{}
	// scratch is the decoding buffer of apply (one goroutine applies).
	scratch []orchestration.HistoryEvent

	cancel context.CancelFunc
	done   chan struct{}
	// stopped is closed when the index stops following the store, on an
	// error or at Close.
	stopped chan struct{}
}

// Open builds the index from the store and keeps it current until Close.
func Open(ctx context.Context, store eventstore.Store, logger *slog.Logger) (*Index, error) {
	x := &Index{
		store:     store,
		log:       logger,
		instances: make(map[string]*Instance),
		entities:  make(map[string]*Entity),
		due:       btree.NewG(16, dueLess),
		dueAt:     make(map[string]time.Time),
		changed:   make(chan struct{}),
		ended:     make(map[string]chan struct{}),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	var dec history.Decoder
	filter := eventstore.Filter{StreamPrefixes: []string{history.StreamPrefix, entitylog.StreamPrefix}}
	for ev, err := range store.ReadAll(ctx, eventstore.ReadAllOptions{Filter: filter}) {
		if err != nil {
			return nil, fmt.Errorf("index: catch up: %w", err)
		}
		x.apply(&dec, &ev)
	}
	follow, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	go x.follow(follow, filter)
	return x, nil
}

// follow applies new events until Close. A subscription that ends with an
// error (the store is unreachable) is made again from the last applied
// position, with backoff, until it holds; only a closed store stops the
// index.
func (x *Index) follow(ctx context.Context, filter eventstore.Filter) {
	defer close(x.done)
	defer close(x.stopped)
	retry := backoff.NewExponentialBackOff()
	retry.InitialInterval, retry.MaxInterval = 50*time.Millisecond, 5*time.Second
	for {
		var dec history.Decoder
		x.mu.RLock()
		from := eventstore.FromPosition(x.applied)
		x.mu.RUnlock()
		var err error
		for ev, serr := range x.store.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{From: from, Filter: filter}) {
			if serr != nil {
				err = serr
				break
			}
			x.apply(&dec, &ev)
			retry.Reset()
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, eventstore.ErrClosed):
			x.fail(fmt.Errorf("index: subscription ended: %w", err))
			return
		}
		wait := retry.NextBackOff()
		x.log.Warn("the instance index lost its subscription to the event store; subscribing again", "in", wait.Round(time.Millisecond), "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

func (x *Index) fail(err error) {
	x.log.Error("instance index stopped", "error", err)
	x.mu.Lock()
	x.err = err
	close(x.changed)
	x.changed = make(chan struct{})
	x.watched = false
	x.mu.Unlock()
}

// apply folds one stored record (an episode, or a single history event)
// into the index.
func (x *Index) apply(dec *history.Decoder, rec *eventstore.RecordedEvent) {
	id, ok := strings.CutPrefix(rec.Stream, history.StreamPrefix)
	if !ok {
		x.applyEntity(rec)
		return
	}
	events, err := dec.DecodeRecord(x.scratch[:0], rec)
	x.scratch = events
	x.mu.Lock()
	defer x.mu.Unlock()
	if err != nil {
		x.applyCorrupt(id, rec, err)
		x.advance(rec.Position)
		return
	}
	for i := range events {
		x.applyEvent(id, &events[i], rec)
		// An ExecutionStarted within an episode (after its
		// OrchestratorStarted) starts running now, and the episode that
		// runs its code follows; alone, it is a start scheduled for later.
		if events[i].Kind == orchestration.ExecutionStarted && i > 0 && events[i-1].Kind == orchestration.OrchestratorStarted {
			in := x.instances[id]
			in.Status, in.Runnable = orchestration.StatusRunning, true
		}
	}
	if in := x.instances[id]; in != nil {
		x.reorder(in)
	}
	x.advance(rec.Position)
}

// applyCorrupt marks the instance of a record that cannot be decoded as
// failed, with the reason; the caller holds the lock. The instance's grain
// refuses to load such a history too: the instance is lost until someone
// repairs or purges its stream, but it says so, and nothing else is held up.
func (x *Index) applyCorrupt(id string, rec *eventstore.RecordedEvent, err error) {
	x.log.Error("an instance's history cannot be decoded; it is shown as failed", "instance", id, "error", err)
	in := x.instances[id]
	if in == nil {
		in = &Instance{ID: id, Created: rec.Created, CompletionRevision: NoRevision, CustomStatusRevision: NoRevision, inputInline: true}
		x.instances[id] = in
	}
	in.Status = orchestration.StatusFailed
	in.Failure = &orchestration.FailureDetails{ErrorType: "CorruptHistory", Message: err.Error()}
	in.Output, in.outputInline = nil, true
	in.PendingTasks, in.Runnable = 0, false
	in.LastUpdated, in.LastPosition = rec.Created, rec.Position
	x.reorder(in)
	x.closeEnded(id)
}

// reorder puts an instance at its due time in the order of due instances,
// or takes it out; the caller holds the lock.
func (x *Index) reorder(in *Instance) {
	at, due := in.Due()
	old, had := x.dueAt[in.ID]
	if had && due && old.Equal(at) {
		return
	}
	if had {
		x.due.Delete(dueEntry{at: old, id: in.ID})
		delete(x.dueAt, in.ID)
	}
	if due {
		x.due.ReplaceOrInsert(dueEntry{at: at, id: in.ID})
		x.dueAt[in.ID] = at
	}
}

func (x *Index) closeEnded(id string) {
	if ch, ok := x.ended[id]; ok {
		close(ch)
		delete(x.ended, id)
	}
}

// applyEvent folds one history event of the record rec; the caller holds
// the lock.
func (x *Index) applyEvent(id string, ev *orchestration.HistoryEvent, rec *eventstore.RecordedEvent) {
	in := x.instances[id]
	if in == nil {
		if ev.Kind != orchestration.ExecutionStarted {
			// The start was truncated away (ContinueAsNew); the new
			// generation's ExecutionStarted follows.
			return
		}
		in = &Instance{ID: id}
		x.instances[id] = in
	}
	switch ev.Kind {
	case orchestration.ExecutionStarted:
		*in = Instance{
			ID: id, Name: ev.Name, Version: ev.Version, Status: orchestration.StatusPending,
			Generation: ev.Generation, Created: rec.Created, StartRevision: rec.Revision,
			CompletionRevision: NoRevision, CustomStatusRevision: NoRevision, StartAt: ev.FireAt,
		}
		in.Input, in.inputInline = inline(ev.Input)
		if ev.Parent != nil {
			in.ParentID = ev.Parent.InstanceID
		}
	case orchestration.OrchestratorCompleted:
		// An episode ran: a pending instance has started.
		if in.Status == orchestration.StatusPending {
			in.Status = orchestration.StatusRunning
		}
		in.Runnable = false
		in.NextTimer, in.AwaitedEvents = ev.FireAt, ev.AwaitedEvents
		if ev.CustomStatus != nil {
			in.CustomStatusRevision = int64(rec.Revision)
			in.CustomStatus, in.customInline = inline(ev.CustomStatus)
		}
	case orchestration.TaskScheduled, orchestration.SubOrchestrationInstanceCreated,
		orchestration.EntityOperationCalled, orchestration.EntityLockRequested:
		in.PendingTasks++
	case orchestration.TaskCompleted, orchestration.TaskFailed,
		orchestration.SubOrchestrationInstanceCompleted, orchestration.SubOrchestrationInstanceFailed,
		orchestration.EntityOperationCompleted, orchestration.EntityOperationFailed, orchestration.EntityLockGranted:
		in.PendingTasks = max(0, in.PendingTasks-1)
	case orchestration.ExecutionSuspended:
		if !in.Status.IsTerminal() {
			in.Status = orchestration.StatusSuspended
		}
	case orchestration.ExecutionResumed:
		if in.Status == orchestration.StatusSuspended {
			in.Status = orchestration.StatusRunning
		}
	case orchestration.ExecutionCompleted:
		in.Status = ev.Status
		in.CompletionRevision = int64(rec.Revision)
		in.PendingTasks = 0
		in.Output, in.outputInline = inline(ev.Result)
		in.Failure = ev.Failure
		in.NextTimer, in.AwaitedEvents, in.Runnable = time.Time{}, nil, false
		if ev.Status.IsTerminal() {
			x.closeEnded(id)
		}
	}
	in.LastUpdated = rec.Created
	in.LastPosition = rec.Position
}

// MaxInlinePayload is the largest payload the index keeps in memory.
const MaxInlinePayload = 512

// inline copies a small payload (decoded events alias the store's bytes)
// and reports whether it is held; a large one is left to be read.
func inline(b []byte) ([]byte, bool) {
	if len(b) > MaxInlinePayload {
		return nil, false
	}
	return slices.Clone(b), true
}

// InlineInput reports whether Input holds the input (else read it from
// StartRevision); likewise for the output and the custom status.
func (in *Instance) InlineInput() bool        { return in.inputInline }
func (in *Instance) InlineOutput() bool       { return in.outputInline }
func (in *Instance) InlineCustomStatus() bool { return in.customInline }

// advance records that everything up to position is applied; the caller
// holds the lock.
func (x *Index) advance(position uint64) {
	x.applied = position
	if x.watched {
		close(x.changed)
		x.changed = make(chan struct{})
		x.watched = false
	}
}

// Get returns what the index knows of an instance.
func (x *Index) Get(id string) (Instance, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	in, ok := x.instances[id]
	if !ok {
		return Instance{}, false
	}
	return *in, true
}

// Ended returns a channel that is closed once the instance has completed,
// failed or been terminated (at once if it has).
func (x *Index) Ended(id string) <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if in, ok := x.instances[id]; ok && in.Status.IsTerminal() {
		return closedChan
	}
	ch, ok := x.ended[id]
	if !ok {
		ch = make(chan struct{})
		x.ended[id] = ch
	}
	return ch
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// ErrStopped is matched by the error WaitFor returns when the index stopped
// following the store.
var ErrStopped = errors.New("index: stopped")

// WaitFor returns once the index has applied the event at position, so a
// client reads its own writes, or ErrStopped once the index has stopped.
func (x *Index) WaitFor(ctx context.Context, position uint64) error {
	for {
		x.mu.Lock()
		applied, changed, err := x.applied, x.changed, x.err
		x.watched = x.watched || applied < position
		x.mu.Unlock()
		if applied >= position {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStopped, err)
		}
		select {
		case <-changed:
		case <-x.stopped:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Overdue returns the instances whose due time (see Instance.Due) is
// before t, earliest first, at most limit of them.
func (x *Index) Overdue(t time.Time, limit int) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var ids []string
	x.due.Ascend(func(e dueEntry) bool {
		if !e.at.Before(t) || len(ids) >= limit {
			return false
		}
		ids = append(ids, e.id)
		return true
	})
	return ids
}

// Stopped returns a channel that is closed when the index stops following
// the store: on an error (see Err) or at Close. Its entries are stale from
// then on.
func (x *Index) Stopped() <-chan struct{} { return x.stopped }

// Err returns the error that stopped the index, if one did.
func (x *Index) Err() error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.err
}

// Select returns the IDs of the instances for which keep returns true.
func (x *Index) Select(keep func(*Instance) bool) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var ids []string
	for id, in := range x.instances {
		if keep(in) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Close stops following the store.
func (x *Index) Close() {
	x.cancel()
	<-x.done
}
