package index

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/durableactor/durable/orchestration"
)

// The index's key space. Every key starts with one byte naming its table:
//
//	I id                          the instance's record
//	C created id                  instances in order of creation
//	S status created id           instances by status, then creation
//	M name 0 status created id    instances by orchestrator name (lower-cased),
//	                              then status, then creation
//	D due id                      non-terminal instances by due time
//	F id                          instances with work in flight
//	W id                          stranded instances (should stay empty)
//	E id                          the entity's record
//	L id                          entities held by a lock
//	Z id                          entities that hold nothing
//	X applied                     the layout version and the global position applied
//
// Times are big-endian Unix nanoseconds, so keys sort in time order; IDs
// end a key (instance IDs hold no NUL), so a prefix scan is an ID-prefix
// scan.
const (
	tableInstance = 'I'
	tableCreated  = 'C'
	tableStatus   = 'S'
	tableName     = 'M'
	tableDue      = 'D'
	tableInFlight = 'F'
	tableStranded = 'W'
	tableEntity   = 'E'
	tableLocked   = 'L'
	tableEmpty    = 'Z'
)

var keyApplied = []byte("Xapplied")

func instanceKey(id string) []byte { return append([]byte{tableInstance}, id...) }
func entityKey(id string) []byte   { return append([]byte{tableEntity}, id...) }

func appendTime(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(max(t.UnixNano(), 0)))
}

func createdKey(t time.Time, id string) []byte {
	return append(appendTime([]byte{tableCreated}, t), id...)
}

func statusKey(s orchestration.Status, t time.Time, id string) []byte {
	return append(appendTime([]byte{tableStatus, byte(s)}, t), id...)
}

// nameStatusPrefix is the start of the keys of the instances of one name
// and status in the name table.
func nameStatusPrefix(name string, s orchestration.Status) []byte {
	return append(append(append([]byte{tableName}, strings.ToLower(name)...), 0), byte(s))
}

func nameKey(name string, s orchestration.Status, t time.Time, id string) []byte {
	return append(appendTime(nameStatusPrefix(name, s), t), id...)
}

func dueKey(t time.Time, id string) []byte {
	return append(appendTime([]byte{tableDue}, t), id...)
}

// upper returns the smallest key after every key with prefix p.
func upper(p []byte) []byte {
	u := append([]byte(nil), p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

// secondary returns the secondary keys of an instance record (nil: none).
func secondary(in *Instance) [][]byte {
	if in == nil {
		return nil
	}
	keys := [][]byte{
		createdKey(in.Created, in.ID),
		statusKey(in.Status, in.Created, in.ID),
		nameKey(in.Name, in.Status, in.Created, in.ID),
	}
	if at, due := in.Due(); due {
		keys = append(keys, dueKey(at, in.ID))
	}
	if in.InFlight() {
		keys = append(keys, append([]byte{tableInFlight}, in.ID...))
	}
	if in.Stranded() {
		keys = append(keys, append([]byte{tableStranded}, in.ID...))
	}
	return keys
}
