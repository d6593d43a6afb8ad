package kurrentdb

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/google/uuid"
	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/durableactor/durable/eventstore"
)

// call describes the operation whose error is being translated.
type call struct {
	// op names the operation in wrapped errors, for example "append to".
	op string
	// stream is the stream operated on, empty for $all.
	stream   string
	expected eventstore.ExpectedRevision
	// events are the events of an append, to size a rejected one.
	events []eventstore.EventData
	// dropped marks the error that ended a running subscription.
	dropped bool
}

// String describes the call in wrapped errors.
func (c call) String() string {
	target := "$all"
	if c.stream != "" {
		target = strconv.Quote(c.stream)
	}
	if c.dropped {
		return "subscription to " + target + " dropped"
	}
	return c.op + " " + target
}

// The server's own words for conditions the client does not classify. Where
// the client hands an error over without structure (it drops the gRPC
// trailers that carry the details), the status message is all there is; these
// patterns follow the wording of the servers' sources, older EventStoreDB and
// current KurrentDB alike.
var (
	// clientWrongVersion is how the client (v1.4.2, AppendToStream) words the
	// WrongExpectedVersion answer of servers from 20.6.1 on.
	clientWrongVersion = regexp.MustCompile(`but got '([^']*)'`)
	// serverWrongVersion is how the server words a wrong expected version in
	// a FailedPrecondition status: "Append failed due to WrongExpectedVersion.
	// Stream: s, Expected version: 3, Actual version: 5" (newer servers name
	// the operation instead of "Append"), the actual version being empty or
	// missing when the server does not know it.
	serverWrongVersion = regexp.MustCompile(`failed due to WrongExpectedVersion`)
	serverActual       = regexp.MustCompile(`Actual version: (-?\d+)`)
	// eventTooLarge is the InvalidArgument status of an event over the
	// server's MaxAppendEventSize.
	eventTooLarge = regexp.MustCompile(`Event with Id: ([0-9a-fA-F-]+), Size: (\d+), exceeds Maximum Append Event Size of (\d+)`)
	// appendTooLarge is the InvalidArgument status of an append over the
	// server's MaxAppendSize.
	appendTooLarge = regexp.MustCompile(`Maximum Append Size of (\d+) Exceeded`)
)

// unknownRevision is the Actual of a WrongExpectedRevisionError from
// translate whose error did not say the actual revision. Store.settle always
// replaces it; it never reaches a caller.
const unknownRevision int64 = math.MinInt64

// translate maps an error of the client to the contract's errors: wrong
// expected versions, deleted streams, missing streams and oversized appends
// become the typed errors of package eventstore; anything else is wrapped with
// the operation and stream.
//
// The actual revision of a WrongExpectedRevisionError comes from what the
// error carries: the structured details of servers that send them, or the
// revision in the message. When neither names one (older servers leave it out
// of delete and tombstone answers) Actual is unknownRevision.
func translate(err error, c call) error {
	var kerr *kdb.Error
	if errors.As(err, &kerr) {
		switch kerr.Code() {
		case kdb.ErrorCodeWrongExpectedVersion:
			return wrongRevision(c, clientActual(kerr.Err()))
		case kdb.ErrorCodeStreamRevisionConflict:
			var conflict *kdb.StreamRevisionConflictError
			if errors.As(kerr.Err(), &conflict) {
				return wrongRevision(c, stateRevision(conflict.ActualRevision))
			}
			return wrongRevision(c, unknownRevision)
		case kdb.ErrorCodeStreamDeleted, kdb.ErrorCodeStreamTombstoned:
			return &eventstore.TombstonedError{Stream: c.stream}
		case kdb.ErrorCodeResourceNotFound:
			if c.stream != "" {
				return &eventstore.NotFoundError{Stream: c.stream}
			}
		case kdb.ErrorCodeAppendRecordSizeExceeded:
			var tooLarge *kdb.AppendRecordSizeExceededError
			if errors.As(kerr.Err(), &tooLarge) {
				id, _ := uuid.Parse(tooLarge.RecordId)
				return &eventstore.EventTooLargeError{Stream: c.stream, EventID: id, Size: int(tooLarge.Size), Limit: int(tooLarge.MaxSize)}
			}
		case kdb.ErrorCodeAppendTransactionSizeExceeded:
			var tooLarge *kdb.AppendTransactionSizeExceededError
			if errors.As(kerr.Err(), &tooLarge) {
				return &eventstore.AppendTooLargeError{Stream: c.stream, Size: int(tooLarge.Size), Limit: int(tooLarge.MaxSize)}
			}
		}
	}
	if st, ok := status.FromError(err); ok {
		if typed := translateStatus(st, c); typed != nil {
			return typed
		}
	}
	return fmt.Errorf("kurrentdb: %s: %w", c, err)
}

// translateStatus classifies a gRPC status the client passed on as unknown,
// or returns nil.
func translateStatus(st *status.Status, c call) error {
	msg := st.Message()
	switch st.Code() {
	case codes.FailedPrecondition:
		if serverWrongVersion.MatchString(msg) {
			actual := unknownRevision
			if m := serverActual.FindStringSubmatch(msg); m != nil {
				if n, err := strconv.ParseInt(m[1], 10, 64); err == nil {
					actual = max(n, eventstore.NoRevision)
				}
			}
			return wrongRevision(c, actual)
		}
	case codes.InvalidArgument:
		if m := eventTooLarge.FindStringSubmatch(msg); m != nil {
			id, _ := uuid.Parse(m[1])
			size, _ := strconv.Atoi(m[2])
			limit, _ := strconv.Atoi(m[3])
			return &eventstore.EventTooLargeError{Stream: c.stream, EventID: id, Size: size, Limit: limit}
		}
		if m := appendTooLarge.FindStringSubmatch(msg); m != nil {
			limit, _ := strconv.Atoi(m[1])
			size := 0
			for _, ev := range c.events {
				size += len(ev.Data) + len(ev.Metadata)
			}
			return &eventstore.AppendTooLargeError{Stream: c.stream, Size: size, Limit: limit}
		}
	}
	return nil
}

func wrongRevision(c call, actual int64) error {
	return &eventstore.WrongExpectedRevisionError{Stream: c.stream, Expected: c.expected, Actual: actual}
}

// clientActual reads the actual revision out of the client's
// wrong-expected-version message: a number, or "no_stream".
func clientActual(err error) int64 {
	if err == nil {
		return unknownRevision
	}
	m := clientWrongVersion.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return unknownRevision
	case m[1] == "no_stream":
		return eventstore.NoRevision
	}
	n, perr := strconv.ParseInt(m[1], 10, 64)
	if perr != nil {
		return unknownRevision
	}
	return max(n, eventstore.NoRevision)
}
