package eventstore

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Default limits.
const (
	DefaultMaxEventSize        = 1 << 20
	DefaultMaxAppendSize       = 16 << 20
	DefaultMaxStreamNameLength = 1024
	DefaultMaxEventTypeLength  = 256
)

// Limits bound what a store accepts. Zero fields take the defaults above.
// Every backend checks an append against its Limits before it touches
// storage, so a rejected append changes nothing.
type Limits struct {
	// MaxEventSize bounds an event's data plus metadata, in bytes.
	MaxEventSize int
	// MaxAppendSize bounds the data plus metadata of one append, in bytes.
	MaxAppendSize int
	// MaxStreamNameLength bounds a stream name, in bytes.
	MaxStreamNameLength int
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxEventSize <= 0 {
		l.MaxEventSize = DefaultMaxEventSize
	}
	if l.MaxAppendSize <= 0 {
		l.MaxAppendSize = DefaultMaxAppendSize
	}
	if l.MaxStreamNameLength <= 0 {
		l.MaxStreamNameLength = DefaultMaxStreamNameLength
	}
	return l
}

// CheckStreamName returns an *InvalidStreamNameError unless stream is a name
// the store accepts: non-empty, valid UTF-8 without control characters, not
// starting with '$' (reserved for system streams, as in EventStoreDB), and no
// longer than MaxStreamNameLength.
func (l Limits) CheckStreamName(stream string) error {
	l = l.WithDefaults()
	reason := ""
	switch {
	case stream == "":
		reason = "empty"
	case len(stream) > l.MaxStreamNameLength:
		reason = "longer than " + strconv.Itoa(l.MaxStreamNameLength) + " bytes"
	case strings.HasPrefix(stream, "$"):
		reason = "names starting with '$' are reserved for system streams"
	case !utf8.ValidString(stream):
		reason = "not valid UTF-8"
	case strings.IndexFunc(stream, isControl) >= 0:
		reason = "contains a control character"
	}
	if reason != "" {
		return &InvalidStreamNameError{Stream: stream, Reason: reason}
	}
	return nil
}

// CheckAppend validates the stream name and every event of an append against
// l, returning the first problem as a typed error, or ErrNoEvents for an
// append without events.
func (l Limits) CheckAppend(stream string, events []EventData) error {
	l = l.WithDefaults()
	if err := l.CheckStreamName(stream); err != nil {
		return err
	}
	if len(events) == 0 {
		return ErrNoEvents
	}
	total := 0
	for i, ev := range events {
		if reason := checkEventType(ev.Type); reason != "" {
			return &InvalidEventError{Stream: stream, Index: i, Reason: reason}
		}
		if strings.IndexFunc(ev.ContentType, isControl) >= 0 {
			return &InvalidEventError{Stream: stream, Index: i, Reason: "content type contains a control character"}
		}
		size := len(ev.Data) + len(ev.Metadata)
		if size > l.MaxEventSize {
			return &EventTooLargeError{Stream: stream, EventID: ev.ID, Size: size, Limit: l.MaxEventSize}
		}
		total += size
	}
	if total > l.MaxAppendSize {
		return &AppendTooLargeError{Stream: stream, Size: total, Limit: l.MaxAppendSize}
	}
	return nil
}

func checkEventType(t string) string {
	switch {
	case t == "":
		return "event type is empty"
	case len(t) > DefaultMaxEventTypeLength:
		return "event type is longer than " + strconv.Itoa(DefaultMaxEventTypeLength) + " bytes"
	case !utf8.ValidString(t):
		return "event type is not valid UTF-8"
	case strings.IndexFunc(t, isControl) >= 0:
		return "event type contains a control character"
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
