package pebble

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// Key space. Stream names never contain NUL (eventstore.Limits rejects
// control characters), so NUL ends a stream name inside a key.
const (
	prefixStream = 's' // 's' name 0x00 revision(8) -> event
	prefixLog    = 'g' // 'g' position(8)           -> stream, revision, event
	prefixMeta   = 'm' // 'm' name                  -> streamMeta
)

// keyLastPosition holds the last position ever assigned, so positions are
// never reused even when the newest events are deleted.
var keyLastPosition = []byte("z/last-position")

func streamPrefix(name string) []byte {
	k := make([]byte, 0, len(name)+2)
	k = append(k, prefixStream)
	k = append(k, name...)
	return append(k, 0)
}

func streamKey(name string, revision uint64) []byte {
	return appendStreamKey(nil, name, revision)
}

func appendStreamKey(dst []byte, name string, revision uint64) []byte {
	dst = append(dst, prefixStream)
	dst = append(dst, name...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, revision)
}

// streamUpper is the exclusive upper bound of a stream's keys.
func streamUpper(name string) []byte {
	k := streamPrefix(name)
	k[len(k)-1] = 1
	return k
}

func logKey(position uint64) []byte {
	k := make([]byte, 9)
	putLogKey(k, position)
	return k
}

func putLogKey(dst []byte, position uint64) {
	dst[0] = prefixLog
	binary.BigEndian.PutUint64(dst[1:], position)
}

func putPosition(dst []byte, position uint64) { binary.BigEndian.PutUint64(dst, position) }

func metaKey(name string) []byte {
	return append([]byte{prefixMeta}, name...)
}

// streamMeta is the state of one stream.
type streamMeta struct {
	// last is the revision of the last event ever appended, NoRevision if none.
	last int64
	// floor is the first revision that may be read: events below it were
	// truncated or deleted.
	floor uint64
	// lastID is the ID of the last event, so a retried append with Any can
	// be recognised without reading the stream.
	lastID     uuid.UUID
	deleted    bool
	tombstoned bool
}

const metaLen = 33

const (
	flagDeleted = 1 << iota
	flagTombstoned
)

// current is the revision an expected-revision check compares against.
func (m streamMeta) current() int64 {
	if m.deleted || m.tombstoned {
		return eventstore.NoRevision
	}
	return m.last
}

func (m streamMeta) encode() []byte {
	v := make([]byte, metaLen)
	binary.BigEndian.PutUint64(v, uint64(m.last))
	binary.BigEndian.PutUint64(v[8:], m.floor)
	copy(v[16:32], m.lastID[:])
	if m.deleted {
		v[32] |= flagDeleted
	}
	if m.tombstoned {
		v[32] |= flagTombstoned
	}
	return v
}

func decodeMeta(v []byte) (streamMeta, error) {
	if len(v) != metaLen {
		return streamMeta{}, errCorrupt
	}
	m := streamMeta{
		last:       int64(binary.BigEndian.Uint64(v)),
		floor:      binary.BigEndian.Uint64(v[8:]),
		deleted:    v[32]&flagDeleted != 0,
		tombstoned: v[32]&flagTombstoned != 0,
	}
	copy(m.lastID[:], v[16:32])
	return m, nil
}

var errCorrupt = errors.New("pebble eventstore: corrupt record")

// An event value, under its stream key:
//
//	position(8) created-unix-nanos(8) id(16)
//	uvarint len + type, uvarint len + content type, uvarint len + metadata,
//	data (the rest)
//
// The log key holds the same value behind uvarint len + stream name and
// revision(8). Fixed fields come first so a reader can check the position
// without decoding the rest. An empty stored content type means binary.
const fixedLen = 8 + 8 + 16

func eventLen(ev *eventstore.EventData) int {
	ct := storedContentType(ev.ContentType)
	return fixedLen + uvarintLen(len(ev.Type)) + len(ev.Type) + uvarintLen(len(ct)) + len(ct) +
		uvarintLen(len(ev.Metadata)) + len(ev.Metadata) + len(ev.Data)
}

func logPrefixLen(stream string) int {
	return uvarintLen(len(stream)) + len(stream) + 8
}

func storedContentType(ct string) string {
	if ct == eventstore.ContentTypeBinary {
		return ""
	}
	return ct
}

func putEvent(dst []byte, ev *eventstore.EventData, id uuid.UUID, position uint64, created int64) {
	binary.BigEndian.PutUint64(dst, position)
	binary.BigEndian.PutUint64(dst[8:], uint64(created))
	copy(dst[16:32], id[:])
	n := 32
	n += putString(dst[n:], ev.Type)
	n += putString(dst[n:], storedContentType(ev.ContentType))
	n += putString(dst[n:], ev.Metadata)
	copy(dst[n:], ev.Data)
}

func putLogPrefix(dst []byte, stream string, revision uint64) int {
	n := putString(dst, stream)
	binary.BigEndian.PutUint64(dst[n:], revision)
	return n + 8
}

func putString[T string | []byte](dst []byte, s T) int {
	n := binary.PutUvarint(dst, uint64(len(s)))
	return n + copy(dst[n:], s)
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

func valuePosition(v []byte) uint64 { return binary.BigEndian.Uint64(v) }

// decoder turns stored values into RecordedEvents with one allocation per
// event (its data and metadata share a buffer). Type, content type and
// stream names repeat, so it interns them.
type decoder struct {
	strings map[string]string
}

const maxInterned = 1024

func (d *decoder) intern(b []byte) string {
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

// decodeEvent decodes a stream value into ev; the caller sets Stream and Revision.
func (d *decoder) decodeEvent(v []byte, ev *eventstore.RecordedEvent) error {
	if len(v) < fixedLen {
		return errCorrupt
	}
	ev.Position = binary.BigEndian.Uint64(v)
	ev.Created = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC()
	copy(ev.ID[:], v[16:32])
	rest := v[fixedLen:]
	typ, rest, ok := takeString(rest)
	if !ok {
		return errCorrupt
	}
	ct, rest, ok := takeString(rest)
	if !ok {
		return errCorrupt
	}
	meta, data, ok := takeString(rest)
	if !ok {
		return errCorrupt
	}
	ev.Type = d.intern(typ)
	if len(ct) == 0 {
		ev.ContentType = eventstore.ContentTypeBinary
	} else {
		ev.ContentType = d.intern(ct)
	}
	buf := make([]byte, len(meta)+len(data))
	copy(buf, meta)
	copy(buf[len(meta):], data)
	ev.Metadata = buf[:len(meta):len(meta)]
	ev.Data = buf[len(meta):]
	return nil
}

// decodeLogHeader splits a log value into its stream name, revision and
// event value.
func decodeLogHeader(v []byte) (stream []byte, revision uint64, event []byte, err error) {
	stream, rest, ok := takeString(v)
	if !ok || len(rest) < 8 {
		return nil, 0, nil, errCorrupt
	}
	return stream, binary.BigEndian.Uint64(rest), rest[8:], nil
}

// eventType returns the type of an event value without decoding the rest.
func eventType(v []byte) ([]byte, error) {
	if len(v) < fixedLen {
		return nil, errCorrupt
	}
	typ, _, ok := takeString(v[fixedLen:])
	if !ok {
		return nil, errCorrupt
	}
	return typ, nil
}

func takeString(b []byte) (s, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}
