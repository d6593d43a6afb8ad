package eventstore

import "strings"

// Direction is the order of a read.
type Direction uint8

const (
	// Forwards reads in increasing revision or position. It is the zero value.
	Forwards Direction = iota
	// Backwards reads in decreasing revision or position.
	Backwards
)

type fromKind uint8

const (
	fromStart fromKind = iota
	fromEnd
	fromAt
)

// StreamFrom says where a stream read or subscription starts. A read
// includes the event at the given revision; a subscription starts after it,
// so a subscriber passes the revision of the last event it processed. The
// zero value is StreamStart.
type StreamFrom struct {
	kind     fromKind
	revision uint64
}

var (
	// StreamStart is the first event of a stream.
	StreamStart = StreamFrom{kind: fromStart}
	// StreamEnd is the end of a stream: a backwards read starts at its last
	// event, a forwards read yields nothing, and a subscription receives only
	// events appended after it starts.
	StreamEnd = StreamFrom{kind: fromEnd}
)

// FromRevision starts a read at revision (inclusive) or a subscription after
// it (exclusive).
func FromRevision(revision uint64) StreamFrom {
	return StreamFrom{kind: fromAt, revision: revision}
}

// IsStart reports whether f is StreamStart.
func (f StreamFrom) IsStart() bool { return f.kind == fromStart }

// IsEnd reports whether f is StreamEnd.
func (f StreamFrom) IsEnd() bool { return f.kind == fromEnd }

// Revision returns the revision and true when f was made by FromRevision.
func (f StreamFrom) Revision() (uint64, bool) { return f.revision, f.kind == fromAt }

// AllFrom says where a read or subscription of the global log starts. A read
// includes the event at the given position; a subscription starts after it,
// so a subscriber passes its checkpoint, the position of the last event it
// processed. The zero value is AllStart.
type AllFrom struct {
	kind     fromKind
	position uint64
}

var (
	// AllStart is the first event of the global log.
	AllStart = AllFrom{kind: fromStart}
	// AllEnd is the end of the global log: a backwards read starts at its
	// last event, a forwards read yields nothing, and a subscription receives
	// only events appended after it starts.
	AllEnd = AllFrom{kind: fromEnd}
)

// FromPosition starts a read at position (inclusive) or a subscription after
// it (exclusive).
func FromPosition(position uint64) AllFrom {
	return AllFrom{kind: fromAt, position: position}
}

// IsStart reports whether f is AllStart.
func (f AllFrom) IsStart() bool { return f.kind == fromStart }

// IsEnd reports whether f is AllEnd.
func (f AllFrom) IsEnd() bool { return f.kind == fromEnd }

// Position returns the position and true when f was made by FromPosition.
func (f AllFrom) Position() (uint64, bool) { return f.position, f.kind == fromAt }

// ReadStreamOptions configure ReadStream.
type ReadStreamOptions struct {
	Direction Direction
	From      StreamFrom
	// Limit is the most events to read; 0 reads to the end.
	Limit uint64
}

// ReadAllOptions configure ReadAll.
type ReadAllOptions struct {
	Direction Direction
	From      AllFrom
	// Limit is the most matching events to read; 0 reads to the end.
	Limit  uint64
	Filter Filter
}

// SubscribeStreamOptions configure SubscribeToStream.
type SubscribeStreamOptions struct {
	From StreamFrom
}

// SubscribeAllOptions configure SubscribeToAll.
type SubscribeAllOptions struct {
	From   AllFrom
	Filter Filter
}

// Filter selects events of the global log. An event matches when its stream
// starts with one of StreamPrefixes (or StreamPrefixes is empty) and its type
// starts with one of EventTypePrefixes (or EventTypePrefixes is empty).
type Filter struct {
	StreamPrefixes    []string
	EventTypePrefixes []string
}

// IsEmpty reports whether f matches every event.
func (f Filter) IsEmpty() bool {
	return len(f.StreamPrefixes) == 0 && len(f.EventTypePrefixes) == 0
}

// MatchStream reports whether stream passes the stream part of f.
func (f Filter) MatchStream(stream string) bool {
	return hasAnyPrefix(stream, f.StreamPrefixes)
}

// MatchType reports whether eventType passes the event type part of f.
func (f Filter) MatchType(eventType string) bool {
	return hasAnyPrefix(eventType, f.EventTypePrefixes)
}

// Match reports whether an event of eventType in stream passes f.
func (f Filter) Match(stream, eventType string) bool {
	return f.MatchStream(stream) && f.MatchType(eventType)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
