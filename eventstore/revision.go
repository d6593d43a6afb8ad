package eventstore

import "strconv"

// NoRevision is the revision reported for a stream that does not exist.
const NoRevision int64 = -1

type expectedKind uint8

const (
	expectAny expectedKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// ExpectedRevision is the optimistic-concurrency check of an append or delete.
// The zero value is Any.
type ExpectedRevision struct {
	kind     expectedKind
	revision uint64
}

var (
	// Any skips the check.
	Any = ExpectedRevision{kind: expectAny}
	// NoStream requires that the stream does not exist (or was soft-deleted).
	NoStream = ExpectedRevision{kind: expectNoStream}
	// StreamExists requires that the stream exists.
	StreamExists = ExpectedRevision{kind: expectStreamExists}
)

// Exact requires that the stream's last event has the given revision.
func Exact(revision uint64) ExpectedRevision {
	return ExpectedRevision{kind: expectExact, revision: revision}
}

// IsAny reports whether e is Any.
func (e ExpectedRevision) IsAny() bool { return e.kind == expectAny }

// IsNoStream reports whether e is NoStream.
func (e ExpectedRevision) IsNoStream() bool { return e.kind == expectNoStream }

// IsStreamExists reports whether e is StreamExists.
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }

// Revision returns the exact revision and true when e was made by Exact.
func (e ExpectedRevision) Revision() (uint64, bool) {
	return e.revision, e.kind == expectExact
}

// Matches reports whether a stream whose last revision is actual (NoRevision
// when it does not exist) satisfies e.
func (e ExpectedRevision) Matches(actual int64) bool {
	switch e.kind {
	case expectNoStream:
		return actual == NoRevision
	case expectStreamExists:
		return actual != NoRevision
	case expectExact:
		return actual == int64(e.revision)
	default:
		return true
	}
}

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return strconv.FormatUint(e.revision, 10)
	default:
		return "any"
	}
}
