package eventstoretest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// testAppend covers what one Append writes: revisions, positions, the
// result, the creation time, IDs, content types and byte-exact payloads, and
// that neither the caller's slices nor the reader's are shared with the store.
func (su *suite) testAppend(t *testing.T) {
	t.Parallel()
	e := su.env(t)

	t.Run("RevisionsPositionsAndResult", func(t *testing.T) {
		t.Parallel()
		// A store of its own: with GapFreePositions, the positions of
		// these appends must then follow each other without gaps.
		e := su.env(t)
		a, b := e.stream("a"), e.stream("b")
		batchA1, batchB, batchA2 := newEvents(3, "A"), newEvents(2, "B"), newEvents(4, "A")

		before := time.Now()
		r1 := e.append(a, eventstore.NoStream, batchA1...)
		r2 := e.append(b, eventstore.NoStream, batchB...)
		r3 := e.append(a, eventstore.Exact(2), batchA2...)
		after := time.Now()

		if r1.Revision != 2 || r2.Revision != 1 || r3.Revision != 6 {
			t.Fatalf("result revisions = %d, %d, %d; want 2, 1, 6 (the last revision of each append)", r1.Revision, r2.Revision, r3.Revision)
		}
		if !(r1.Position < r2.Position && r2.Position < r3.Position) {
			t.Fatalf("result positions %d, %d, %d do not grow in commit order", r1.Position, r2.Position, r3.Position)
		}

		gotA := e.mustReadStream(a, eventstore.ReadStreamOptions{})
		if diff := cmp.Diff(span(0, 6), revisions(gotA)); diff != "" {
			t.Fatalf("revisions of %s (-want +got):\n%s", a, diff)
		}
		if diff := cmp.Diff(append(dataIDs(batchA1), dataIDs(batchA2)...), ids(gotA)); diff != "" {
			t.Fatalf("event IDs of %s (-want +got):\n%s", a, diff)
		}
		if gotA[2].Position != r1.Position || gotA[6].Position != r3.Position {
			t.Fatalf("positions of the last events of the appends = %d, %d; results said %d, %d",
				gotA[2].Position, gotA[6].Position, r1.Position, r3.Position)
		}
		for _, ev := range gotA {
			if ev.Stream != a || ev.Type != "A" {
				t.Fatalf("event %d: Stream %q Type %q, want %q and %q", ev.Revision, ev.Stream, ev.Type, a, "A")
			}
			if ev.Created.IsZero() || ev.Created.Before(before.Add(-clockSkew)) || ev.Created.After(after.Add(clockSkew)) {
				t.Fatalf("event %d: Created %v is not near the append (between %v and %v)", ev.Revision, ev.Created, before, after)
			}
		}

		// The global log holds the three appends in commit order, each batch
		// in revision order, with positions that match what the stream reads
		// and the results report.
		all := e.readAll(eventstore.ReadAllOptions{})
		wantIDs := append(append(dataIDs(batchA1), dataIDs(batchB)...), dataIDs(batchA2)...)
		if diff := cmp.Diff(wantIDs, ids(all)); diff != "" {
			t.Fatalf("global log (-want +got):\n%s", diff)
		}
		e.checkPositions(all)
		for i := 1; e.f.GapFreePositions && i < len(all); i++ {
			if all[i].Position != all[i-1].Position+1 {
				t.Fatalf("event %d has position %d after %d: the store promises gap-free positions", i, all[i].Position, all[i-1].Position)
			}
		}
		gotB := e.mustReadStream(b, eventstore.ReadStreamOptions{})
		if gotB[1].Position != r2.Position {
			t.Fatalf("position of %s@1 = %d, result said %d", b, gotB[1].Position, r2.Position)
		}
		for i, ev := range all {
			var from []eventstore.RecordedEvent
			if ev.Stream == a {
				from = gotA
			} else {
				from = gotB
			}
			if want := from[ev.Revision].Position; ev.Position != want {
				t.Fatalf("ReadAll event %d (%s@%d) has position %d, ReadStream says %d", i, ev.Stream, ev.Revision, ev.Position, want)
			}
		}
	})

	t.Run("ZeroIDIsReplaced", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		given := uuid.New()
		e.append(s, eventstore.NoStream,
			eventstore.EventData{Type: "T"},
			eventstore.EventData{ID: given, Type: "T"},
			eventstore.EventData{Type: "T"})
		got := e.mustReadStream(s, eventstore.ReadStreamOptions{})
		if len(got) != 3 {
			t.Fatalf("read %d events, want 3", len(got))
		}
		if got[0].ID == uuid.Nil || got[2].ID == uuid.Nil {
			t.Fatalf("zero event IDs were stored as zero: %v", ids(got))
		}
		if got[0].ID == got[2].ID {
			t.Fatalf("two zero event IDs were both replaced by %v; each needs its own random ID", got[0].ID)
		}
		if got[1].ID != given {
			t.Fatalf("event 1 has ID %v, want the given %v", got[1].ID, given)
		}
	})

	t.Run("ContentTypes", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		type ct struct{ given, want string }
		cases := []ct{
			{"", eventstore.ContentTypeBinary},
			{eventstore.ContentTypeJSON, eventstore.ContentTypeJSON},
			{eventstore.ContentTypeBinary, eventstore.ContentTypeBinary},
		}
		if e.f.ArbitraryContentTypes {
			cases = append(cases,
				ct{"text/plain; charset=utf-8", "text/plain; charset=utf-8"},
				ct{"application/x-protobuf", "application/x-protobuf"})
		}
		var evs []eventstore.EventData
		for _, c := range cases {
			data := []byte(`{}`)
			evs = append(evs, eventstore.EventData{ID: uuid.New(), Type: "T", ContentType: c.given, Data: data})
		}
		e.append(s, eventstore.NoStream, evs...)
		got := e.mustReadStream(s, eventstore.ReadStreamOptions{})
		for i, c := range cases {
			if got[i].ContentType != c.want {
				t.Errorf("content type %q read back as %q, want %q", c.given, got[i].ContentType, c.want)
			}
		}
	})

	t.Run("PayloadsRoundTrip", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		evs := payloadCases(e.f.maxEventSize())
		e.append(s, eventstore.NoStream, evs...)

		// Every read path returns the same bytes.
		viaStream := e.mustReadStream(s, eventstore.ReadStreamOptions{})
		viaAll := e.readAll(eventstore.ReadAllOptions{})
		c := e.subscribeStream(s, eventstore.SubscribeStreamOptions{})
		viaSub := c.waitFor(len(evs))
		c.stop()
		for name, got := range map[string][]eventstore.RecordedEvent{"ReadStream": viaStream, "ReadAll": viaAll, "SubscribeToStream": viaSub} {
			if len(got) != len(evs) {
				t.Fatalf("%s: %d events, want %d", name, len(got), len(evs))
			}
			for i, want := range evs {
				if !bytes.Equal(got[i].Data, want.Data) || !bytes.Equal(got[i].Metadata, want.Metadata) {
					t.Errorf("%s: event %d: data/metadata (%d/%d bytes) differ from what was appended (%d/%d bytes)",
						name, i, len(got[i].Data), len(got[i].Metadata), len(want.Data), len(want.Metadata))
				}
				if got[i].Type != want.Type || got[i].ID != want.ID {
					t.Errorf("%s: event %d: type %q id %v, want %q %v", name, i, got[i].Type, got[i].ID, want.Type, want.ID)
				}
			}
		}
	})

	t.Run("SlicesAreNotShared", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		data, meta := []byte("original data"), []byte("original meta")
		e.append(s, eventstore.NoStream, eventstore.EventData{ID: uuid.New(), Type: "T", Data: data, Metadata: meta})
		data[0], meta[0] = 'X', 'X'

		check := func(when string) {
			t.Helper()
			got := e.mustReadStream(s, eventstore.ReadStreamOptions{})
			if string(got[0].Data) != "original data" || string(got[0].Metadata) != "original meta" {
				t.Fatalf("%s: stored event reads %q / %q", when, got[0].Data, got[0].Metadata)
			}
		}
		check("after the caller changed its slices")

		read := e.mustReadStream(s, eventstore.ReadStreamOptions{})
		read[0].Data[0], read[0].Metadata[0] = 'Y', 'Y'
		check("after a reader changed the slices of a ReadStream event")

		all := e.readAll(eventstore.ReadAllOptions{})
		all[0].Data[1], all[0].Metadata[1] = 'Z', 'Z'
		check("after a reader changed the slices of a ReadAll event")
	})

	t.Run("BatchesAreAtomic", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		// Writers append batches to their own streams while readers check
		// that no read ever shows part of a batch.
		const batch = 5
		writers, batches := 4, 25
		if testing.Short() {
			batches = 8
		}
		streams := make([]string, writers)
		for i := range streams {
			streams[i] = e.stream(fmt.Sprint("w", i))
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, writers+2)
		for w := range writers {
			wg.Go(func() {
				for i := range batches {
					if _, err := e.store().Append(e.ctx(), streams[w], eventstore.Any, newEvents(batch, "T")...); err != nil {
						errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
						return
					}
				}
			})
		}
		var readers sync.WaitGroup
		for r := range 2 {
			readers.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					if err := readBatchesWhole(e, streams[r], batch); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(done)
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if err := readBatchesWhole(e, "", batch); err != nil {
			t.Error(err)
		}
		if n := len(e.readAll(eventstore.ReadAllOptions{})); n != writers*batches*batch {
			t.Errorf("global log holds %d events of the test, want %d", n, writers*batches*batch)
		}
	})
}

// readBatchesWhole reads stream (if not empty) and the test's part of the
// global log, and reports an error if a stream shows a partial batch.
func readBatchesWhole(e *env, stream string, batch int) error {
	if stream != "" {
		evs, err := collect(e.t, e.store().ReadStream(e.ctx(), stream, eventstore.ReadStreamOptions{}))
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("ReadStream(%s): %w", stream, err)
		}
		if len(evs)%batch != 0 {
			return fmt.Errorf("ReadStream(%s) saw %d events: part of a batch of %d", stream, len(evs), batch)
		}
	}
	evs, err := collect(e.t, e.store().ReadAll(e.ctx(), eventstore.ReadAllOptions{Filter: e.ours()}))
	if err != nil {
		return fmt.Errorf("ReadAll: %w", err)
	}
	count := map[string]int{}
	for _, ev := range evs {
		count[ev.Stream]++
	}
	for s, n := range count {
		if n%batch != 0 {
			return fmt.Errorf("ReadAll saw %d events of %s: part of a batch of %d", n, s, batch)
		}
	}
	return nil
}

// payloadCases are events whose data and metadata cover the shapes a store
// might mangle: nil, empty, every byte value, invalid UTF-8, JSON with
// non-ASCII text, and a large random blob that fits in maxSize.
func payloadCases(maxSize int) []eventstore.EventData {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	blob := make([]byte, min(64<<10, maxSize-1000))
	_, _ = rand.Read(blob) // crypto/rand.Read never fails
	cases := [][2][]byte{
		{nil, nil},
		{[]byte{}, []byte{}},
		{nil, []byte(`{"only":"metadata"}`)},
		{[]byte(`{"only":"data"}`), nil},
		{every, reverseBytes(every)},
		{[]byte("\xff\xfe\x00 not utf-8"), []byte{0}},
		{[]byte(`{"text":"grüße, 日本, 🎉"}`), []byte(`{"trace":"00-abc-01"}`)},
		{blob, blob[:1000]},
	}
	evs := make([]eventstore.EventData, len(cases))
	for i, c := range cases {
		evs[i] = eventstore.EventData{ID: uuid.New(), Type: fmt.Sprint("Payload", i), Data: c[0], Metadata: c[1]}
	}
	return evs
}

func reverseBytes(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}
