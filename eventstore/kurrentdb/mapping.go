package kurrentdb

import (
	"math"
	"mime"
	"strings"

	"github.com/google/uuid"
	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/durableactor/durable/eventstore"
)

// The pure translations between the eventstore contract and the client's
// types. The package documentation explains the choices; the functions here
// only apply them, so they can be tested without a server.

// streamState maps an expected revision to the client's StreamState.
func streamState(expected eventstore.ExpectedRevision) kdb.StreamState {
	if rev, ok := expected.Revision(); ok {
		return kdb.StreamRevision{Value: rev}
	}
	switch {
	case expected.IsNoStream():
		return kdb.NoStream{}
	case expected.IsStreamExists():
		return kdb.StreamExists{}
	default:
		return kdb.Any{}
	}
}

// stateRevision is the contract's view of a stream state the server reports
// as the actual one: a revision, NoRevision for "no stream", and
// unknownRevision for the states that name no revision (Any, StreamExists).
func stateRevision(state kdb.StreamState) int64 {
	switch st := state.(type) {
	case kdb.NoStream:
		return eventstore.NoRevision
	case kdb.StreamRevision:
		if st.Value <= math.MaxInt64 {
			return int64(st.Value)
		}
	}
	return unknownRevision
}

// position is the contract's global position of an event or append result:
// the commit half of KurrentDB's position. For every event written through
// the gRPC API both halves are the event's own log position.
func position(p kdb.Position) uint64 { return p.Commit }

// logPosition is the KurrentDB position of the event at the contract's
// position pos. Forward reads include the event at it, subscriptions start
// after it and backward reads end before it.
func logPosition(pos uint64) kdb.Position { return kdb.Position{Commit: pos, Prepare: pos} }

// allPosition maps the start of a global read or subscription.
func allPosition(from eventstore.AllFrom) kdb.AllPosition {
	if pos, ok := from.Position(); ok {
		return logPosition(pos)
	}
	if from.IsEnd() {
		return kdb.End{}
	}
	return kdb.Start{}
}

// streamPosition maps the start of a stream read or subscription. The server
// reads from a revision inclusively and subscribes after it, as the contract
// asks.
func streamPosition(from eventstore.StreamFrom) kdb.StreamPosition {
	if rev, ok := from.Revision(); ok {
		return kdb.StreamRevision{Value: rev}
	}
	if from.IsEnd() {
		return kdb.End{}
	}
	return kdb.Start{}
}

// readCount is the count to ask the server for: the limit, or for "no limit"
// the largest count every server version accepts (the count travels as an
// unsigned 64-bit integer but some servers hold it in a signed one).
func readCount(limit uint64) uint64 {
	if limit == 0 || limit > math.MaxInt64 {
		return math.MaxInt64
	}
	return limit
}

// contentType maps a content type to the only two KurrentDB stores:
// application/json (with or without parameters) is JSON, everything else is
// binary and reads back as application/octet-stream.
func contentType(ct string) kdb.ContentType {
	if media, _, err := mime.ParseMediaType(ct); err == nil && media == eventstore.ContentTypeJSON {
		return kdb.ContentTypeJson
	}
	return kdb.ContentTypeBinary
}

// eventData maps an event to append. A zero ID is replaced here rather than
// left to the client so that the choice is visible and tested.
func eventData(ev eventstore.EventData) kdb.EventData {
	id := ev.ID
	if id == uuid.Nil {
		id = uuid.New()
	}
	return kdb.EventData{
		EventID:     id,
		EventType:   ev.Type,
		ContentType: contentType(ev.ContentType),
		Data:        ev.Data,
		Metadata:    ev.Metadata,
	}
}

// appendResult maps a successful append. NextExpectedVersion is the revision
// of the last event written; CommitPosition is that event's position.
func appendResult(wr *kdb.WriteResult) eventstore.AppendResult {
	return eventstore.AppendResult{
		Revision: wr.NextExpectedVersion,
		Position: position(kdb.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition}),
	}
}

// recordedEvent maps an event read from the server. Empty data and metadata
// become nil, whichever way the server encoded them.
func recordedEvent(r *kdb.RecordedEvent) eventstore.RecordedEvent {
	ct := r.ContentType
	if ct == "" {
		ct = eventstore.ContentTypeBinary
	}
	return eventstore.RecordedEvent{
		Stream:      r.StreamID,
		ID:          r.EventID,
		Type:        r.EventType,
		ContentType: ct,
		Data:        nilIfEmpty(r.Data),
		Metadata:    nilIfEmpty(r.UserMetadata),
		Revision:    r.EventNumber,
		Position:    position(r.Position),
		Created:     r.CreatedDate,
	}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// tombstoneType is the type of the marker event KurrentDB writes at the end
// of a tombstoned stream.
const tombstoneType = "$streamDeleted"

// hidden reports whether a global read or subscription skips an event: the
// events of system streams (names starting with '$': stream metadata,
// projections, statistics, users) and tombstone markers, none of which the
// contract's global log contains.
func hidden(r *kdb.RecordedEvent) bool {
	return strings.HasPrefix(r.StreamID, "$") || r.EventType == tombstoneType
}

// noSystemStreams is the server-side filter of a subscription to $all whose
// contract filter is empty: it spares sending the events of system streams
// only to drop them here.
const noSystemStreams = `^[^$]`

// splitFilter divides a contract filter between the server, which applies one
// kind of filter per subscription, and the client. Stream prefixes go to the
// server when there are any, because durable's streams are grouped by
// category prefix and a category is the selective part; event-type prefixes
// then remain for the client. With no prefixes at all the server still drops
// system streams.
func splitFilter(f eventstore.Filter) (server *kdb.SubscriptionFilter, client eventstore.Filter) {
	switch {
	case len(f.StreamPrefixes) > 0:
		server = &kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Prefixes: f.StreamPrefixes}
		client = eventstore.Filter{EventTypePrefixes: f.EventTypePrefixes}
	case len(f.EventTypePrefixes) > 0:
		server = &kdb.SubscriptionFilter{Type: kdb.EventFilterType, Prefixes: f.EventTypePrefixes}
	default:
		server = &kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Regex: noSystemStreams}
	}
	return server, client
}
