package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"testing"

	"github.com/durableactor/durable/eventstore"
)

// The checks every operation makes before it reaches the server are tested
// on a Store without a client: had a call got past them, it would panic on
// the nil client. What happens on the server is the conformance suite's.

// unconnected returns a Store with default limits and no client.
func unconnected() *Store {
	return &Store{limits: eventstore.Limits{}.WithDefaults()}
}

// firstErr returns the first error seq yields, failing t if it yields an
// event.
func firstErr(t *testing.T, seq iter.Seq2[eventstore.RecordedEvent, error]) error {
	t.Helper()
	for ev, err := range seq {
		if err == nil {
			t.Fatalf("yielded %+v, want an error first", ev)
		}
		return err
	}
	return nil
}

// operations calls every operation of s on stream, returning its error by
// operation name.
func operations(t *testing.T, ctx context.Context, s *Store, stream string) map[string]error {
	_, appendErr := s.Append(ctx, stream, eventstore.Any, eventstore.EventData{Type: "T"})
	return map[string]error{
		"Append":            appendErr,
		"ReadStream":        firstErr(t, s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})),
		"SubscribeToStream": firstErr(t, s.SubscribeToStream(ctx, stream, eventstore.SubscribeStreamOptions{})),
		"DeleteStream":      s.DeleteStream(ctx, stream, eventstore.Exact(1)),
		"TombstoneStream":   s.TombstoneStream(ctx, stream, eventstore.Any),
		"TruncateBefore":    s.TruncateBefore(ctx, stream, 1),
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	s := unconnected()
	s.closed.Store(true)
	// A second Close does not reach the client either.
	if err := s.Close(); err != nil {
		t.Errorf("Close of a closed store = %v", err)
	}
	for op, err := range operations(t, t.Context(), s, "s") {
		if !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("%s on a closed store = %v, want ErrClosed", op, err)
		}
	}
	if err := firstErr(t, s.ReadAll(t.Context(), eventstore.ReadAllOptions{})); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ReadAll on a closed store = %v, want ErrClosed", err)
	}
	if err := firstErr(t, s.SubscribeToAll(t.Context(), eventstore.SubscribeAllOptions{})); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("SubscribeToAll on a closed store = %v, want ErrClosed", err)
	}
}

func TestEndedContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := unconnected()
	for op, err := range operations(t, ctx, s, "s") {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with an ended context = %v, want context.Canceled", op, err)
		}
	}
	if err := firstErr(t, s.ReadAll(ctx, eventstore.ReadAllOptions{})); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAll with an ended context = %v, want context.Canceled", err)
	}
	if err := firstErr(t, s.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{})); !errors.Is(err, context.Canceled) {
		t.Errorf("SubscribeToAll with an ended context = %v, want context.Canceled", err)
	}
}

func TestInvalidStreamNamesRejected(t *testing.T) {
	t.Parallel()
	for _, stream := range []string{"", "$all", "$$order-1", "$ce-order", "a\x00b", "\xff\xfe"} {
		for op, err := range operations(t, t.Context(), unconnected(), stream) {
			if !errors.Is(err, eventstore.ErrInvalidStreamName) {
				t.Errorf("%s(%q) = %v, want ErrInvalidStreamName", op, stream, err)
			}
		}
	}
}

func TestAppendRejectsBeforeSending(t *testing.T) {
	t.Parallel()
	s := &Store{limits: eventstore.Limits{MaxEventSize: 100}.WithDefaults()}
	for _, c := range []struct {
		stream string
		events []eventstore.EventData
		want   error
	}{
		{"s", nil, eventstore.ErrNoEvents},
		{"s", []eventstore.EventData{{Type: ""}}, eventstore.ErrInvalidEvent},
		{"s", []eventstore.EventData{{Type: "T", Data: make([]byte, 101)}}, eventstore.ErrEventTooLarge},
	} {
		if _, err := s.Append(t.Context(), c.stream, eventstore.Any, c.events...); !errors.Is(err, c.want) {
			t.Errorf("Append(%q, %d events) = %v, want %v", c.stream, len(c.events), err, c.want)
		}
	}
}

func TestTruncateBeforeProperty(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]struct {
		tb uint64
		ok bool
	}{
		`{}`:                           {0, false},
		`{"$tb":0}`:                    {0, true},
		`{"$tb":42,"$maxAge":60}`:      {42, true},
		`{"$tb":18446744073709551615}`: {18446744073709551615, true},
		`{"$tb":"7"}`:                  {0, false},
		`{"$tb":-1}`:                   {0, false},
	} {
		var props map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &props); err != nil {
			t.Fatal(err)
		}
		tb, ok := truncateBefore(props)
		if tb != want.tb || ok != want.ok {
			t.Errorf("truncateBefore(%s) = %d, %v; want %d, %v", raw, tb, ok, want.tb, want.ok)
		}
	}
	if got := metastream("order-1"); got != "$$order-1" {
		t.Errorf("metastream = %q", got)
	}
}
