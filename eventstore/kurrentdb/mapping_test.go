package kurrentdb

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/durableactor/durable/eventstore"
)

func TestStreamState(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expected eventstore.ExpectedRevision
		want     kdb.StreamState
	}{
		{eventstore.Any, kdb.Any{}},
		{eventstore.ExpectedRevision{}, kdb.Any{}},
		{eventstore.NoStream, kdb.NoStream{}},
		{eventstore.StreamExists, kdb.StreamExists{}},
		{eventstore.Exact(0), kdb.StreamRevision{Value: 0}},
		{eventstore.Exact(41), kdb.StreamRevision{Value: 41}},
		{eventstore.Exact(math.MaxInt64), kdb.StreamRevision{Value: math.MaxInt64}},
	} {
		if got := streamState(c.expected); got != c.want {
			t.Errorf("streamState(%s) = %#v, want %#v", c.expected, got, c.want)
		}
	}
}

func TestStateRevision(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		state kdb.StreamState
		want  int64
	}{
		{kdb.NoStream{}, eventstore.NoRevision},
		{kdb.StreamRevision{Value: 0}, 0},
		{kdb.StreamRevision{Value: 7}, 7},
		{kdb.StreamRevision{Value: math.MaxUint64}, unknownRevision},
		{kdb.Any{}, unknownRevision},
		{kdb.StreamExists{}, unknownRevision},
	} {
		if got := stateRevision(c.state); got != c.want {
			t.Errorf("stateRevision(%#v) = %d, want %d", c.state, got, c.want)
		}
	}
}

func TestPositions(t *testing.T) {
	t.Parallel()
	// Events written through gRPC have equal halves: the mapping is exact
	// both ways.
	for _, p := range []uint64{0, 1, 4096, 1 << 40, math.MaxUint64} {
		lp := logPosition(p)
		if lp.Commit != p || lp.Prepare != p {
			t.Errorf("logPosition(%d) = %+v, want both halves %d", p, lp, p)
		}
		if got := position(lp); got != p {
			t.Errorf("position(logPosition(%d)) = %d", p, got)
		}
	}
	// An event of an old explicit transaction maps to its commit position,
	// shared with the rest of its transaction.
	if got := position(kdb.Position{Commit: 9000, Prepare: 8800}); got != 9000 {
		t.Errorf("position of a transaction's event = %d, want its commit position 9000", got)
	}

	for _, c := range []struct {
		from eventstore.AllFrom
		want kdb.AllPosition
	}{
		{eventstore.AllStart, kdb.Start{}},
		{eventstore.AllFrom{}, kdb.Start{}},
		{eventstore.AllEnd, kdb.End{}},
		{eventstore.FromPosition(0), kdb.Position{}},
		{eventstore.FromPosition(1234), kdb.Position{Commit: 1234, Prepare: 1234}},
	} {
		if got := allPosition(c.from); got != c.want {
			t.Errorf("allPosition(%+v) = %#v, want %#v", c.from, got, c.want)
		}
	}
	for _, c := range []struct {
		from eventstore.StreamFrom
		want kdb.StreamPosition
	}{
		{eventstore.StreamStart, kdb.Start{}},
		{eventstore.StreamEnd, kdb.End{}},
		{eventstore.FromRevision(0), kdb.StreamRevision{Value: 0}},
		{eventstore.FromRevision(12), kdb.StreamRevision{Value: 12}},
	} {
		if got := streamPosition(c.from); got != c.want {
			t.Errorf("streamPosition(%+v) = %#v, want %#v", c.from, got, c.want)
		}
	}
}

func TestReadCount(t *testing.T) {
	t.Parallel()
	for limit, want := range map[uint64]uint64{0: math.MaxInt64, 1: 1, 500: 500, math.MaxInt64: math.MaxInt64, math.MaxUint64: math.MaxInt64} {
		if got := readCount(limit); got != want {
			t.Errorf("readCount(%d) = %d, want %d", limit, got, want)
		}
	}
}

func TestContentType(t *testing.T) {
	t.Parallel()
	for ct, want := range map[string]kdb.ContentType{
		"application/json":                kdb.ContentTypeJson,
		"application/json; charset=utf-8": kdb.ContentTypeJson,
		"Application/JSON":                kdb.ContentTypeJson,
		"":                                kdb.ContentTypeBinary,
		"application/octet-stream":        kdb.ContentTypeBinary,
		"text/plain":                      kdb.ContentTypeBinary,
		"application/x-protobuf":          kdb.ContentTypeBinary,
		"application/jsonx":               kdb.ContentTypeBinary,
		"not a media type;;":              kdb.ContentTypeBinary,
	} {
		if got := contentType(ct); got != want {
			t.Errorf("contentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestEventData(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	ev := eventstore.EventData{ID: id, Type: "Placed", ContentType: "application/json", Data: []byte(`{}`), Metadata: []byte("m")}
	got := eventData(ev)
	want := kdb.EventData{EventID: id, EventType: "Placed", ContentType: kdb.ContentTypeJson, Data: []byte(`{}`), Metadata: []byte("m")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("eventData = %+v, want %+v", got, want)
	}

	a, b := eventData(eventstore.EventData{Type: "T"}), eventData(eventstore.EventData{Type: "T"})
	if a.EventID == uuid.Nil || b.EventID == uuid.Nil || a.EventID == b.EventID {
		t.Errorf("zero IDs became %v and %v, want two distinct random IDs", a.EventID, b.EventID)
	}
	if a.ContentType != kdb.ContentTypeBinary {
		t.Errorf("an empty content type maps to %v, want binary", a.ContentType)
	}
}

func TestAppendResult(t *testing.T) {
	t.Parallel()
	got := appendResult(&kdb.WriteResult{CommitPosition: 5120, PreparePosition: 5120, NextExpectedVersion: 6})
	if want := (eventstore.AppendResult{Revision: 6, Position: 5120}); got != want {
		t.Errorf("appendResult = %+v, want %+v", got, want)
	}
}

func TestRecordedEvent(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	at := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	r := &kdb.RecordedEvent{
		EventID:        id,
		EventType:      "Placed",
		ContentType:    "application/json",
		StreamID:       "order-1",
		EventNumber:    3,
		Position:       kdb.Position{Commit: 777, Prepare: 777},
		CreatedDate:    at,
		Data:           []byte(`{"n":1}`),
		SystemMetadata: map[string]string{"type": "Placed"},
		UserMetadata:   []byte(`{"trace":"x"}`),
	}
	want := eventstore.RecordedEvent{
		Stream: "order-1", ID: id, Type: "Placed", ContentType: "application/json",
		Data: []byte(`{"n":1}`), Metadata: []byte(`{"trace":"x"}`),
		Revision: 3, Position: 777, Created: at,
	}
	if got := recordedEvent(r); !reflect.DeepEqual(got, want) {
		t.Errorf("recordedEvent = %+v\nwant %+v", got, want)
	}

	r.Data, r.UserMetadata, r.ContentType = []byte{}, []byte{}, ""
	got := recordedEvent(r)
	if got.Data != nil || got.Metadata != nil {
		t.Errorf("empty data and metadata read as %#v and %#v, want nil", got.Data, got.Metadata)
	}
	if got.ContentType != eventstore.ContentTypeBinary {
		t.Errorf("a missing content type reads as %q, want %q", got.ContentType, eventstore.ContentTypeBinary)
	}
}

func TestHidden(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		stream, typ string
		want        bool
	}{
		{"order-1", "Placed", false},
		{"order-$1", "$Placed", false},
		{"$$order-1", "$metadata", true},
		{"$ce-order", "$>", true},
		{"$stats-127.0.0.1:2113", "$statsCollected", true},
		{"order-1", "$streamDeleted", true},
	} {
		if got := hidden(&kdb.RecordedEvent{StreamID: c.stream, EventType: c.typ}); got != c.want {
			t.Errorf("hidden(%q, %q) = %v, want %v", c.stream, c.typ, got, c.want)
		}
	}
}

func TestSplitFilter(t *testing.T) {
	t.Parallel()
	streams := []string{"orchestration-", "entity-"}
	types := []string{"Task", "Timer"}
	for _, c := range []struct {
		name       string
		filter     eventstore.Filter
		wantServer *kdb.SubscriptionFilter
		wantClient eventstore.Filter
	}{
		{"empty: the server drops system streams", eventstore.Filter{},
			&kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Regex: `^[^$]`}, eventstore.Filter{}},
		{"streams only", eventstore.Filter{StreamPrefixes: streams},
			&kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Prefixes: streams}, eventstore.Filter{}},
		{"types only", eventstore.Filter{EventTypePrefixes: types},
			&kdb.SubscriptionFilter{Type: kdb.EventFilterType, Prefixes: types}, eventstore.Filter{}},
		{"both: streams on the server, types here", eventstore.Filter{StreamPrefixes: streams, EventTypePrefixes: types},
			&kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Prefixes: streams}, eventstore.Filter{EventTypePrefixes: types}},
	} {
		server, client := splitFilter(c.filter)
		if !reflect.DeepEqual(server, c.wantServer) || !reflect.DeepEqual(client, c.wantClient) {
			t.Errorf("%s: splitFilter = %+v, %+v; want %+v, %+v", c.name, server, client, c.wantServer, c.wantClient)
		}
	}

	// Whatever the split, server and client together pass exactly what the
	// filter matches.
	f := eventstore.Filter{StreamPrefixes: streams, EventTypePrefixes: types}
	server, client := splitFilter(f)
	for _, ev := range []struct{ stream, typ string }{
		{"orchestration-1", "TaskScheduled"}, {"orchestration-1", "ExecutionStarted"},
		{"entity-a@b", "TimerFired"}, {"other-1", "TaskScheduled"},
	} {
		serverPasses := false
		for _, p := range server.Prefixes {
			if len(ev.stream) >= len(p) && ev.stream[:len(p)] == p {
				serverPasses = true
			}
		}
		if got, want := serverPasses && client.Match(ev.stream, ev.typ), f.Match(ev.stream, ev.typ); got != want {
			t.Errorf("%s/%s: split filter passes %v, filter matches %v", ev.stream, ev.typ, got, want)
		}
	}
}
