// Package idempotency is the rule by which the backends that keep their own
// storage (memory, pebble) recognise a retried append, written once so that
// they cannot drift apart.
//
// The rule is EventStoreDB's: the expected revision of the retry says where
// the original append wrote its events, and the retry is recognised when
// the events there carry its IDs. NoStream names revision 0 onwards, as it
// does on a new stream; Exact(r) names r+1 onwards; Any and StreamExists
// name no revision, so the retry's events must be the stream's last ones.
// Only readable events count: once events were truncated or deleted, a
// retry that would need them is an ordinary append again.
package idempotency

import "github.com/durableactor/durable/eventstore"

// Revisions returns the first of the n revisions whose events must carry
// the IDs of a retry of an append at expected, in a stream whose readable
// events are those from floor to last (last is eventstore.NoRevision for a
// stream that does not exist or was deleted). ok is false when those
// revisions are not all readable, so the append cannot be a retry.
func Revisions(expected eventstore.ExpectedRevision, floor uint64, last int64, n int) (first uint64, ok bool) {
	if last == eventstore.NoRevision || n <= 0 || int64(n) > last+1 {
		return 0, false
	}
	switch rev, exact := expected.Revision(); {
	case exact:
		if rev >= uint64(last) {
			return 0, false
		}
		first = rev + 1
	case expected.IsNoStream():
		first = 0
	default:
		first = uint64(last + 1 - int64(n))
	}
	if first < floor || first+uint64(n)-1 > uint64(last) {
		return 0, false
	}
	return first, true
}
