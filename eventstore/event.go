package eventstore

import (
	"time"

	"github.com/google/uuid"
)

// Content types understood by every backend. Other values are stored as
// given by backends that can (see eventstoretest.Features).
const (
	ContentTypeJSON   = "application/json"
	ContentTypeBinary = "application/octet-stream"
)

// EventData is an event to append.
type EventData struct {
	// ID identifies the event; appending the same IDs again at the same
	// expected revision is idempotent. A zero ID is replaced by a random one,
	// which makes a retried append write twice, so callers that retry should
	// set it.
	ID uuid.UUID
	// Type names what happened, for example "TaskScheduled". It must not be empty.
	Type string
	// ContentType describes Data; empty means ContentTypeBinary.
	ContentType string
	Data        []byte
	Metadata    []byte
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	Stream      string
	ID          uuid.UUID
	Type        string
	ContentType string
	Data        []byte
	Metadata    []byte
	// Revision is the event's 0-based number in its stream.
	Revision uint64
	// Position is the event's global commit position: it grows in commit
	// order across all streams.
	Position uint64
	// Created is when the store committed the event.
	Created time.Time
}

// AppendResult is what a successful Append reports.
type AppendResult struct {
	// Revision is the revision of the last event written, which is the
	// expected revision for the stream's next append.
	Revision uint64
	// Position is the global commit position of the last event written.
	Position uint64
}
