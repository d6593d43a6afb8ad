package idempotency

import (
	"testing"

	"github.com/durableactor/durable/eventstore"
)

func TestRevisions(t *testing.T) {
	const none = ^uint64(0)
	for _, c := range []struct {
		name     string
		expected eventstore.ExpectedRevision
		floor    uint64
		last     int64
		n        int
		want     uint64 // none when the append cannot be a retry
	}{
		{"NoStream", eventstore.NoStream, 0, 4, 2, 0},
		{"NoStreamWholeStream", eventstore.NoStream, 0, 1, 2, 0},
		{"NoStreamLongerThanTheStream", eventstore.NoStream, 0, 1, 3, none},
		{"NoStreamTruncated", eventstore.NoStream, 1, 4, 2, none},
		// A NoStream append that recreated a deleted stream wrote after the
		// deleted events; its retry looks at revision 0 and is no retry.
		{"NoStreamRecreated", eventstore.NoStream, 3, 3, 1, none},
		{"Exact", eventstore.Exact(1), 0, 4, 3, 2},
		{"ExactAtTheEnd", eventstore.Exact(1), 0, 4, 4, none},
		{"ExactIsTheLast", eventstore.Exact(4), 0, 4, 1, none},
		{"ExactPastTheEnd", eventstore.Exact(9), 0, 4, 1, none},
		{"ExactHuge", eventstore.Exact(^uint64(0)), 0, 4, 1, none},
		{"ExactTruncated", eventstore.Exact(1), 3, 4, 2, none},
		{"ExactAtTheFloor", eventstore.Exact(2), 3, 4, 2, 3},
		{"Any", eventstore.Any, 0, 4, 2, 3},
		{"AnyWholeStream", eventstore.Any, 0, 4, 5, 0},
		{"AnyLongerThanTheStream", eventstore.Any, 0, 4, 6, none},
		{"AnyTruncated", eventstore.Any, 4, 4, 2, none},
		{"StreamExists", eventstore.StreamExists, 2, 4, 3, 2},
		{"NoStreamMissing", eventstore.NoStream, 0, eventstore.NoRevision, 1, none},
		{"AnyMissing", eventstore.Any, 0, eventstore.NoRevision, 1, none},
		{"NoEvents", eventstore.Any, 0, 4, 0, none},
		{"FullyTruncated", eventstore.Any, 5, 4, 1, none},
	} {
		first, ok := Revisions(c.expected, c.floor, c.last, c.n)
		if !ok {
			first = none
		}
		if first != c.want {
			t.Errorf("%s: Revisions(%s, %d, %d, %d) = %d, %v; want %d", c.name, c.expected, c.floor, c.last, c.n, first, ok, c.want)
		}
	}
}
