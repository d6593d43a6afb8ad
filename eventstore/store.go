package eventstore

import (
	"context"
	"iter"
)

// Store is an event store. Implementations are safe for concurrent use.
//
// Reads and subscriptions return iterators. An iterator that meets an error
// yields it (with a zero RecordedEvent) and stops; breaking out of the loop
// releases everything the iterator holds. Byte slices in yielded events
// belong to the caller.
type Store interface {
	// Append writes events to the end of stream atomically, after checking
	// expected. It returns a *WrongExpectedRevisionError when the check
	// fails, a *TombstonedError when the stream is tombstoned, and the errors
	// of Limits.CheckAppend for invalid input (an append needs at least one
	// event).
	//
	// An append whose events are already stored where its expected revision
	// says they go writes nothing and returns the original result
	// (idempotent retry): the readable events from revision r+1 on for
	// Exact(r), from revision 0 on for NoStream, and the stream's last events
	// for Any and StreamExists must carry the same IDs in the same order.
	// Anything else is an ordinary append, checked against expected. So a
	// retry is recognised only while its events are readable where that rule
	// looks: the retry of a NoStream append that recreated a deleted stream
	// (whose events follow the deleted ones) is a conflict, as is any retry
	// whose events were truncated or deleted since.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)

	// ReadStream reads one stream. It yields a *NotFoundError when the stream
	// does not exist or was deleted, and a *TombstonedError when it was
	// tombstoned. Events before a TruncateBefore revision are not read, and
	// StreamStart is the first event that can be read: a backwards read from
	// it yields that one event.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) iter.Seq2[RecordedEvent, error]

	// ReadAll reads the global log in position order, keeping the events
	// that match opts.Filter. AllStart is the log's first event: a backwards
	// read from it yields that event if it matches, and nothing else.
	ReadAll(ctx context.Context, opts ReadAllOptions) iter.Seq2[RecordedEvent, error]

	// SubscribeToStream yields the events of one stream after opts.From,
	// first those already stored, then new ones as they are appended, until
	// ctx ends (it then yields ctx.Err()). A stream that does not exist yet
	// is waited for.
	SubscribeToStream(ctx context.Context, stream string, opts SubscribeStreamOptions) iter.Seq2[RecordedEvent, error]

	// SubscribeToAll yields the events of the global log after opts.From that
	// match opts.Filter, first those already stored, then new ones, in
	// position order, until ctx ends (it then yields ctx.Err()).
	SubscribeToAll(ctx context.Context, opts SubscribeAllOptions) iter.Seq2[RecordedEvent, error]

	// DeleteStream soft-deletes a stream after checking expected: it then
	// reads as not found, and a later append recreates it, with revisions
	// continuing after the deleted ones. Deleting a missing stream with Any
	// is not an error.
	DeleteStream(ctx context.Context, stream string, expected ExpectedRevision) error

	// TombstoneStream deletes a stream permanently after checking expected:
	// reads and appends then fail with a *TombstonedError.
	TombstoneStream(ctx context.Context, stream string, expected ExpectedRevision) error

	// TruncateBefore makes the events of stream before revision unreadable
	// and lets the store reclaim them; later events keep their revisions. It
	// returns a *NotFoundError for a missing or deleted stream and a
	// *TombstonedError for a tombstoned one.
	TruncateBefore(ctx context.Context, stream string, revision uint64) error

	// Close releases the store. Operations after Close return ErrClosed.
	Close() error
}

// LastPosition returns the global position of the last event in the
// store's log, 0 for an empty log.
func LastPosition(ctx context.Context, store Store) (uint64, error) {
	for ev, err := range store.ReadAll(ctx, ReadAllOptions{Direction: Backwards, From: AllEnd, Limit: 1}) {
		if err != nil {
			return 0, err
		}
		return ev.Position, nil
	}
	return 0, nil
}
