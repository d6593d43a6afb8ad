package index

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/history/historypb"
	"github.com/durableactor/durable/internal/indexpb"
	"github.com/durableactor/durable/orchestration"
)

// NoRevision marks a revision the index has not seen.
const NoRevision int64 = -1

// MaxInlinePayload is the largest payload the index keeps itself; larger
// ones are read from the instance's stream.
const MaxInlinePayload = 512

// Instance is what the index knows of one orchestration instance.
type Instance struct {
	ID         string
	Name       string
	Version    string
	Status     orchestration.Status
	Generation int32
	ParentID   string
	// Created is when the current generation's ExecutionStarted was
	// recorded; LastUpdated when the latest event was; Completed when it
	// ended (zero while it runs).
	Created     time.Time
	LastUpdated time.Time
	Completed   time.Time
	// Revisions in the instance's stream of the records that hold payloads:
	// the input (ExecutionStarted), the output or failure
	// (ExecutionCompleted) and the custom status (OrchestratorCompleted).
	StartRevision        uint64
	CompletionRevision   int64
	CustomStatusRevision int64
	// Small payloads are kept here, so a status query needs no read; those
	// over MaxInlinePayload are read from the stream by revision.
	Input, Output, CustomStatus []byte
	InputSize, OutputSize       int
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

// InlineInput reports whether Input holds the input (else read it from
// StartRevision); likewise for the output and the custom status.
func (in *Instance) InlineInput() bool        { return in.inputInline }
func (in *Instance) InlineOutput() bool       { return in.outputInline }
func (in *Instance) InlineCustomStatus() bool { return in.customInline }

// Due returns when a non-terminal instance must run at the latest, if
// nothing else wakes it first: the time of a scheduled start, of its
// earliest timer, or (Runnable) at once. The message bus delivers timers
// and scheduled starts on time; Due is what recovery checks that against.
// A suspended instance is not due: it waits for a Resume.
func (in *Instance) Due() (time.Time, bool) {
	switch {
	case in.Status.IsTerminal() || in.Status == orchestration.StatusSuspended:
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
// run again: no activity, sub-orchestration or entity call in flight, no
// timer, no awaited event, no scheduled start, and it is not suspended
// (waiting for a Resume). Nothing would ever wake such an instance; the
// engine's invariant is that none exists.
func (in *Instance) Stranded() bool {
	if in.Status.IsTerminal() || in.Status == orchestration.StatusSuspended || in.PendingTasks > 0 || len(in.AwaitedEvents) > 0 {
		return false
	}
	_, due := in.Due()
	return !due
}

// InFlight reports whether a running instance has work out that only its
// grain carries on (activities, sub-orchestrations, entity calls): after a
// start, recovery wakes it.
func (in *Instance) InFlight() bool { return !in.Status.IsTerminal() && in.PendingTasks > 0 }

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

// newInstance returns the record of a generation that starts.
func newInstance(id string, ev *orchestration.HistoryEvent, rec *eventstore.RecordedEvent) *Instance {
	in := &Instance{
		ID: id, Name: ev.Name, Version: ev.Version, Status: orchestration.StatusPending,
		Generation: ev.Generation, Created: rec.Created, StartRevision: rec.Revision,
		CompletionRevision: NoRevision, CustomStatusRevision: NoRevision, StartAt: ev.FireAt,
		InputSize: len(ev.Input),
	}
	in.Input, in.inputInline = inline(ev.Input)
	if ev.Parent != nil {
		in.ParentID = ev.Parent.InstanceID
	}
	return in
}

// applyEvent folds one history event of the record rec into in (nil
// before the instance's first ExecutionStarted) and returns it.
func applyEvent(in *Instance, id string, ev *orchestration.HistoryEvent, rec *eventstore.RecordedEvent) *Instance {
	if in == nil && ev.Kind != orchestration.ExecutionStarted {
		// The start was truncated away (ContinueAsNew); the new
		// generation's ExecutionStarted follows.
		return nil
	}
	switch ev.Kind {
	case orchestration.ExecutionStarted:
		in = newInstance(id, ev, rec)
	case orchestration.OrchestratorCompleted:
		// An episode ran: a pending instance has started.
		if in.Status == orchestration.StatusPending {
			in.Status = orchestration.StatusRunning
		}
		in.Runnable = false
		in.NextTimer, in.AwaitedEvents = ev.FireAt, slices.Clone(ev.AwaitedEvents)
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
		in.OutputSize = len(ev.Result)
		in.Failure = ev.Failure
		in.NextTimer, in.AwaitedEvents, in.Runnable = time.Time{}, nil, false
		if ev.Status.IsTerminal() {
			in.Completed = rec.Created
		}
	}
	in.LastUpdated = rec.Created
	in.LastPosition = rec.Position
	return in
}

// inline copies a small payload (decoded events alias the store's bytes)
// and reports whether it is held; a large one is left to be read.
func inline(b []byte) ([]byte, bool) {
	if len(b) > MaxInlinePayload {
		return nil, false
	}
	return slices.Clone(b), true
}

// corrupt returns the record of an instance whose history cannot be
// decoded: failed, with the reason.
func corrupt(old *Instance, id string, rec *eventstore.RecordedEvent, err error) *Instance {
	in := old
	if in == nil {
		in = &Instance{ID: id, Created: rec.Created, CompletionRevision: NoRevision, CustomStatusRevision: NoRevision, inputInline: true}
	}
	in.Status = orchestration.StatusFailed
	in.Failure = &orchestration.FailureDetails{ErrorType: "CorruptHistory", Message: err.Error()}
	in.Output, in.outputInline = nil, true
	in.PendingTasks, in.Runnable, in.NextTimer, in.AwaitedEvents = 0, false, time.Time{}, nil
	in.LastUpdated, in.LastPosition, in.Completed = rec.Created, rec.Position, rec.Created
	return in
}

// toRecord encodes an instance for the database.
func (in *Instance) toRecord() *indexpb.Instance {
	return &indexpb.Instance{
		Id: in.ID, Name: in.Name, Version: in.Version, Status: int32(in.Status), Generation: in.Generation, ParentId: in.ParentID,
		Created: nanos(in.Created), LastUpdated: nanos(in.LastUpdated), Completed: nanos(in.Completed),
		StartRevision: in.StartRevision, CompletionRevision: in.CompletionRevision, CustomStatusRevision: in.CustomStatusRevision,
		Input: in.Input, Output: in.Output, CustomStatus: in.CustomStatus,
		InputInline: in.inputInline, OutputInline: in.outputInline, CustomInline: in.customInline,
		InputSize: int64(in.InputSize), OutputSize: int64(in.OutputSize), Failure: failureRecord(in.Failure),
		PendingTasks: int32(in.PendingTasks), StartAt: nanos(in.StartAt), NextTimer: nanos(in.NextTimer),
		AwaitedEvents: in.AwaitedEvents, Runnable: in.Runnable, LastPosition: in.LastPosition,
	}
}

// instanceOf decodes an instance from the database.
func instanceOf(r *indexpb.Instance) *Instance {
	return &Instance{
		ID: r.Id, Name: r.Name, Version: r.Version, Status: orchestration.Status(r.Status), Generation: r.Generation, ParentID: r.ParentId,
		Created: timeOf(r.Created), LastUpdated: timeOf(r.LastUpdated), Completed: timeOf(r.Completed),
		StartRevision: r.StartRevision, CompletionRevision: r.CompletionRevision, CustomStatusRevision: r.CustomStatusRevision,
		Input: r.Input, Output: r.Output, CustomStatus: r.CustomStatus,
		inputInline: r.InputInline, outputInline: r.OutputInline, customInline: r.CustomInline,
		InputSize: int(r.InputSize), OutputSize: int(r.OutputSize), Failure: failureOf(r.Failure),
		PendingTasks: int(r.PendingTasks), StartAt: timeOf(r.StartAt), NextTimer: timeOf(r.NextTimer),
		AwaitedEvents: r.AwaitedEvents, Runnable: r.Runnable, LastPosition: r.LastPosition,
	}
}

func failureRecord(f *orchestration.FailureDetails) *historypb.FailureDetails {
	if f == nil {
		return nil
	}
	return &historypb.FailureDetails{ErrorType: f.ErrorType, Message: f.Message, StackTrace: f.StackTrace,
		Inner: failureRecord(f.Inner), NonRetriable: f.NonRetriable}
}

func failureOf(f *historypb.FailureDetails) *orchestration.FailureDetails {
	if f == nil {
		return nil
	}
	return &orchestration.FailureDetails{ErrorType: f.ErrorType, Message: f.Message, StackTrace: f.StackTrace,
		Inner: failureOf(f.Inner), NonRetriable: f.NonRetriable}
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
