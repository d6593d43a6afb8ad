package kurrentdb

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/durableactor/durable/eventstore"
)

// The error translation is tested on the values it reads: gRPC statuses,
// messages, and errors wrapping them. The client's *kdb.Error cannot be given
// a code from outside its package, so the branches on its classified codes
// are left to the conformance suite against a server; kdb.FromError builds
// the unclassified one, which is how the client hands over a status it does
// not recognise.

// wrongVersionMsg is the server's FailedPrecondition message for a wrong
// expected version; actual is what follows "Actual version: ", and a
// negative argument leaves that part out, as older servers do.
func wrongVersionMsg(op, actual string) string {
	msg := op + " failed due to WrongExpectedVersion. Stream: s, Expected version: 3"
	if actual != "-" {
		msg += ", Actual version: " + actual
	}
	return msg
}

func TestTranslateStatus(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	events := []eventstore.EventData{
		{Type: "A", Data: []byte("12345"), Metadata: []byte("678")},
		{Type: "B", Data: []byte("9")},
	}
	c := call{op: "append to", stream: "s", expected: eventstore.Exact(3), events: events}
	wrong := func(actual int64) error {
		return &eventstore.WrongExpectedRevisionError{Stream: "s", Expected: eventstore.Exact(3), Actual: actual}
	}
	for _, tc := range []struct {
		name string
		st   *status.Status
		want error // nil: not classified
	}{
		{"wrong version with actual", status.New(codes.FailedPrecondition, wrongVersionMsg("Append", "5")), wrong(5)},
		{"wrong version of a delete", status.New(codes.FailedPrecondition, wrongVersionMsg("Delete", "0")), wrong(0)},
		{"wrong version with actual -1", status.New(codes.FailedPrecondition, wrongVersionMsg("Append", "-1")), wrong(eventstore.NoRevision)},
		{"wrong version with another negative actual", status.New(codes.FailedPrecondition, wrongVersionMsg("Append", "-2")), wrong(eventstore.NoRevision)},
		{"wrong version with the actual left empty", status.New(codes.FailedPrecondition, wrongVersionMsg("Tombstone", "")), wrong(unknownRevision)},
		{"wrong version with the actual left out", status.New(codes.FailedPrecondition, wrongVersionMsg("Append", "-")), wrong(unknownRevision)},
		{"wrong version with an actual too large", status.New(codes.FailedPrecondition, wrongVersionMsg("Append", "99999999999999999999")), wrong(unknownRevision)},
		{"wrong-version wording under another code", status.New(codes.Unknown, wrongVersionMsg("Append", "5")), nil},
		{"another precondition", status.New(codes.FailedPrecondition, "Event stream 's' is deleted."), nil},
		{
			"event too large",
			status.New(codes.InvalidArgument, fmt.Sprintf("Event with Id: %s, Size: 2000, exceeds Maximum Append Event Size of 1024.", id)),
			&eventstore.EventTooLargeError{Stream: "s", EventID: id, Size: 2000, Limit: 1024},
		},
		{
			"append too large, sized from the call's events",
			status.New(codes.InvalidArgument, "Maximum Append Size of 1048576 Exceeded."),
			&eventstore.AppendTooLargeError{Stream: "s", Size: 9, Limit: 1048576},
		},
		{"another invalid argument", status.New(codes.InvalidArgument, "Invalid stream name"), nil},
		{"unavailable", status.New(codes.Unavailable, "connection refused"), nil},
	} {
		got := translateStatus(tc.st, c)
		if tc.want == nil {
			if got != nil {
				t.Errorf("%s: translateStatus = %v (%T), want nil", tc.name, got, got)
			}
			continue
		}
		if !sameTyped(got, tc.want) {
			t.Errorf("%s: translateStatus = %#v, want %#v", tc.name, got, tc.want)
		}
	}
}

// sameTyped reports whether got is the same typed eventstore error as want.
func sameTyped(got, want error) bool {
	switch w := want.(type) {
	case *eventstore.WrongExpectedRevisionError:
		g, ok := got.(*eventstore.WrongExpectedRevisionError)
		return ok && *g == *w && errors.Is(got, eventstore.ErrWrongExpectedRevision)
	case *eventstore.EventTooLargeError:
		g, ok := got.(*eventstore.EventTooLargeError)
		return ok && *g == *w && errors.Is(got, eventstore.ErrEventTooLarge)
	case *eventstore.AppendTooLargeError:
		g, ok := got.(*eventstore.AppendTooLargeError)
		return ok && *g == *w && errors.Is(got, eventstore.ErrAppendTooLarge)
	}
	panic(fmt.Sprintf("sameTyped: unexpected %T", want))
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	c := call{op: "delete", stream: "s", expected: eventstore.Exact(3)}
	wrongStatus := status.New(codes.FailedPrecondition, wrongVersionMsg("Delete", "7")).Err()
	want := &eventstore.WrongExpectedRevisionError{Stream: "s", Expected: eventstore.Exact(3), Actual: 7}

	// A status is classified as it comes, wrapped with fmt.Errorf, and
	// wrapped by the client as an unclassified *kdb.Error.
	unclassified, _ := kdb.FromError(wrongStatus)
	for name, err := range map[string]error{
		"status":                  wrongStatus,
		"wrapped status":          fmt.Errorf("deleting: %w", wrongStatus),
		"unclassified client err": unclassified,
	} {
		if got := translate(err, c); !sameTyped(got, want) {
			t.Errorf("translate(%s) = %#v, want %#v", name, got, want)
		}
	}

	// Anything else is wrapped with the operation and stream, keeping the
	// original error and its gRPC code.
	unavailable := status.New(codes.Unavailable, "down").Err()
	got := translate(fmt.Errorf("reading: %w", unavailable), call{op: "read"})
	if !errors.Is(got, unavailable) || status.Code(got) != codes.Unavailable {
		t.Errorf("translate(unavailable) = %v, want it to wrap the status", got)
	}
	if want := "kurrentdb: read $all: reading: rpc error: code = Unavailable desc = down"; got.Error() != want {
		t.Errorf("translate(unavailable) = %q, want %q", got, want)
	}

	boom := errors.New("boom")
	plain, _ := kdb.FromError(boom)
	got = translate(plain, call{op: "append to", stream: "order-1"})
	var kerr *kdb.Error
	if !errors.As(got, &kerr) || kerr != plain || !errors.Is(got, boom) {
		t.Errorf("translate(client error) = %v, want it to wrap the client's *kdb.Error", got)
	}
	if !strings.HasPrefix(got.Error(), `kurrentdb: append to "order-1": `) {
		t.Errorf("translate(client error) = %q, want it to name the operation and stream", got)
	}
	var werr *eventstore.WrongExpectedRevisionError
	if errors.As(got, &werr) {
		t.Errorf("translate(client error) = %v, want no typed error", got)
	}

	dropped := call{op: "subscribe to", stream: "s", dropped: true}
	if got := translate(errors.New("EOF"), dropped).Error(); got != `kurrentdb: subscription to "s" dropped: EOF` {
		t.Errorf("translate(drop) = %q", got)
	}
}

func TestCallString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    call
		want string
	}{
		{call{op: "append to", stream: "order-1"}, `append to "order-1"`},
		{call{op: "read"}, "read $all"},
		{call{op: "read", stream: "a \"quoted\" name"}, `read "a \"quoted\" name"`},
		{call{op: "subscribe to", dropped: true}, "subscription to $all dropped"},
		{call{op: "subscribe to", stream: "s", dropped: true}, `subscription to "s" dropped`},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestClientActual(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int64
	}{
		// The client's own wording (v1.4.2, AppendToStream).
		{errors.New("wrong expected version: expecting '3' but got '5'"), 5},
		{errors.New("wrong expected version: expecting '3' but got '0'"), 0},
		{errors.New("wrong expected version: expecting 'any' but got 'no_stream'"), eventstore.NoRevision},
		{errors.New("wrong expected version: expecting 'no_stream' but got '-1'"), eventstore.NoRevision},
		// A revision over MaxInt, which the client prints as a negative int.
		{errors.New("wrong expected version: expecting '3' but got '-9223372036854775808'"), eventstore.NoRevision},
		{fmt.Errorf("append: %w", errors.New("wrong expected version: expecting '1' but got '2'")), 2},
		{errors.New("wrong expected version: expecting '3' but got 'stream_exists'"), unknownRevision},
		{errors.New("wrong expected version: expecting '3' but got '99999999999999999999'"), unknownRevision},
		{errors.New("wrong expected version"), unknownRevision},
		{nil, unknownRevision},
	} {
		if got := clientActual(tc.err); got != tc.want {
			t.Errorf("clientActual(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestWrongRevision(t *testing.T) {
	t.Parallel()
	err := wrongRevision(call{op: "append to", stream: "s", expected: eventstore.StreamExists}, eventstore.NoRevision)
	want := &eventstore.WrongExpectedRevisionError{Stream: "s", Expected: eventstore.StreamExists, Actual: eventstore.NoRevision}
	if !sameTyped(err, want) {
		t.Errorf("wrongRevision = %#v, want %#v", err, want)
	}
}
