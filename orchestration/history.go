package orchestration

import (
	"fmt"
	"time"
)

// EventKind names a history event. The names and their order follow the
// Durable Task Framework's EventType, so histories read the same as in Azure
// Durable Functions; kinds durable adds come after DTFx's.
type EventKind uint8

const (
	ExecutionStarted EventKind = iota
	ExecutionCompleted
	ExecutionFailed // reserved by DTFx; durable records failures as ExecutionCompleted with StatusFailed
	ExecutionTerminated
	TaskScheduled
	TaskCompleted
	TaskFailed
	SubOrchestrationInstanceCreated
	SubOrchestrationInstanceCompleted
	SubOrchestrationInstanceFailed
	TimerCreated
	TimerFired
	OrchestratorStarted
	OrchestratorCompleted
	EventSent
	EventRaised
	ContinueAsNew // reserved by DTFx; durable records it as ExecutionCompleted with StatusContinuedAsNew
	GenericEvent
	HistoryState
	ExecutionSuspended
	ExecutionResumed
	ExecutionRewound
	// Entities, as the Durable Task protocol names them.
	EntityOperationSignaled
	EntityOperationCalled
	EntityOperationCompleted
	EntityOperationFailed
	EntityLockRequested
	EntityLockGranted
	EntityUnlockSent
	numEventKinds
)

var kindNames = [...]string{
	ExecutionStarted:                  "ExecutionStarted",
	ExecutionCompleted:                "ExecutionCompleted",
	ExecutionFailed:                   "ExecutionFailed",
	ExecutionTerminated:               "ExecutionTerminated",
	TaskScheduled:                     "TaskScheduled",
	TaskCompleted:                     "TaskCompleted",
	TaskFailed:                        "TaskFailed",
	SubOrchestrationInstanceCreated:   "SubOrchestrationInstanceCreated",
	SubOrchestrationInstanceCompleted: "SubOrchestrationInstanceCompleted",
	SubOrchestrationInstanceFailed:    "SubOrchestrationInstanceFailed",
	TimerCreated:                      "TimerCreated",
	TimerFired:                        "TimerFired",
	OrchestratorStarted:               "OrchestratorStarted",
	OrchestratorCompleted:             "OrchestratorCompleted",
	EventSent:                         "EventSent",
	EventRaised:                       "EventRaised",
	ContinueAsNew:                     "ContinueAsNew",
	GenericEvent:                      "GenericEvent",
	HistoryState:                      "HistoryState",
	ExecutionSuspended:                "ExecutionSuspended",
	ExecutionResumed:                  "ExecutionResumed",
	ExecutionRewound:                  "ExecutionRewound",
	EntityOperationSignaled:           "EntityOperationSignaled",
	EntityOperationCalled:             "EntityOperationCalled",
	EntityOperationCompleted:          "EntityOperationCompleted",
	EntityOperationFailed:             "EntityOperationFailed",
	EntityLockRequested:               "EntityLockRequested",
	EntityLockGranted:                 "EntityLockGranted",
	EntityUnlockSent:                  "EntityUnlockSent",
}

func (k EventKind) String() string {
	if k < numEventKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// ParseEventKind returns the kind with the given name.
func ParseEventKind(name string) (EventKind, bool) {
	for k, n := range kindNames {
		if n == name {
			return EventKind(k), true
		}
	}
	return 0, false
}

// MarshalText encodes the kind by name, so JSON histories read like DTFx's.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a kind from its name.
func (k *EventKind) UnmarshalText(b []byte) error {
	kind, ok := ParseEventKind(string(b))
	if !ok {
		return fmt.Errorf("orchestration: unknown history event kind %q", b)
	}
	*k = kind
	return nil
}

// IsDecision reports whether events of this kind are decisions the
// orchestrator makes (as opposed to inputs it consumes).
func (k EventKind) IsDecision() bool {
	switch k {
	case TaskScheduled, SubOrchestrationInstanceCreated, TimerCreated, EventSent,
		ExecutionCompleted, OrchestratorCompleted,
		EntityOperationSignaled, EntityOperationCalled, EntityLockRequested, EntityUnlockSent:
		return true
	}
	return false
}

// IsOutcome reports whether events of this kind are outcomes of a decision:
// the result of an activity or sub-orchestration, or a fired timer. Their
// EventID is the sequence number of the decision they complete.
func (k EventKind) IsOutcome() bool {
	switch k {
	case TaskCompleted, TaskFailed, SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed, TimerFired,
		EntityOperationCompleted, EntityOperationFailed, EntityLockGranted:
		return true
	}
	return false
}

// HistoryEvent is one event of an orchestration's history. It is a flat
// record: each kind uses the fields listed below and leaves the others zero.
// A flat record keeps decoding and replay free of per-event allocations
// beyond the payloads themselves.
//
//	ExecutionStarted          Name, Version, InstanceID, Input, Parent, FireAt (scheduled start), Generation, RequestID,
//	                          RequestIDs (of earlier generations, after a ContinueAsNew)
//	ExecutionCompleted        Status, Result, Failure
//	ExecutionTerminated       Input (reason), RequestID
//	TaskScheduled             EventID, Name, Version, Input
//	TaskCompleted             EventID (of the TaskScheduled), Result
//	TaskFailed                EventID, Failure
//	SubOrchestrationInstanceCreated    EventID, Name, Version, InstanceID, Input
//	SubOrchestrationInstanceCompleted  EventID, Result
//	SubOrchestrationInstanceFailed     EventID, Failure
//	TimerCreated              EventID, FireAt
//	TimerFired                EventID (of the TimerCreated), FireAt
//	OrchestratorStarted       Timestamp (the episode's time)
//	OrchestratorCompleted     CustomStatus (when the episode changed it), FireAt and AwaitedEvents
//	                          (the wait state after the episode: see Waiting)
//	EventSent                 EventID, InstanceID, Name, Input
//	EventRaised               Name, Input, RequestID
//	ExecutionSuspended/Resumed  Input (reason), RequestID
//	EntityOperationSignaled   EventID, InstanceID (the entity), Name (operation), Input, FireAt (scheduled)
//	EntityOperationCalled     EventID, InstanceID (the entity), Name (operation), Input, LockID (its critical section)
//	EntityOperationCompleted  EventID (of the call), Result
//	EntityOperationFailed     EventID (of the call), Failure
//	EntityLockRequested       EventID, LockSet (the entities, sorted), LockID
//	EntityLockGranted         EventID (of the request)
//	EntityUnlockSent          EventID, InstanceID (the entity), LockID
//
// Timestamp is set on every event: when it was recorded.
type HistoryEvent struct {
	Kind      EventKind `json:"kind"`
	Timestamp time.Time `json:"timestamp,omitzero"`
	// EventID is the sequence number of a decision (TaskScheduled,
	// TimerCreated, SubOrchestrationInstanceCreated, EventSent), or, on a
	// completion, the sequence number of the decision it completes.
	EventID    int32           `json:"eventId,omitempty"`
	Name       string          `json:"name,omitempty"`
	Version    string          `json:"version,omitempty"`
	InstanceID string          `json:"instanceId,omitempty"`
	Input      []byte          `json:"input,omitempty"`
	Result     []byte          `json:"result,omitempty"`
	Failure    *FailureDetails `json:"failure,omitempty"`
	FireAt     time.Time       `json:"fireAt,omitzero"`
	Status     Status          `json:"status,omitempty"`
	Parent     *ParentInstance `json:"parent,omitempty"`
	// Generation counts ContinueAsNew restarts, from 0.
	Generation   int32  `json:"generation,omitempty"`
	CustomStatus []byte `json:"customStatus,omitempty"`
	// RequestID identifies an input that came from outside (a start, a
	// raised event, a terminate), so a redelivered request is dropped.
	RequestID string `json:"requestId,omitempty"`
	// AwaitedEvents are, on an OrchestratorCompleted, the names of the events
	// the code waits for after the episode.
	AwaitedEvents []string `json:"awaitedEvents,omitempty"`
	// RequestIDs are, on the ExecutionStarted of a generation that a
	// ContinueAsNew started, the request IDs recorded shortly before by the
	// generations before it, so that their redeliveries stay duplicates.
	RequestIDs []string `json:"requestIds,omitempty"`
	// LockSet are, on an EntityLockRequested, the entities of the critical
	// section, sorted.
	LockSet []string `json:"lockSet,omitempty"`
	// LockID names a critical section (see EntityLockRequested).
	LockID string `json:"lockId,omitempty"`
}

// ParentInstance identifies the orchestration that started a
// sub-orchestration.
type ParentInstance struct {
	InstanceID string `json:"instanceId"`
	Name       string `json:"name"`
	// EventID is the sequence number of the parent's
	// SubOrchestrationInstanceCreated event.
	EventID int32 `json:"eventId"`
	// Generation is the parent's generation when it started the child, so
	// the child's outcome is not taken by a later generation of the parent.
	Generation int32 `json:"generation,omitempty"`
}

// FailureDetails describes an error: what failed and why.
type FailureDetails struct {
	// ErrorType is the Go type of the error, or "panic" for a recovered panic.
	ErrorType  string          `json:"errorType"`
	Message    string          `json:"message"`
	StackTrace string          `json:"stackTrace,omitempty"`
	Inner      *FailureDetails `json:"inner,omitempty"`
	// NonRetriable failures are not retried by a retry policy.
	NonRetriable bool `json:"nonRetriable,omitempty"`
}

func (f *FailureDetails) String() string {
	if f == nil {
		return "<nil>"
	}
	if f.ErrorType == "" {
		return f.Message
	}
	return f.ErrorType + ": " + f.Message
}

// Status is the runtime status of an orchestration instance. The values are
// the Durable Task Framework's wire values.
type Status int8

const (
	StatusRunning        Status = 0
	StatusCompleted      Status = 1
	StatusContinuedAsNew Status = 2
	StatusFailed         Status = 3
	StatusCanceled       Status = 4
	StatusTerminated     Status = 5
	StatusPending        Status = 6
	StatusSuspended      Status = 7
)

var statusNames = map[Status]string{
	StatusRunning:        "Running",
	StatusCompleted:      "Completed",
	StatusContinuedAsNew: "ContinuedAsNew",
	StatusFailed:         "Failed",
	StatusCanceled:       "Canceled",
	StatusTerminated:     "Terminated",
	StatusPending:        "Pending",
	StatusSuspended:      "Suspended",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Status(%d)", int8(s))
}

// ParseStatus returns the status with the given name.
func ParseStatus(name string) (Status, bool) {
	for s, n := range statusNames {
		if n == name {
			return s, true
		}
	}
	return 0, false
}

// MarshalText encodes the status by name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status from its name.
func (s *Status) UnmarshalText(b []byte) error {
	st, ok := ParseStatus(string(b))
	if !ok {
		return fmt.Errorf("orchestration: unknown status %q", b)
	}
	*s = st
	return nil
}

// IsTerminal reports whether an instance in this status will never run again.
func (s Status) IsTerminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusTerminated || s == StatusCanceled
}
