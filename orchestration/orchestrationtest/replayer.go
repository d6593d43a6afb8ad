package orchestrationtest

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/durableactor/durable/orchestration"
)

// A history file is a JSON array of events in the shape of
// orchestration.HistoryEvent, except that payloads (input, result,
// customStatus) that are valid JSON are written as JSON values, so recorded
// histories stay readable and reviewable in testdata/. Other payloads are
// written as base64 under inputBase64, resultBase64 and customStatusBase64.
type fileEvent struct {
	orchestration.HistoryEvent
	Input              json.RawMessage `json:"input,omitempty"`
	Result             json.RawMessage `json:"result,omitempty"`
	CustomStatus       json.RawMessage `json:"customStatus,omitempty"`
	InputBase64        []byte          `json:"inputBase64,omitempty"`
	ResultBase64       []byte          `json:"resultBase64,omitempty"`
	CustomStatusBase64 []byte          `json:"customStatusBase64,omitempty"`
}

// payload splits a payload into its JSON or base64 form.
func payload(b []byte) (json.RawMessage, []byte) {
	if len(b) == 0 {
		return nil, nil
	}
	if json.Valid(b) {
		return json.RawMessage(b), nil
	}
	return nil, b
}

func joined(raw json.RawMessage, b64 []byte) []byte {
	if len(raw) > 0 {
		return []byte(raw)
	}
	return b64
}

// MarshalHistory encodes a history in the history file format.
func MarshalHistory(history []orchestration.HistoryEvent) ([]byte, error) {
	out := make([]fileEvent, len(history))
	for n, ev := range history {
		f := fileEvent{HistoryEvent: ev}
		f.HistoryEvent.Input, f.HistoryEvent.Result, f.HistoryEvent.CustomStatus = nil, nil, nil
		f.Input, f.InputBase64 = payload(ev.Input)
		f.Result, f.ResultBase64 = payload(ev.Result)
		f.CustomStatus, f.CustomStatusBase64 = payload(ev.CustomStatus)
		out[n] = f
	}
	return json.MarshalIndent(out, "", "  ")
}

// UnmarshalHistory decodes a history file.
func UnmarshalHistory(data []byte) ([]orchestration.HistoryEvent, error) {
	var in []fileEvent
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("orchestrationtest: decode history: %w", err)
	}
	out := make([]orchestration.HistoryEvent, len(in))
	for n, f := range in {
		ev := f.HistoryEvent
		ev.Input = joined(f.Input, f.InputBase64)
		ev.Result = joined(f.Result, f.ResultBase64)
		ev.CustomStatus = joined(f.CustomStatus, f.CustomStatusBase64)
		out[n] = ev
	}
	return out, nil
}

// SaveHistory writes a history file, for example to record an instance of
// today's code in testdata/ and replay it against tomorrow's.
func SaveHistory(path string, history []orchestration.HistoryEvent) error {
	data, err := MarshalHistory(history)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// LoadHistory reads a history file.
func LoadHistory(path string) ([]orchestration.HistoryEvent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return UnmarshalHistory(data)
}

// Replay replays a recorded history (the last generation of it) against the
// orchestrators in reg and returns a *orchestration.NonDeterminismError if
// the code no longer makes the recorded decisions, or the executor's other
// errors (an unknown orchestrator, a limit). It returns nil when the code
// replays the history faithfully.
func Replay(reg *orchestration.Registry, history []orchestration.HistoryEvent, opts orchestration.Options) error {
	inst := orchestration.NewInstance(reg, opts)
	defer inst.Close()
	if _, err := inst.Replay(history); err != nil {
		return err
	}
	return inst.Err()
}

// ReplayFile replays the history file at path; see Replay.
func ReplayFile(reg *orchestration.Registry, path string, opts orchestration.Options) error {
	history, err := LoadHistory(path)
	if err != nil {
		return err
	}
	if err := Replay(reg, history, opts); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
