package eventstoretest

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// testLimits covers input validation: it must reject bad input with typed
// errors before touching storage, so a rejected batch writes nothing.
func (su *suite) testLimits(t *testing.T) {
	t.Parallel()
	e := su.env(t)
	limit := e.f.maxEventSize()

	t.Run("EventTooLarge", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		kept := newEvents(2, "T")
		e.append(s, eventstore.NoStream, kept...)
		before := e.snapshot(s)

		for _, c := range []struct {
			name       string
			data, meta int
		}{
			{"data", limit + 1, 0},
			{"metadata", 0, limit + 1},
			{"data plus metadata", limit/2 + 1, limit - limit/2},
		} {
			big := eventstore.EventData{ID: uuid.New(), Type: "Big", Data: make([]byte, c.data), Metadata: make([]byte, c.meta)}
			batch := []eventstore.EventData{newEvent("T"), newEvent("T"), big}
			_, err := e.store().Append(e.ctx(), s, eventstore.Exact(1), batch...)
			terr := wantErr[*eventstore.EventTooLargeError](t, err, eventstore.ErrEventTooLarge)
			if terr.Stream != s || terr.EventID != big.ID || terr.Size != c.data+c.meta || terr.Limit != limit {
				t.Fatalf("%s: EventTooLargeError{%q, %v, %d, %d}, want {%q, %v, %d, %d}", c.name,
					terr.Stream, terr.EventID, terr.Size, terr.Limit, s, big.ID, c.data+c.meta, limit)
			}
			e.checkUnchanged(s, before)
		}

		// An event of exactly the limit is accepted.
		exact := eventstore.EventData{ID: uuid.New(), Type: "Big", Data: make([]byte, limit-10), Metadata: make([]byte, 10)}
		e.append(s, eventstore.Exact(1), exact)
		got := e.mustReadStream(s, eventstore.ReadStreamOptions{From: eventstore.FromRevision(2)})
		if len(got) != 1 || len(got[0].Data) != limit-10 || len(got[0].Metadata) != 10 {
			t.Fatalf("an event of exactly the limit did not round-trip")
		}
	})

	t.Run("InvalidStreamNames", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		names := map[string]string{
			"empty":           "",
			"system":          "$" + e.stream("s"),
			"NUL":             e.stream("a\x00b"),
			"newline":         e.stream("a\nb"),
			"invalid UTF-8":   e.stream("\xff\xfe"),
			"over 1024 bytes": e.stream(strings.Repeat("x", 1025-len(e.prefix))),
		}
		for why, name := range names {
			check := func(op string, err error) {
				t.Helper()
				nerr := wantErr[*eventstore.InvalidStreamNameError](t, err, eventstore.ErrInvalidStreamName)
				if nerr.Stream != name {
					t.Fatalf("%s of a stream name that is %s: error names stream %q, want %q", op, why, nerr.Stream, name)
				}
			}
			_, err := e.store().Append(e.ctx(), name, eventstore.Any, newEvent("T"))
			check("Append", err)
			_, err = e.readStream(name, eventstore.ReadStreamOptions{})
			check("ReadStream", err)
			check("DeleteStream", e.store().DeleteStream(e.ctx(), name, eventstore.Any))
			check("TombstoneStream", e.store().TombstoneStream(e.ctx(), name, eventstore.Any))
			check("TruncateBefore", e.store().TruncateBefore(e.ctx(), name, 1))
			check("SubscribeToStream", e.subscribeStream(name, eventstore.SubscribeStreamOptions{}).wait())
		}
		if n := len(e.readAll(eventstore.ReadAllOptions{})); n != 0 {
			t.Fatalf("the rejected appends wrote %d events", n)
		}
		// 1024 bytes is still fine.
		longest := e.stream(strings.Repeat("x", 1024-len(e.prefix)))
		e.append(longest, eventstore.NoStream, newEvent("T"))
		if got := e.mustReadStream(longest, eventstore.ReadStreamOptions{}); len(got) != 1 || got[0].Stream != longest {
			t.Fatalf("a stream name of 1024 bytes did not round-trip")
		}
	})

	t.Run("InvalidEvents", func(t *testing.T) {
		t.Parallel()
		e := e.with(t)
		s := e.stream("s")
		kept := newEvents(2, "T")
		e.append(s, eventstore.NoStream, kept...)
		before := e.snapshot(s)
		for why, bad := range map[string]eventstore.EventData{
			"empty type":                  {ID: uuid.New(), Type: ""},
			"type with a newline":         {ID: uuid.New(), Type: "a\nb"},
			"type over 256 bytes":         {ID: uuid.New(), Type: strings.Repeat("t", 257)},
			"content type with a control": {ID: uuid.New(), Type: "T", ContentType: "text/plain\r\n"},
		} {
			batch := []eventstore.EventData{newEvent("T"), bad, newEvent("T")}
			_, err := e.store().Append(e.ctx(), s, eventstore.Exact(1), batch...)
			ierr := wantErr[*eventstore.InvalidEventError](t, err, eventstore.ErrInvalidEvent)
			if ierr.Stream != s || ierr.Index != 1 {
				t.Fatalf("%s: InvalidEventError{Stream: %q, Index: %d}, want {%q, 1}", why, ierr.Stream, ierr.Index, s)
			}
			e.checkUnchanged(s, before)
			// A rejected first append does not create the stream either.
			fresh := e.stream("fresh")
			_, err = e.store().Append(e.ctx(), fresh, eventstore.NoStream, batch...)
			wantErr[*eventstore.InvalidEventError](t, err, eventstore.ErrInvalidEvent)
			_, err = e.readStream(fresh, eventstore.ReadStreamOptions{})
			wantNotFound(t, err, fresh)
		}
		// The stream is intact and takes the next append at its revision.
		if res := e.append(s, eventstore.Exact(1), newEvent("T")); res.Revision != 2 {
			t.Fatalf("append after rejected ones got revision %d, want 2", res.Revision)
		}
	})
}
