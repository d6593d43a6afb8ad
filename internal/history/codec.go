// Package history encodes orchestration history events for the event store
// and decodes them back, in the protobuf format of historypb/history.proto.
//
// It is written by hand against the schema's shared field table rather than
// through the generated types, because replay decodes every event of a
// history: decoding here allocates nothing per event beyond interned names
// (payloads alias the stored bytes), which is what lets a replay run at
// millions of events per second. Tests check it against the generated types.
package history

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/orchestration"
)

// Field numbers of the shared table in history.proto.
const (
	fieldTimestamp    = 1
	fieldEventID      = 2
	fieldName         = 3
	fieldVersion      = 4
	fieldInstanceID   = 5
	fieldInput        = 6
	fieldResult       = 7
	fieldFailure      = 8
	fieldFireAt       = 9
	fieldStatus       = 10
	fieldParent       = 11
	fieldGeneration   = 12
	fieldCustomStatus = 13
	fieldRequestID    = 14
	fieldAwaited      = 15
	fieldRequestIDs   = 16
	fieldLockSet      = 17
	fieldLockID       = 18
)

// Fields of FailureDetails and ParentInstance.
const (
	failureErrorType    = 1
	failureMessage      = 2
	failureStackTrace   = 3
	failureInner        = 4
	failureNonRetriable = 5

	parentInstanceID = 1
	parentName       = 2
	parentEventID    = 3
	parentGeneration = 4
)

// ErrCorrupt is matched by errors decoding a stored event.
var ErrCorrupt = errors.New("history: corrupt event")

// EpisodeType is the event-store type of an episode record.
const EpisodeType = "Episode"

// Fields of Episode and Entry.
const (
	episodeEvents = 1
	entryType     = 1
	entryData     = 2
)

// AppendEpisode appends the encoding of an episode record holding events.
// Each event is encoded in place and then moved up past its entry's header,
// whose lengths are known only then, so nothing is encoded twice or into a
// scratch buffer.
func AppendEpisode(dst []byte, events []orchestration.HistoryEvent) []byte {
	for i := range events {
		ev := &events[i]
		kind := EventType(ev.Kind)
		start := len(dst)
		dst = Append(dst, ev)
		n := len(dst) - start
		entry := protowire.SizeTag(entryType) + protowire.SizeBytes(len(kind)) + protowire.SizeTag(entryData) + protowire.SizeBytes(n)
		header := protowire.SizeTag(episodeEvents) + protowire.SizeVarint(uint64(entry)) + entry - n
		dst = moveUp(dst, start, header)
		h := dst[start:start]
		h = protowire.AppendTag(h, episodeEvents, protowire.BytesType)
		h = protowire.AppendVarint(h, uint64(entry))
		h = protowire.AppendTag(h, entryType, protowire.BytesType)
		h = protowire.AppendString(h, kind)
		h = protowire.AppendTag(h, entryData, protowire.BytesType)
		protowire.AppendVarint(h, uint64(n))
	}
	return dst
}

// moveUp makes room for by bytes at dst[start:], moving what follows.
func moveUp(dst []byte, start, by int) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, by)...)
	copy(dst[start+by:], dst[start:n])
	return dst
}

// appendLength turns what was appended to dst after start into a
// length-delimited value: its length goes before it.
func appendLength(dst []byte, start int) []byte {
	n := len(dst) - start
	dst = moveUp(dst, start, protowire.SizeVarint(uint64(n)))
	protowire.AppendVarint(dst[start:start], uint64(n))
	return dst
}

// EpisodeData returns an episode record to append, with the given ID.
// Callers that may retry an append must keep the ID, so the retry is
// idempotent.
func EpisodeData(events []orchestration.HistoryEvent, id uuid.UUID) eventstore.EventData {
	return eventstore.EventData{
		ID:          id,
		Type:        EpisodeType,
		ContentType: eventstore.ContentTypeBinary,
		Data:        AppendEpisode(make([]byte, 0, episodeSize(events)), events),
	}
}

// episodeSize is about the size of an episode record, usually a little
// more, so encoding it rarely grows the buffer.
func episodeSize(events []orchestration.HistoryEvent) int {
	size := 0
	for i := range events {
		ev := &events[i]
		size += 64 + len(ev.Name) + len(ev.Version) + len(ev.InstanceID) + len(ev.Input) + len(ev.Result) +
			len(ev.CustomStatus) + len(ev.RequestID) + len(ev.LockID)
		for _, s := range ev.AwaitedEvents {
			size += 2 + len(s)
		}
		for _, s := range ev.RequestIDs {
			size += 2 + len(s)
		}
		for _, s := range ev.LockSet {
			size += 2 + len(s)
		}
		for f := ev.Failure; f != nil; f = f.Inner {
			size += 16 + len(f.ErrorType) + len(f.Message) + len(f.StackTrace)
		}
		if p := ev.Parent; p != nil {
			size += 32 + len(p.InstanceID) + len(p.Name)
		}
	}
	return size
}

// DecodeEpisode decodes an episode record, appending its events to dst.
// The events alias data, as with Decode.
func (d *Decoder) DecodeEpisode(dst []orchestration.HistoryEvent, data []byte) ([]orchestration.HistoryEvent, error) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return dst, corrupt(EpisodeType, protowire.ParseError(n))
		}
		data = data[n:]
		if num != episodeEvents || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
				return dst, corrupt(EpisodeType, protowire.ParseError(n))
			}
			data = data[n:]
			continue
		}
		entry, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return dst, corrupt(EpisodeType, protowire.ParseError(n))
		}
		data = data[n:]
		var kind, body []byte
		if err := eachField(entry, func(num protowire.Number, typ protowire.Type, _ uint64, b []byte) error {
			switch {
			case num == entryType && typ == protowire.BytesType:
				kind = b
			case num == entryData && typ == protowire.BytesType:
				body = b
			}
			return nil
		}); err != nil {
			return dst, corrupt(EpisodeType, err)
		}
		k, ok := d.kind(kind)
		if !ok {
			return dst, fmt.Errorf("%w: unknown event type %q in an episode", ErrCorrupt, kind)
		}
		var ev orchestration.HistoryEvent
		if err := d.decodeFields(k, body, &ev); err != nil {
			return dst, err
		}
		dst = append(dst, ev)
	}
	return dst, nil
}

// EventType is the event-store type of a history event: its kind's name.
func EventType(k orchestration.EventKind) string { return k.String() }

// Append appends the encoding of ev to dst. Zero fields are left out.
func Append(dst []byte, ev *orchestration.HistoryEvent) []byte {
	dst = appendTime(dst, fieldTimestamp, ev.Timestamp)
	if ev.EventID != 0 {
		dst = protowire.AppendTag(dst, fieldEventID, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(ev.EventID)))
	}
	dst = appendString(dst, fieldName, ev.Name)
	dst = appendString(dst, fieldVersion, ev.Version)
	dst = appendString(dst, fieldInstanceID, ev.InstanceID)
	dst = appendBytes(dst, fieldInput, ev.Input)
	dst = appendBytes(dst, fieldResult, ev.Result)
	if ev.Failure != nil {
		dst = protowire.AppendTag(dst, fieldFailure, protowire.BytesType)
		start := len(dst)
		dst = appendLength(appendFailure(dst, ev.Failure), start)
	}
	dst = appendTime(dst, fieldFireAt, ev.FireAt)
	if ev.Status != 0 {
		dst = protowire.AppendTag(dst, fieldStatus, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(ev.Status)))
	}
	if p := ev.Parent; p != nil {
		dst = protowire.AppendTag(dst, fieldParent, protowire.BytesType)
		start := len(dst)
		dst = appendString(dst, parentInstanceID, p.InstanceID)
		dst = appendString(dst, parentName, p.Name)
		if p.EventID != 0 {
			dst = protowire.AppendTag(dst, parentEventID, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(int64(p.EventID)))
		}
		if p.Generation != 0 {
			dst = protowire.AppendTag(dst, parentGeneration, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(int64(p.Generation)))
		}
		dst = appendLength(dst, start)
	}
	if ev.Generation != 0 {
		dst = protowire.AppendTag(dst, fieldGeneration, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(ev.Generation)))
	}
	dst = appendBytes(dst, fieldCustomStatus, ev.CustomStatus)
	dst = appendString(dst, fieldRequestID, ev.RequestID)
	for _, name := range ev.AwaitedEvents {
		dst = protowire.AppendTag(dst, fieldAwaited, protowire.BytesType)
		dst = protowire.AppendString(dst, name)
	}
	for _, id := range ev.RequestIDs {
		dst = protowire.AppendTag(dst, fieldRequestIDs, protowire.BytesType)
		dst = protowire.AppendString(dst, id)
	}
	for _, id := range ev.LockSet {
		dst = protowire.AppendTag(dst, fieldLockSet, protowire.BytesType)
		dst = protowire.AppendString(dst, id)
	}
	dst = appendString(dst, fieldLockID, ev.LockID)
	return dst
}

func appendFailure(dst []byte, f *orchestration.FailureDetails) []byte {
	dst = appendString(dst, failureErrorType, f.ErrorType)
	dst = appendString(dst, failureMessage, f.Message)
	dst = appendString(dst, failureStackTrace, f.StackTrace)
	if f.Inner != nil {
		dst = protowire.AppendTag(dst, failureInner, protowire.BytesType)
		start := len(dst)
		dst = appendLength(appendFailure(dst, f.Inner), start)
	}
	if f.NonRetriable {
		dst = protowire.AppendTag(dst, failureNonRetriable, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	return dst
}

func appendTime(dst []byte, field protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return dst
	}
	dst = protowire.AppendTag(dst, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(dst, uint64(t.UnixNano()))
}

func appendString(dst []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	return protowire.AppendString(dst, s)
}

func appendBytes(dst []byte, field protowire.Number, b []byte) []byte {
	if len(b) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	return protowire.AppendBytes(dst, b)
}

// Decoder decodes stored history events. It interns the strings that repeat
// across a history (activity and event names), so decoding allocates only
// for strings it has not seen. A Decoder is not safe for concurrent use.
type Decoder struct {
	strings map[string]string
	kinds   map[string]orchestration.EventKind
}

// kind returns the kind named by an event type, remembering the answer
// (looking a []byte up in a map by string(b) does not allocate).
func (d *Decoder) kind(eventType []byte) (orchestration.EventKind, bool) {
	if k, ok := d.kinds[string(eventType)]; ok {
		return k, true
	}
	name := string(eventType)
	k, ok := orchestration.ParseEventKind(name)
	if ok {
		if d.kinds == nil {
			d.kinds = make(map[string]orchestration.EventKind)
		}
		d.kinds[name] = k
	}
	return k, ok
}

const maxInterned = 4096

func (d *Decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := d.strings[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.strings == nil {
		d.strings = make(map[string]string)
	}
	if len(d.strings) < maxInterned {
		d.strings[s] = s
	}
	return s
}

// Decode decodes an event of the given type (its kind's name). Input,
// Result and CustomStatus alias data, which the caller must not modify
// afterwards.
func (d *Decoder) Decode(eventType string, data []byte, ev *orchestration.HistoryEvent) error {
	kind, ok := orchestration.ParseEventKind(eventType)
	if !ok {
		return fmt.Errorf("%w: unknown event type %q", ErrCorrupt, eventType)
	}
	return d.decodeFields(kind, data, ev)
}

// decodeFields decodes an event of a known kind.
func (d *Decoder) decodeFields(kind orchestration.EventKind, data []byte, ev *orchestration.HistoryEvent) error {
	eventType := kind.String()
	*ev = orchestration.HistoryEvent{Kind: kind}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return corrupt(eventType, protowire.ParseError(n))
		}
		data = data[n:]
		var err error
		switch {
		case typ == protowire.Fixed64Type && (num == fieldTimestamp || num == fieldFireAt):
			var v uint64
			v, n = protowire.ConsumeFixed64(data)
			t := time.Unix(0, int64(v)).UTC()
			if num == fieldTimestamp {
				ev.Timestamp = t
			} else {
				ev.FireAt = t
			}
		case typ == protowire.VarintType && (num == fieldEventID || num == fieldStatus || num == fieldGeneration):
			var v uint64
			v, n = protowire.ConsumeVarint(data)
			switch num {
			case fieldEventID:
				ev.EventID = int32(v)
			case fieldStatus:
				ev.Status = orchestration.Status(int64(v))
			default:
				ev.Generation = int32(v)
			}
		case typ == protowire.BytesType:
			var b []byte
			b, n = protowire.ConsumeBytes(data)
			if n >= 0 {
				err = d.setBytes(ev, num, b)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return corrupt(eventType, protowire.ParseError(n))
		}
		if err != nil {
			return corrupt(eventType, err)
		}
		data = data[n:]
	}
	return nil
}

func corrupt(eventType string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, eventType, err)
}

func (d *Decoder) setBytes(ev *orchestration.HistoryEvent, num protowire.Number, b []byte) error {
	switch num {
	case fieldName:
		ev.Name = d.intern(b)
	case fieldVersion:
		ev.Version = d.intern(b)
	case fieldInstanceID:
		ev.InstanceID = string(b)
	case fieldInput:
		ev.Input = b
	case fieldResult:
		ev.Result = b
	case fieldFailure:
		f, err := decodeFailure(b, 0)
		if err != nil {
			return err
		}
		ev.Failure = f
	case fieldParent:
		p, err := decodeParent(b)
		if err != nil {
			return err
		}
		ev.Parent = p
	case fieldCustomStatus:
		ev.CustomStatus = b
	case fieldRequestID:
		ev.RequestID = string(b)
	case fieldAwaited:
		ev.AwaitedEvents = append(ev.AwaitedEvents, d.intern(b))
	case fieldRequestIDs:
		ev.RequestIDs = append(ev.RequestIDs, string(b))
	case fieldLockSet:
		ev.LockSet = append(ev.LockSet, string(b))
	case fieldLockID:
		ev.LockID = string(b)
	}
	return nil
}

// maxFailureDepth bounds the nesting of inner failures a decoder follows.
const maxFailureDepth = 32

func decodeFailure(data []byte, depth int) (*orchestration.FailureDetails, error) {
	if depth > maxFailureDepth {
		return nil, errors.New("failure details nested too deeply")
	}
	f := &orchestration.FailureDetails{}
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == failureErrorType && typ == protowire.BytesType:
			f.ErrorType = string(b)
		case num == failureMessage && typ == protowire.BytesType:
			f.Message = string(b)
		case num == failureStackTrace && typ == protowire.BytesType:
			f.StackTrace = string(b)
		case num == failureInner && typ == protowire.BytesType:
			inner, err := decodeFailure(b, depth+1)
			if err != nil {
				return err
			}
			f.Inner = inner
		case num == failureNonRetriable && typ == protowire.VarintType:
			f.NonRetriable = v != 0
		}
		return nil
	})
	return f, err
}

func decodeParent(data []byte) (*orchestration.ParentInstance, error) {
	p := &orchestration.ParentInstance{}
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == parentInstanceID && typ == protowire.BytesType:
			p.InstanceID = string(b)
		case num == parentName && typ == protowire.BytesType:
			p.Name = string(b)
		case num == parentEventID && typ == protowire.VarintType:
			p.EventID = int32(v)
		case num == parentGeneration && typ == protowire.VarintType:
			p.Generation = int32(v)
		}
		return nil
	})
	return p, err
}

// eachField calls f for every field of a nested message; v holds varint
// values and b bytes values.
func eachField(data []byte, f func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		var v uint64
		var b []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(data)
		case protowire.BytesType:
			b, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		if err := f(num, typ, v, b); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// DecodeRecord decodes one stored event, an episode record or a single
// history event, appending its history events to dst.
func (d *Decoder) DecodeRecord(dst []orchestration.HistoryEvent, rec *eventstore.RecordedEvent) ([]orchestration.HistoryEvent, error) {
	var err error
	if rec.Type == EpisodeType {
		dst, err = d.DecodeEpisode(dst, rec.Data)
	} else {
		var ev orchestration.HistoryEvent
		if err = d.Decode(rec.Type, rec.Data, &ev); err == nil {
			dst = append(dst, ev)
		}
	}
	if err != nil {
		return dst, fmt.Errorf("%s@%d: %w", rec.Stream, rec.Revision, err)
	}
	return dst, nil
}

// DecodeRecorded decodes stored events into dst and returns it.
func (d *Decoder) DecodeRecorded(dst []orchestration.HistoryEvent, events []eventstore.RecordedEvent) ([]orchestration.HistoryEvent, error) {
	for n := range events {
		var err error
		if dst, err = d.DecodeRecord(dst, &events[n]); err != nil {
			return dst, err
		}
	}
	return dst, nil
}
