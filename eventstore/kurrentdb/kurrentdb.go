package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"sync/atomic"

	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/durableactor/durable/eventstore"
)

// Store is an eventstore.Store on a KurrentDB (or EventStoreDB) server. It is
// safe for concurrent use; every call goes to the server through one
// multiplexed gRPC connection.
type Store struct {
	client *kdb.Client
	limits eventstore.Limits
	closed atomic.Bool
}

var _ eventstore.Store = (*Store)(nil)

// probeStream is read by Open to check that the server answers. Any stream
// would do; a missing one answers quickly with "not found".
const probeStream = "durable-kurrentdb-open-probe"

// Open connects to the server named by cfg.ConnectionString. It fails, naming
// the problem, when the connection string is invalid or the server cannot be
// reached and read before ctx ends.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.ConnectionString == "" {
		return nil, errors.New("kurrentdb: Config.ConnectionString is empty")
	}
	config, err := parseConnectionString(cfg.ConnectionString, cfg.Logger)
	if err != nil {
		return nil, err
	}
	client, err := kdb.NewClient(config)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: %w", err)
	}
	s := &Store{client: client, limits: cfg.Limits.WithDefaults()}
	// The client connects lazily; reading once surfaces an unreachable
	// server, bad credentials or TLS trouble here rather than at first use.
	if _, err := s.lastEvent(ctx, probeStream); err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		client.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("kurrentdb: connecting to %s: %w", endpoint(config), ctx.Err())
		}
		return nil, fmt.Errorf("kurrentdb: cannot use the server at %s: %w", endpoint(config), err)
	}
	return s, nil
}

// Close closes the connection. Iterators still running end with an error;
// later calls return eventstore.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.client.Close()
}

// precheck returns the error an operation fails with before reaching the
// server: a closed store or an ended context.
func (s *Store) precheck(ctx context.Context) error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	return ctx.Err()
}

// precheckStream is precheck for an operation on one stream, which also
// rejects an invalid stream name (the empty one included).
func (s *Store) precheckStream(ctx context.Context, stream string) error {
	if err := s.precheck(ctx); err != nil {
		return err
	}
	return s.limits.CheckStreamName(stream)
}

// fail turns an error of the client into the error an operation returns.
// Failures caused by Close or by ctx ending report that cause, since the
// client only sees a broken call.
func (s *Store) fail(ctx context.Context, err error, c call) error {
	switch {
	case err == nil:
		return nil
	case s.closed.Load():
		return eventstore.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return s.settle(ctx, translate(err, c), c)
}

// settle corrects a failed write's error where KurrentDB sees a
// soft-deleted stream differently from the contract, by reading the stream
// once (failures are rare, and a read after one costs nothing on the happy
// path). The server keeps a soft-deleted stream's last revision: it reports
// it as the actual revision where the contract says there is no stream, and
// it refuses StreamExists with the error it uses for tombstoned streams. A
// stream that reads as not found is, for the contract, one that does not
// exist. The read also fills in an actual revision the error left out.
func (s *Store) settle(ctx context.Context, err error, c call) error {
	var werr *eventstore.WrongExpectedRevisionError
	var terr *eventstore.TombstonedError
	switch {
	case errors.As(err, &werr) && werr.Actual != eventstore.NoRevision:
		last, rerr := s.lastEvent(ctx, c.stream)
		switch {
		case errors.Is(rerr, eventstore.ErrStreamNotFound):
			werr.Actual = eventstore.NoRevision
		case rerr == nil && last != nil && werr.Actual == unknownRevision:
			werr.Actual = int64(last.EventNumber)
		}
		if werr.Actual == unknownRevision {
			werr.Actual = eventstore.NoRevision
		}
	case errors.As(err, &terr) && c.expected.IsStreamExists():
		if _, rerr := s.lastEvent(ctx, c.stream); errors.Is(rerr, eventstore.ErrStreamNotFound) {
			return wrongRevision(c, eventstore.NoRevision)
		}
	}
	return err
}

// Append implements eventstore.Store. KurrentDB recognises a retried append
// by its event IDs and answers it with the original result: always for
// NoStream and Exact, for the latest events with Any and StreamExists.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := s.limits.CheckAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := s.precheck(ctx); err != nil {
		return eventstore.AppendResult{}, err
	}
	c := call{op: "append to", stream: stream, expected: expected, events: events}
	data := make([]kdb.EventData, len(events))
	for i, ev := range events {
		data[i] = eventData(ev)
	}
	wr, err := s.client.AppendToStream(ctx, stream, kdb.AppendToStreamOptions{StreamState: streamState(expected)}, data...)
	if err != nil {
		return eventstore.AppendResult{}, s.fail(ctx, err, c)
	}
	res := appendResult(wr)
	if res.Position == 0 {
		// Some servers answer an idempotent retry without a position; the
		// last event of the append carries it.
		ev, err := s.eventAt(ctx, stream, res.Revision)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		if ev != nil {
			res.Position = position(ev.Position)
		}
	}
	return res, nil
}

// lastEvent reads the last readable event of a stream: nil when the stream
// exists but every event is truncated, an eventstore error when it is
// missing or tombstoned. Its errors are translated already, as are those of
// eventAt.
func (s *Store) lastEvent(ctx context.Context, stream string) (*kdb.RecordedEvent, error) {
	return s.firstOf(ctx, stream, kdb.ReadStreamOptions{Direction: kdb.Backwards, From: kdb.End{}})
}

// eventAt reads the event at revision, nil if there is none.
func (s *Store) eventAt(ctx context.Context, stream string, revision uint64) (*kdb.RecordedEvent, error) {
	ev, err := s.firstOf(ctx, stream, kdb.ReadStreamOptions{From: kdb.StreamRevision{Value: revision}})
	if err != nil || ev == nil || ev.EventNumber != revision {
		return nil, err
	}
	return ev, nil
}

func (s *Store) firstOf(ctx context.Context, stream string, opts kdb.ReadStreamOptions) (*kdb.RecordedEvent, error) {
	var first *kdb.RecordedEvent
	err := s.drainStream(ctx, stream, opts, 1, func(ev *kdb.RecordedEvent) bool {
		first = ev
		return false
	})
	return first, s.fail(ctx, err, call{op: "read", stream: stream})
}

// drainStream reads a stream, handing each event to each until it returns
// false. It returns the client's error, untranslated.
func (s *Store) drainStream(ctx context.Context, stream string, opts kdb.ReadStreamOptions, count uint64, each func(*kdb.RecordedEvent) bool) error {
	rs, err := s.client.ReadStream(ctx, stream, opts, count)
	if err != nil {
		return err
	}
	return drain(rs, each)
}

// drainAll reads $all like drainStream reads a stream.
func (s *Store) drainAll(ctx context.Context, opts kdb.ReadAllOptions, count uint64, each func(*kdb.RecordedEvent) bool) error {
	rs, err := s.client.ReadAll(ctx, opts, count)
	if err != nil {
		return err
	}
	return drain(rs, each)
}

func drain(rs *kdb.ReadStream, each func(*kdb.RecordedEvent) bool) error {
	defer rs.Close()
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !each(ev.OriginalEvent()) {
			return nil
		}
	}
}

// sink hands events to an iterator's consumer until it stops or a limit is
// reached, after which nothing more, not even an error, is yielded.
type sink struct {
	yield func(eventstore.RecordedEvent, error) bool
	// limit is the most events to yield, 0 for no limit.
	limit uint64
	n     uint64
	done  bool
}

// put yields ev and reports whether more events are wanted.
func (k *sink) put(ev eventstore.RecordedEvent) bool {
	if k.done {
		return false
	}
	k.n++
	if !k.yield(ev, nil) || (k.limit > 0 && k.n >= k.limit) {
		k.done = true
	}
	return !k.done
}

// fail yields err, unless it is nil or the consumer is done.
func (k *sink) fail(err error) {
	if err != nil && !k.done {
		k.done = true
		k.yield(eventstore.RecordedEvent{}, err)
	}
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		out := &sink{yield: yield, limit: opts.Limit}
		out.fail(s.readStream(ctx, stream, opts, out))
	}
}

func (s *Store) readStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions, out *sink) error {
	if err := s.precheckStream(ctx, stream); err != nil {
		return err
	}
	c := call{op: "read", stream: stream}
	put := func(ev *kdb.RecordedEvent) bool { return out.put(recordedEvent(ev)) }
	count := readCount(opts.Limit)
	read := func(dir kdb.Direction, from kdb.StreamPosition, n uint64) error {
		ro := kdb.ReadStreamOptions{Direction: dir, From: from}
		return s.fail(ctx, s.drainStream(ctx, stream, ro, n, put), c)
	}
	if opts.Direction == eventstore.Forwards {
		if opts.From.IsEnd() {
			// Nothing follows the end, but a missing stream is still an error.
			_, err := s.lastEvent(ctx, stream)
			return err
		}
		return read(kdb.Forwards, streamPosition(opts.From), count)
	}
	rev, exact := opts.From.Revision()
	switch {
	case opts.From.IsStart():
		// StreamStart is the first readable event, which the server's
		// backward read from revision 0 misses once the stream is truncated.
		return read(kdb.Forwards, kdb.Start{}, 1)
	case exact:
		// A backward read from past the end walks the gap page by page on
		// the server, and a revision over MaxInt64 means End to it; start
		// from the end instead.
		last, err := s.lastEvent(ctx, stream)
		if err != nil || last == nil {
			return err
		}
		if rev < last.EventNumber {
			return read(kdb.Backwards, kdb.StreamRevision{Value: rev}, count)
		}
	}
	return read(kdb.Backwards, kdb.End{}, count)
}

// ReadAll implements eventstore.Store. The client reads $all without a
// server-side filter, so opts.Filter is applied here, as is the skipping of
// system events; the server sends every event and this iterator drops those
// it does not yield.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		out := &sink{yield: yield, limit: opts.Limit}
		out.fail(s.readAll(ctx, opts, out))
	}
}

func (s *Store) readAll(ctx context.Context, opts eventstore.ReadAllOptions, out *sink) error {
	if err := s.precheck(ctx); err != nil {
		return err
	}
	c := call{op: "read"}
	put := func(ev *kdb.RecordedEvent) bool {
		if hidden(ev) || !opts.Filter.Match(ev.StreamID, ev.EventType) {
			return true
		}
		return out.put(recordedEvent(ev))
	}
	read := func(dir kdb.Direction, from kdb.AllPosition, n uint64, each func(*kdb.RecordedEvent) bool) error {
		ro := kdb.ReadAllOptions{Direction: dir, From: from}
		return s.fail(ctx, s.drainAll(ctx, ro, n, each), c)
	}
	if opts.Direction == eventstore.Forwards {
		if opts.From.IsEnd() {
			return nil
		}
		return read(kdb.Forwards, allPosition(opts.From), readCount(0), put)
	}
	pos, exact := opts.From.Position()
	switch {
	case opts.From.IsStart():
		// AllStart is the first event of the global log; yield it if the
		// filter lets it through.
		return read(kdb.Forwards, kdb.Start{}, readCount(0), func(ev *kdb.RecordedEvent) bool {
			if hidden(ev) {
				return true
			}
			put(ev)
			return false
		})
	case exact:
		// The server reads backwards from a position exclusively (it takes
		// it as the end of the previous record), so the event at pos comes
		// from a forward read first.
		more := true
		err := read(kdb.Forwards, logPosition(pos), 1, func(ev *kdb.RecordedEvent) bool {
			if position(ev.Position) == pos {
				more = put(ev)
			}
			return false
		})
		if err != nil || !more {
			return err
		}
		return read(kdb.Backwards, logPosition(pos), readCount(0), put)
	}
	return read(kdb.Backwards, kdb.End{}, readCount(0), put)
}

// SubscribeToStream implements eventstore.Store with a catch-up
// subscription of the client.
func (s *Store) SubscribeToStream(ctx context.Context, stream string, opts eventstore.SubscribeStreamOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		if err := s.precheckStream(ctx, stream); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		sub, err := s.client.SubscribeToStream(ctx, stream, kdb.SubscribeToStreamOptions{From: streamPosition(opts.From)})
		// A live subscription may see the tombstone marker just before the
		// server drops it for the tombstone; the drop is what reports it.
		keep := func(ev *kdb.RecordedEvent) bool { return ev.EventType != tombstoneType }
		s.follow(ctx, sub, err, call{op: "subscribe to", stream: stream}, keep, yield)
	}
}

// SubscribeToAll implements eventstore.Store with a catch-up subscription
// of the client, filtered on the server as far as one filter kind allows
// (see splitFilter) and on the client for the rest.
func (s *Store) SubscribeToAll(ctx context.Context, opts eventstore.SubscribeAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		if err := s.precheck(ctx); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		server, client := splitFilter(opts.Filter)
		sub, err := s.client.SubscribeToAll(ctx, kdb.SubscribeToAllOptions{From: allPosition(opts.From), Filter: server})
		keep := func(ev *kdb.RecordedEvent) bool { return !hidden(ev) && client.Match(ev.StreamID, ev.EventType) }
		s.follow(ctx, sub, err, call{op: "subscribe to"}, keep, yield)
	}
}

// follow yields the events of a subscription that keep accepts until the
// consumer stops, ctx ends (yielding ctx.Err()) or the subscription drops
// (yielding why). Checkpoints and caught-up notices carry nothing the
// contract needs and are skipped.
func (s *Store) follow(ctx context.Context, sub *kdb.Subscription, err error, c call, keep func(*kdb.RecordedEvent) bool, yield func(eventstore.RecordedEvent, error) bool) {
	if err != nil {
		yield(eventstore.RecordedEvent{}, s.fail(ctx, err, c))
		return
	}
	defer sub.Close()
	for {
		msg := sub.Recv()
		switch {
		case msg.EventAppeared != nil:
			ev := msg.EventAppeared.OriginalEvent()
			if keep(ev) && !yield(recordedEvent(ev), nil) {
				return
			}
		case msg.SubscriptionDropped != nil:
			c.dropped = true
			yield(eventstore.RecordedEvent{}, s.fail(ctx, msg.SubscriptionDropped.Error, c))
			return
		}
	}
}

// DeleteStream implements eventstore.Store with KurrentDB's soft delete: the
// stream reads as not found and a later append continues its revisions. The
// events stay in $all until the server scavenges them.
func (s *Store) DeleteStream(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	c := call{op: "delete", stream: stream, expected: expected}
	if err := s.precheckRemoval(ctx, c); err != nil {
		return err
	}
	_, err := s.client.DeleteStream(ctx, stream, kdb.DeleteStreamOptions{StreamState: streamState(expected)})
	return s.fail(ctx, err, c)
}

// TombstoneStream implements eventstore.Store with KurrentDB's hard delete.
func (s *Store) TombstoneStream(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	c := call{op: "tombstone", stream: stream, expected: expected}
	if err := s.precheckRemoval(ctx, c); err != nil {
		return err
	}
	_, err := s.client.TombstoneStream(ctx, stream, kdb.TombstoneStreamOptions{StreamState: streamState(expected)})
	return s.fail(ctx, err, c)
}

// precheckRemoval is precheckStream for DeleteStream and TombstoneStream,
// plus one rule the server does not enforce: it accepts an exact expected
// revision equal to the last revision of a soft-deleted stream, which for
// the contract does not exist. Removals are rare, so a read settles it first
// (a removal racing a concurrent delete can still slip through). Appends,
// where a read would double the cost of every write, keep the server's rule;
// the package documentation says so.
func (s *Store) precheckRemoval(ctx context.Context, c call) error {
	if err := s.precheckStream(ctx, c.stream); err != nil {
		return err
	}
	if _, exact := c.expected.Revision(); !exact {
		return nil
	}
	if _, err := s.lastEvent(ctx, c.stream); errors.Is(err, eventstore.ErrStreamNotFound) {
		return wrongRevision(c, eventstore.NoRevision)
	}
	return nil
}

// metadataAttempts bounds how often TruncateBefore rereads the stream's
// metadata after another writer changed it concurrently.
const metadataAttempts = 3

// TruncateBefore implements eventstore.Store by setting the stream's
// truncate-before ($tb) metadata, keeping the rest of its metadata. Reads
// then start at revision; the server reclaims the space at its next
// scavenge. As in the contract, a revision past the end counts as the end,
// and truncation never moves back: a $tb already further on (after a soft
// delete and recreation, for instance) stays.
func (s *Store) TruncateBefore(ctx context.Context, stream string, revision uint64) error {
	if err := s.precheckStream(ctx, stream); err != nil {
		return err
	}
	last, err := s.lastEvent(ctx, stream)
	if err != nil || last == nil {
		return err
	}
	tb := min(revision, last.EventNumber+1)
	meta := call{op: "set truncate-before of", stream: stream}
	for attempt := 1; ; attempt++ {
		props, state, err := s.streamMetadata(ctx, stream)
		if err != nil {
			return s.fail(ctx, err, meta)
		}
		if current, ok := truncateBefore(props); ok && current >= tb {
			return nil
		}
		props["$tb"] = json.RawMessage(strconv.FormatUint(tb, 10))
		data, err := json.Marshal(props)
		if err != nil {
			return fmt.Errorf("kurrentdb: %s: %w", meta, err)
		}
		_, err = s.client.AppendToStream(ctx, metastream(stream), kdb.AppendToStreamOptions{StreamState: state}, kdb.EventData{
			EventType:   "$metadata",
			ContentType: kdb.ContentTypeJson,
			Data:        data,
		})
		// A conflict on the metadata stream is another metadata writer;
		// settle's reading of the user stream would not help, so the raw
		// error is classified here.
		if err == nil || !errors.Is(translate(err, meta), eventstore.ErrWrongExpectedRevision) {
			return s.fail(ctx, err, meta)
		}
		if attempt == metadataAttempts {
			return fmt.Errorf("kurrentdb: %s: its metadata changed concurrently %d times", meta, attempt)
		}
	}
}

// metastream is the name of the stream holding a stream's metadata.
func metastream(stream string) string { return "$$" + stream }

// streamMetadata reads a stream's metadata as raw JSON properties, so that
// properties this package does not know survive a rewrite unchanged, and the
// state of the metadata stream to append the next version at. The client's
// GetStreamMetadata is not used: it reads the oldest metadata event rather
// than the newest, and fails when there is none.
func (s *Store) streamMetadata(ctx context.Context, stream string) (map[string]json.RawMessage, kdb.StreamState, error) {
	props := map[string]json.RawMessage{}
	var last *kdb.RecordedEvent
	err := s.drainStream(ctx, metastream(stream), kdb.ReadStreamOptions{Direction: kdb.Backwards, From: kdb.End{}}, 1, func(ev *kdb.RecordedEvent) bool {
		last = ev
		return false
	})
	var kerr *kdb.Error
	switch {
	case errors.As(err, &kerr) && kerr.Code() == kdb.ErrorCodeResourceNotFound:
		return props, kdb.NoStream{}, nil
	case err != nil:
		return nil, nil, err
	case last == nil:
		// The metadata stream exists but shows no event (its own metadata
		// hides them): there is nothing to keep and no revision to expect.
		return props, kdb.Any{}, nil
	}
	if len(last.Data) > 0 {
		if err := json.Unmarshal(last.Data, &props); err != nil {
			return nil, nil, fmt.Errorf("metadata is not a JSON object: %w", err)
		}
	}
	return props, kdb.StreamRevision{Value: last.EventNumber}, nil
}

// truncateBefore reads the $tb property of stream metadata.
func truncateBefore(props map[string]json.RawMessage) (uint64, bool) {
	raw, ok := props["$tb"]
	if !ok {
		return 0, false
	}
	var tb uint64
	if err := json.Unmarshal(raw, &tb); err != nil {
		return 0, false
	}
	return tb, true
}
