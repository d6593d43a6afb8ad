package history

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/durableactor/durable/internal/history/historypb"
	"github.com/durableactor/durable/orchestration"
)

// storedKinds are the kinds that have a message in history.proto.
var storedKinds = []orchestration.EventKind{
	orchestration.ExecutionStarted, orchestration.ExecutionCompleted, orchestration.ExecutionTerminated,
	orchestration.TaskScheduled, orchestration.TaskCompleted, orchestration.TaskFailed,
	orchestration.SubOrchestrationInstanceCreated, orchestration.SubOrchestrationInstanceCompleted,
	orchestration.SubOrchestrationInstanceFailed, orchestration.TimerCreated, orchestration.TimerFired,
	orchestration.OrchestratorStarted, orchestration.OrchestratorCompleted, orchestration.EventSent,
	orchestration.EventRaised, orchestration.ExecutionSuspended, orchestration.ExecutionResumed,
	orchestration.EntityOperationSignaled, orchestration.EntityOperationCalled, orchestration.EntityOperationCompleted,
	orchestration.EntityOperationFailed, orchestration.EntityLockRequested, orchestration.EntityLockGranted,
	orchestration.EntityUnlockSent,
}

func descriptor(t *testing.T, k orchestration.EventKind) protoreflect.MessageType {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("durable.history.v1." + k.String()))
	if err != nil {
		t.Fatalf("no message for %s: %v", k, err)
	}
	return mt
}

// randomEvent fills every field that the kind's message declares.
func randomEvent(r *rand.Rand, k orchestration.EventKind, fields protoreflect.FieldDescriptors) orchestration.HistoryEvent {
	ev := orchestration.HistoryEvent{Kind: k}
	str := func() string { return strings.Repeat(string(rune('a'+r.IntN(26))), 1+r.IntN(12)) }
	data := func() []byte {
		b := make([]byte, 1+r.IntN(64))
		for n := range b {
			b[n] = byte(r.Uint32())
		}
		return b
	}
	when := func() time.Time { return time.Unix(0, r.Int64N(4e18)).UTC() }
	failure := func() *orchestration.FailureDetails {
		f := &orchestration.FailureDetails{ErrorType: str(), Message: str(), StackTrace: str(), NonRetriable: r.IntN(2) == 0}
		if r.IntN(2) == 0 {
			f.Inner = &orchestration.FailureDetails{ErrorType: str(), Message: str()}
		}
		return f
	}
	for n := 0; n < fields.Len(); n++ {
		switch fields.Get(n).Number() {
		case fieldTimestamp:
			ev.Timestamp = when()
		case fieldEventID:
			ev.EventID = r.Int32N(1 << 20)
		case fieldName:
			ev.Name = str()
		case fieldVersion:
			ev.Version = str()
		case fieldInstanceID:
			ev.InstanceID = str()
		case fieldInput:
			ev.Input = data()
		case fieldResult:
			ev.Result = data()
		case fieldFailure:
			ev.Failure = failure()
		case fieldFireAt:
			ev.FireAt = when()
		case fieldStatus:
			ev.Status = orchestration.Status(1 + r.IntN(7))
		case fieldParent:
			ev.Parent = &orchestration.ParentInstance{InstanceID: str(), Name: str(), EventID: r.Int32N(100), Generation: r.Int32N(5)}
		case fieldGeneration:
			ev.Generation = r.Int32N(100)
		case fieldCustomStatus:
			ev.CustomStatus = data()
		case fieldRequestID:
			ev.RequestID = str()
		case fieldAwaited:
			for range 1 + r.IntN(3) {
				ev.AwaitedEvents = append(ev.AwaitedEvents, str())
			}
		case fieldRequestIDs:
			for range 1 + r.IntN(3) {
				ev.RequestIDs = append(ev.RequestIDs, str())
			}
		case fieldLockID:
			ev.LockID = str()
		case fieldLockSet:
			for range 1 + r.IntN(3) {
				ev.LockSet = append(ev.LockSet, str())
			}
		}
	}
	return ev
}

// TestMatchesSchema checks the hand-written codec against the generated
// types in both directions: what Append writes, proto.Unmarshal reads into
// the kind's message with nothing unknown left over; what proto.Marshal
// writes, Decode reads back to the same event.
func TestMatchesSchema(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range storedKinds {
		mt := descriptor(t, k)
		for range 200 {
			ev := randomEvent(r, k, mt.Descriptor().Fields())
			encoded := Append(nil, &ev)

			msg := mt.New().Interface()
			if err := proto.Unmarshal(encoded, msg); err != nil {
				t.Fatalf("%s: generated type rejects our encoding: %v", k, err)
			}
			if unknown := msg.ProtoReflect().GetUnknown(); len(unknown) > 0 {
				t.Fatalf("%s: our encoding has fields the schema does not declare: %x", k, unknown)
			}
			remarshaled, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			var d Decoder
			var got orchestration.HistoryEvent
			if err := d.Decode(EventType(k), remarshaled, &got); err != nil {
				t.Fatalf("%s: decode generated encoding: %v", k, err)
			}
			if diff := cmp.Diff(ev, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%s: round trip through the generated type (-want +got):\n%s", k, diff)
			}
			if !bytes.Equal(encoded, remarshaled) {
				t.Fatalf("%s: our encoding is not the generated type's:\n%x\n%x", k, encoded, remarshaled)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var d Decoder
	for _, k := range storedKinds {
		fields := descriptor(t, k).Descriptor().Fields()
		for range 100 {
			ev := randomEvent(r, k, fields)
			var got orchestration.HistoryEvent
			if err := d.Decode(EventType(k), Append(nil, &ev), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ev, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%s (-want +got):\n%s", k, diff)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	var d Decoder
	var ev orchestration.HistoryEvent
	if err := d.Decode("NoSuchEvent", nil, &ev); err == nil || !strings.Contains(err.Error(), "NoSuchEvent") {
		t.Fatalf("unknown type: got %v", err)
	}
	if err := d.Decode("TaskScheduled", []byte{0x1a, 0x05, 'a'}, &ev); err == nil {
		t.Fatal("a truncated string decoded without error")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("TaskScheduled", Append(nil, &orchestration.HistoryEvent{Kind: orchestration.TaskScheduled, EventID: 3, Name: "A", Input: []byte("1")}))
	f.Add("TaskFailed", Append(nil, &orchestration.HistoryEvent{Kind: orchestration.TaskFailed, Failure: &orchestration.FailureDetails{Message: "m", Inner: &orchestration.FailureDetails{Message: "i"}}}))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		var d Decoder
		var ev orchestration.HistoryEvent
		if err := d.Decode(typ, data, &ev); err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same event.
		var again orchestration.HistoryEvent
		if err := d.Decode(typ, Append(nil, &ev), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(ev, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("unstable:\n%s", diff)
		}
	})
}

// TestEpisodeMatchesSchema checks episode records against the generated
// Episode type and round-trips them.
func TestEpisodeMatchesSchema(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var events []orchestration.HistoryEvent
	for _, k := range storedKinds {
		events = append(events, randomEvent(r, k, descriptor(t, k).Descriptor().Fields()))
	}
	data := AppendEpisode(nil, events)
	var ep historypb.Episode
	if err := proto.Unmarshal(data, &ep); err != nil {
		t.Fatal(err)
	}
	if len(ep.Events) != len(events) || ep.Events[3].Type != "TaskScheduled" {
		t.Fatalf("generated type read %d entries", len(ep.Events))
	}
	if again, err := (proto.MarshalOptions{Deterministic: true}).Marshal(&ep); err != nil || !bytes.Equal(data, again) {
		t.Fatalf("our episode encoding is not the generated type's (%v)", err)
	}
	var d Decoder
	got, err := d.DecodeEpisode(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(events, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("episode round trip (-want +got):\n%s", diff)
	}
	if _, err := d.DecodeEpisode(nil, data[:len(data)-3]); err == nil {
		t.Fatal("a truncated episode decoded without error")
	}
}

// chainEpisode is the episode of an activity chain's step: an activity's
// result in, the next call out.
func chainEpisode() []orchestration.HistoryEvent {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return []orchestration.HistoryEvent{
		{Kind: orchestration.OrchestratorStarted, Timestamp: now},
		{Kind: orchestration.TaskCompleted, Timestamp: now, EventID: 41, Result: []byte("82")},
		{Kind: orchestration.TaskScheduled, Timestamp: now, EventID: 42, Name: "Add", Input: []byte("42")},
		{Kind: orchestration.OrchestratorCompleted, Timestamp: now},
	}
}

func BenchmarkAppendEpisode(b *testing.B) {
	events := chainEpisode()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEpisode(buf[:0], events)
	}
}

func BenchmarkEpisodeData(b *testing.B) {
	events := chainEpisode()
	b.ReportAllocs()
	for b.Loop() {
		EpisodeData(events, uuid.UUID{})
	}
}

// TestEncodingAllocations: encoding an episode allocates nothing but the
// record it returns.
func TestEncodingAllocations(t *testing.T) {
	events := chainEpisode()
	events[1] = orchestration.HistoryEvent{Kind: orchestration.TaskFailed, EventID: 41,
		Failure: &orchestration.FailureDetails{ErrorType: "E", Message: "m", Inner: &orchestration.FailureDetails{Message: "inner"}}}
	buf := AppendEpisode(nil, events)
	if n := testing.AllocsPerRun(100, func() { buf = AppendEpisode(buf[:0], events) }); n != 0 {
		t.Errorf("AppendEpisode into a large enough buffer allocates %.0f times", n)
	}
	if n := testing.AllocsPerRun(100, func() { EpisodeData(events, uuid.UUID{}) }); n != 1 {
		t.Errorf("EpisodeData allocates %.0f times", n)
	}
}
