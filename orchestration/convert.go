package orchestration

import "github.com/durableactor/durable/entities"

// Converter turns user values (inputs, outputs, event payloads, custom
// status) into the bytes stored in history and back. The default is JSON.
// Marshal of a nil value must return nil, and Unmarshal of empty data must
// leave the target unchanged, so absent payloads cost nothing. It is the
// entities' Converter: one value encodes an engine's orchestrations and
// entities alike.
type Converter = entities.Converter

// JSON is the default Converter.
var JSON = entities.JSON
