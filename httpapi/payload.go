package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// timeFormat is how Durable Functions writes the times of a status: to
// the second, in UTC.
const timeFormat = "2006-01-02T15:04:05Z"

// StatusPayload is an instance's status, as GET /instances/{id} and list
// items show it; clients decode it. The fields after lastUpdatedTime are
// durable's own.
type StatusPayload struct {
	Name            string          `json:"name"`
	InstanceID      string          `json:"instanceId"`
	RuntimeStatus   string          `json:"runtimeStatus"`
	Input           json.RawMessage `json:"input"`
	CustomStatus    json.RawMessage `json:"customStatus"`
	Output          json.RawMessage `json:"output"`
	CreatedTime     string          `json:"createdTime"`
	LastUpdatedTime string          `json:"lastUpdatedTime"`
	CompletedTime   string          `json:"completedTime,omitempty"`
	FailureDetails  *FailurePayload `json:"failureDetails,omitempty"`
	// WaitsFor is the instance's durable reason to run again.
	WaitsFor      string           `json:"waitsFor,omitempty"`
	HistoryEvents []map[string]any `json:"historyEvents,omitempty"`
}

// FailurePayload describes why an instance or a task failed.
type FailurePayload struct {
	ErrorType    string          `json:"errorType"`
	ErrorMessage string          `json:"errorMessage"`
	StackTrace   string          `json:"stackTrace,omitempty"`
	InnerFailure *FailurePayload `json:"innerFailure,omitempty"`
}

func failureOf(f *orchestration.FailureDetails) *FailurePayload {
	if f == nil {
		return nil
	}
	return &FailurePayload{ErrorType: f.ErrorType, ErrorMessage: f.Message, StackTrace: f.StackTrace, InnerFailure: failureOf(f.Inner)}
}

// raw returns a payload as JSON: itself when it is JSON, a JSON string
// of it otherwise (a converter that is not JSON), null when empty.
func raw(b []byte) json.RawMessage {
	switch {
	case len(b) == 0:
		return nil
	case json.Valid(b):
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func statusOf(st *durable.Status, showInput bool) *StatusPayload {
	p := &StatusPayload{
		Name: st.Name, InstanceID: st.InstanceID, RuntimeStatus: st.RuntimeStatus.String(),
		CustomStatus: raw(st.CustomStatus), Output: raw(st.Output),
		CreatedTime: formatTime(st.CreatedAt), LastUpdatedTime: formatTime(st.LastUpdated), CompletedTime: formatTime(st.CompletedAt),
		FailureDetails: failureOf(st.Failure), WaitsFor: st.WaitsFor,
	}
	if showInput {
		p.Input = raw(st.Input)
	}
	if st.Failure != nil && p.Output == nil {
		// Durable Functions shows a failure's message as the output.
		p.Output, _ = json.Marshal(st.Failure.Message)
	}
	return p
}

// CheckStatusPayload is the body of a 202 that started an instance: where
// to follow and manage it.
type CheckStatusPayload struct {
	ID                    string `json:"id"`
	StatusQueryGetURI     string `json:"statusQueryGetUri"`
	SendEventPostURI      string `json:"sendEventPostUri"`
	TerminatePostURI      string `json:"terminatePostUri"`
	PurgeHistoryDeleteURI string `json:"purgeHistoryDeleteUri"`
	RestartPostURI        string `json:"restartPostUri"`
	SuspendPostURI        string `json:"suspendPostUri"`
	ResumePostURI         string `json:"resumePostUri"`
}

// checkStatusOf builds the management URLs of an instance from the
// request's scheme and host.
func (h *Handler) checkStatusOf(r *http.Request, id string) CheckStatusPayload {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	instance := scheme + "://" + r.Host + h.cfg.BasePath + "/instances/" + url.PathEscape(id)
	return CheckStatusPayload{
		ID:                    id,
		StatusQueryGetURI:     instance,
		SendEventPostURI:      instance + "/raiseEvent/{eventName}",
		TerminatePostURI:      instance + "/terminate?reason={text}",
		PurgeHistoryDeleteURI: instance,
		RestartPostURI:        instance + "/restart",
		SuspendPostURI:        instance + "/suspend?reason={text}",
		ResumePostURI:         instance + "/resume?reason={text}",
	}
}

// CheckStatusResponse answers a request that started an instance as the
// API's start does: 202 Accepted, Location naming the status URL,
// Retry-After, and the check-status payload. Services that start
// instances from their own handlers answer with it.
func (h *Handler) CheckStatusResponse(w http.ResponseWriter, r *http.Request, id string) {
	cs := h.checkStatusOf(r, id)
	w.Header().Set("Location", cs.StatusQueryGetURI)
	w.Header().Set("Retry-After", "10")
	writeJSON(w, http.StatusAccepted, cs)
}

// WaitForCompletionOrCheckStatus waits up to timeout for an instance to
// end and answers with its output (200) or, for a failed, terminated or
// canceled one, its status (200); when it has not ended by then, with the
// check-status response (202).
func (h *Handler) WaitForCompletionOrCheckStatus(w http.ResponseWriter, r *http.Request, id string, timeout time.Duration) {
	h.waitOrCheck(w, r, id, timeout, false)
}

// ShapeHistory shapes an instance's history as Durable Functions shows it: the
// episode markers dropped, each task and sub-orchestration shown once, at
// its outcome, with its name and when it was scheduled.
func ShapeHistory(events []orchestration.HistoryEvent, showInput, showOutput bool) []map[string]any {
	scheduled := make(map[int32]*orchestration.HistoryEvent)
	out := make([]map[string]any, 0, len(events))
	for i := range events {
		ev := &events[i]
		switch ev.Kind {
		case orchestration.OrchestratorStarted, orchestration.OrchestratorCompleted:
			continue
		case orchestration.TaskScheduled, orchestration.SubOrchestrationInstanceCreated:
			scheduled[ev.EventID] = ev
			continue
		}
		item := map[string]any{"EventType": ev.Kind.String(), "Timestamp": ev.Timestamp.UTC().Format(time.RFC3339Nano)}
		input := ev.Input
		switch ev.Kind {
		case orchestration.ExecutionStarted:
			item["FunctionName"] = ev.Name
			if !ev.FireAt.IsZero() {
				item["ScheduledStartTime"] = ev.FireAt.UTC().Format(time.RFC3339Nano)
			}
		case orchestration.TaskCompleted, orchestration.TaskFailed,
			orchestration.SubOrchestrationInstanceCompleted, orchestration.SubOrchestrationInstanceFailed:
			input = nil
			if s, ok := scheduled[ev.EventID]; ok {
				item["FunctionName"] = s.Name
				item["ScheduledTime"] = s.Timestamp.UTC().Format(time.RFC3339Nano)
				input = s.Input
				if s.InstanceID != "" {
					item["InstanceId"] = s.InstanceID
				}
			}
		case orchestration.TimerCreated, orchestration.TimerFired:
			item["FireAt"] = ev.FireAt.UTC().Format(time.RFC3339Nano)
		case orchestration.ExecutionCompleted:
			item["OrchestrationStatus"] = ev.Status.String()
		default:
			if ev.Name != "" {
				item["Name"] = ev.Name
			}
			if ev.InstanceID != "" {
				item["InstanceId"] = ev.InstanceID
			}
		}
		if showInput && len(input) > 0 {
			item["Input"] = raw(input)
		}
		if showOutput && len(ev.Result) > 0 {
			item["Result"] = raw(ev.Result)
		}
		if ev.Failure != nil {
			item["FailureDetails"] = failureOf(ev.Failure)
		}
		out = append(out, item)
	}
	return out
}
