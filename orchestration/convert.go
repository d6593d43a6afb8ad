package orchestration

import "encoding/json"

// Converter turns user values (inputs, outputs, event payloads, custom
// status) into the bytes stored in history and back. The default is JSON.
// Marshal of a nil value must return nil, and Unmarshal of empty data must
// leave the target unchanged, so absent payloads cost nothing.
type Converter interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Converter.
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
