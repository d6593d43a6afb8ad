package pebble

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/internal/idempotency"
)

// maxBatch bounds how many requests one group commit takes.
const maxBatch = 1024

type opKind uint8

const (
	opAppend opKind = iota
	opDelete
	opTombstone
	opTruncate
)

// request is one write waiting for the committer.
type request struct {
	op       opKind
	stream   string
	expected eventstore.ExpectedRevision
	events   []eventstore.EventData
	revision uint64 // opTruncate
	done     chan reply
	// state is pending until the committer takes the request or its caller,
	// whose context ended, withdraws it; whichever comes first decides.
	state atomic.Uint32
}

// Request states.
const (
	pending uint32 = iota
	taken
	withdrawn
)

// take claims r for the committer. It fails when the caller withdrew r; the
// committer then skips it without reading its events, whose buffers belong
// to the caller again.
func (r *request) take() bool { return r.state.CompareAndSwap(pending, taken) }

type reply struct {
	result eventstore.AppendResult
	err    error
}

// committer is the single goroutine that writes. It drains every request
// queued while the previous commit was syncing into one Pebble batch, checks
// expected revisions against the state those requests build up, commits the
// batch with one fsync, publishes a new view and only then replies. One
// writer makes revision checks and position assignment trivially serial; the
// queue that builds up during each fsync is what makes group commit work.
//
// Pipelining (applying the next batch while the previous one syncs) was
// measured and gained nothing: the fsync is the bottleneck, and writers
// blocked on their replies cannot make the next batch any larger.
type committer struct {
	store        *Store
	db           *pebble.DB
	lastPosition uint64
	// failed is set when a commit fails; the store then refuses all writes,
	// since what reached the disk is unknown until it is reopened.
	failed error

	batch *pebble.Batch
	// streams caches the state of recently written streams, so most appends
	// need no read; only the committer writes, so the cache is exact.
	streams map[string]*streamState
	// exists knows which streams certainly have no state record.
	exists *streamFilter
	// dirty are the streams the current batch writes.
	dirty   []string
	replies []pendingReply
	key     []byte
	// positions is dropEvents' scratch space.
	positions []uint64
}

// maxCachedStreams bounds the committer's cache of stream states.
const maxCachedStreams = 1 << 16

// streamState is a stream's state as the current batch leaves it.
type streamState struct {
	meta  streamMeta
	dirty bool
	// first is the revision of the first event this batch writes to the
	// stream; ids and positions are those events'.
	first     uint64
	ids       []uuid.UUID
	positions []uint64
}

type pendingReply struct {
	r   *request
	rep reply
}

func newCommitter(s *Store, db *pebble.DB, lastPosition uint64, exists *streamFilter) *committer {
	return &committer{
		store:        s,
		db:           db,
		lastPosition: lastPosition,
		streams:      make(map[string]*streamState),
		exists:       exists,
	}
}

func (c *committer) run() {
	defer close(c.store.stopped)
	reqs := make([]*request, 0, maxBatch)
	last := 0 // requests in the previous batch
	for {
		select {
		case r := <-c.store.requests:
			reqs = append(reqs[:0], r)
		case <-c.store.stop:
			return
		}
		// The writers the last commit released are about to append again;
		// let them queue up before draining, or this batch would hold only
		// the first of them and the next fsync would serve one writer. Yield
		// while the queue keeps growing, up to the last batch's size.
		for queued := len(c.store.requests); queued+1 < last; {
			runtime.Gosched()
			n := len(c.store.requests)
			if n == queued {
				break
			}
			queued = n
		}
	drain:
		for len(reqs) < maxBatch {
			select {
			case r := <-c.store.requests:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		for _, r := range reqs {
			if !r.take() {
				continue
			}
			if r.op == opAppend {
				c.append(r)
				continue
			}
			// A removal reads the events it drops from Pebble, so the batch
			// is committed first if it writes the stream. Otherwise the
			// removal joins the batch: what it changes is the stream's state
			// here and deletions in the batch, which later requests in the
			// batch see and which commit atomically with the rest.
			if ps, ok := c.streams[r.stream]; ok && ps.dirty {
				c.flush()
			}
			c.remove(r)
		}
		last = len(reqs)
		clear(reqs)
		c.flush()
	}
}

func (c *committer) respond(r *request, result eventstore.AppendResult, err error) {
	c.replies = append(c.replies, pendingReply{r: r, rep: reply{result: result, err: err}})
}

// flush commits the current batch durably, publishes it and replies to its
// requests. Replies wait for the commit even when they are errors, because
// they were decided against state the batch builds.
func (c *committer) flush() {
	if (c.batch != nil || len(c.dirty) > 0) && c.failed == nil {
		if err := c.commit(); err != nil {
			c.failed = fmt.Errorf("pebble eventstore: commit failed, reopen the store: %w", err)
			c.store.log.Error("event store commit failed", "error", err)
		} else {
			c.store.publish(c.lastPosition)
		}
	}
	if c.batch != nil {
		c.batch.Close()
		c.batch = nil
	}
	c.forgetBatch()
	for _, p := range c.replies {
		if c.failed != nil {
			p.rep = reply{err: c.failed}
		}
		p.r.done <- p.rep
	}
	clear(c.replies)
	c.replies = c.replies[:0]
	if c.failed == nil {
		c.growFilter()
	}
}

// commit writes the stream states and the last position into the batch and
// commits it with an fsync.
func (c *committer) commit() error {
	b := c.ensureBatch()
	var pos [8]byte
	putPosition(pos[:], c.lastPosition)
	if err := b.Set(keyLastPosition, pos[:], nil); err != nil {
		return err
	}
	for _, name := range c.dirty {
		if err := b.Set(metaKey(name), c.streams[name].meta.encode(), nil); err != nil {
			return err
		}
		if !c.exists.mayContain(name) {
			c.exists.add(name)
		}
	}
	return b.Commit(pebble.Sync)
}

// growFilter rebuilds the stream filter larger from the state records once
// it holds more names than it was sized for. It runs after a commit was
// published and answered, so a failure costs no write: the full filter stays
// in use, answering yes more often, which only costs reads, and the rebuild
// is tried again once as many names again were added.
func (c *committer) growFilter() {
	if !c.exists.full() {
		return
	}
	f, err := loadFilter(c.db, 2*c.exists.capacity)
	if err != nil {
		c.exists.capacity *= 2
		c.store.log.Error("event store: rebuilding the stream filter failed, keeping the full one", "error", err)
		return
	}
	c.exists = f
}

// forgetBatch clears what the cache knows about the batch just committed
// (later reads of its events go to Pebble) and keeps the cache bounded by
// dropping arbitrary entries.
func (c *committer) forgetBatch() {
	for _, name := range c.dirty {
		ps := c.streams[name]
		ps.dirty = false
		ps.ids = ps.ids[:0]
		ps.positions = ps.positions[:0]
	}
	clear(c.dirty)
	c.dirty = c.dirty[:0]
	if len(c.streams) > maxCachedStreams {
		for name := range c.streams {
			delete(c.streams, name)
			if len(c.streams) <= maxCachedStreams*3/4 {
				break
			}
		}
	}
}

// markDirty records that the current batch writes the stream's state.
func (c *committer) markDirty(name string, ps *streamState) {
	if !ps.dirty {
		ps.dirty = true
		c.dirty = append(c.dirty, name)
	}
}

func (c *committer) ensureBatch() *pebble.Batch {
	if c.batch == nil {
		c.batch = c.db.NewBatch()
	}
	return c.batch
}

// stream returns the pending state of a stream, loading it on first use.
func (c *committer) stream(name string) (*streamState, error) {
	if ps, ok := c.streams[name]; ok {
		return ps, nil
	}
	m := streamMeta{last: eventstore.NoRevision}
	if !c.exists.mayContain(name) {
		ps := &streamState{meta: m}
		c.streams[name] = ps
		return ps, nil
	}
	v, closer, err := c.db.Get(metaKey(name))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("pebble eventstore: read stream %q: %w", name, err)
	default:
		m, err = decodeMeta(v)
		closer.Close()
		if err != nil {
			return nil, fmt.Errorf("pebble eventstore: stream %q: %w", name, err)
		}
	}
	ps := &streamState{meta: m}
	c.streams[name] = ps
	return ps, nil
}

// writable returns the state of the stream r writes, or answers r with the
// reason it cannot: a failed store, an unreadable state, a tombstone.
func (c *committer) writable(r *request) (*streamState, bool) {
	if c.failed != nil {
		c.respond(r, eventstore.AppendResult{}, c.failed)
		return nil, false
	}
	ps, err := c.stream(r.stream)
	if err != nil {
		c.respond(r, eventstore.AppendResult{}, err)
		return nil, false
	}
	if ps.meta.tombstoned {
		c.respond(r, eventstore.AppendResult{}, &eventstore.TombstonedError{Stream: r.stream})
		return nil, false
	}
	return ps, true
}

func (c *committer) append(r *request) {
	ps, ok := c.writable(r)
	if !ok {
		return
	}
	m := &ps.meta
	actual := m.current()
	if !r.expected.Matches(actual) {
		res, ok, err := c.retried(r, ps)
		if !ok && err == nil {
			err = &eventstore.WrongExpectedRevisionError{Stream: r.stream, Expected: r.expected, Actual: actual}
		}
		c.respond(r, res, err)
		return
	}
	if r.expected.IsAny() || r.expected.IsStreamExists() {
		if res, ok, err := c.retried(r, ps); ok || err != nil {
			c.respond(r, res, err)
			return
		}
	}
	m.deleted = false
	if len(ps.ids) == 0 {
		ps.first = uint64(m.last + 1)
	}
	b := c.ensureBatch()
	created := c.store.clock().UnixNano()
	for i := range r.events {
		ev := &r.events[i]
		id := ev.ID
		if id == uuid.Nil {
			id = uuid.New()
		}
		c.lastPosition++
		m.last++
		rev := uint64(m.last)
		size := eventLen(ev)

		c.key = appendStreamKey(c.key[:0], r.stream, rev)
		op := b.SetDeferred(len(c.key), size)
		copy(op.Key, c.key)
		putEvent(op.Value, ev, id, c.lastPosition, created)
		op.Finish() // cannot fail: the batch is not indexed

		op = b.SetDeferred(9, logPrefixLen(r.stream)+size)
		putLogKey(op.Key, c.lastPosition)
		n := putLogPrefix(op.Value, r.stream, rev)
		putEvent(op.Value[n:], ev, id, c.lastPosition, created)
		op.Finish() // cannot fail: the batch is not indexed

		ps.ids = append(ps.ids, id)
		ps.positions = append(ps.positions, c.lastPosition)
		m.lastID = id
	}
	c.markDirty(r.stream, ps)
	c.respond(r, eventstore.AppendResult{Revision: uint64(m.last), Position: c.lastPosition}, nil)
}

// retried reports whether r's events are already stored where a retry at
// r.expected looks for them (see idempotency.Revisions), and if so the
// result of that earlier append.
func (c *committer) retried(r *request, ps *streamState) (eventstore.AppendResult, bool, error) {
	m := ps.meta
	n := len(r.events)
	if (r.expected.IsAny() || r.expected.IsStreamExists()) && r.events[n-1].ID != m.lastID {
		return eventstore.AppendResult{}, false, nil
	}
	start, ok := idempotency.Revisions(r.expected, m.floor, m.current(), n)
	if !ok {
		return eventstore.AppendResult{}, false, nil
	}
	var position uint64
	for i := range r.events {
		id, pos, err := c.eventAt(r.stream, ps, start+uint64(i))
		if err != nil {
			return eventstore.AppendResult{}, false, err
		}
		if r.events[i].ID == uuid.Nil || id != r.events[i].ID {
			return eventstore.AppendResult{}, false, nil
		}
		position = pos
	}
	return eventstore.AppendResult{Revision: start + uint64(n) - 1, Position: position}, true, nil
}

// eventAt returns the ID and position of a stored or pending event.
func (c *committer) eventAt(stream string, ps *streamState, rev uint64) (uuid.UUID, uint64, error) {
	if len(ps.ids) > 0 && rev >= ps.first {
		i := rev - ps.first
		return ps.ids[i], ps.positions[i], nil
	}
	c.key = appendStreamKey(c.key[:0], stream, rev)
	v, closer, err := c.db.Get(c.key)
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("pebble eventstore: read %q@%d: %w", stream, rev, err)
	}
	defer closer.Close()
	if len(v) < fixedLen {
		return uuid.Nil, 0, errCorrupt
	}
	id, _ := uuid.FromBytes(v[16:32])
	return id, valuePosition(v), nil
}

// remove handles DeleteStream, TombstoneStream and TruncateBefore. A
// removal that fails changes nothing.
func (c *committer) remove(r *request) {
	ps, ok := c.writable(r)
	if !ok {
		return
	}
	m := &ps.meta
	actual := m.current()
	if r.op == opTruncate {
		if actual == eventstore.NoRevision {
			c.respond(r, eventstore.AppendResult{}, &eventstore.NotFoundError{Stream: r.stream})
			return
		}
		floor := min(r.revision, uint64(m.last+1))
		if floor > m.floor {
			if err := c.dropEvents(r.stream, m.floor, floor); err != nil {
				c.respond(r, eventstore.AppendResult{}, err)
				return
			}
			m.floor = floor
			c.markDirty(r.stream, ps)
		}
		c.respond(r, eventstore.AppendResult{}, nil)
		return
	}
	if !r.expected.Matches(actual) {
		c.respond(r, eventstore.AppendResult{}, &eventstore.WrongExpectedRevisionError{Stream: r.stream, Expected: r.expected, Actual: actual})
		return
	}
	if floor := uint64(m.last + 1); floor > m.floor {
		if err := c.dropEvents(r.stream, m.floor, floor); err != nil {
			c.respond(r, eventstore.AppendResult{}, err)
			return
		}
		m.floor = floor
	}
	if m.last != eventstore.NoRevision {
		m.deleted = true
	}
	if r.op == opTombstone {
		m.tombstoned = true
	}
	if m.deleted || m.tombstoned {
		c.markDirty(r.stream, ps)
	}
	c.respond(r, eventstore.AppendResult{}, nil)
}

// dropEvents deletes the events of stream with revisions in [from, to) and
// their copies in the global log. It reads the positions of all of them
// before it deletes any, so when it fails the batch is as it was.
func (c *committer) dropEvents(stream string, from, to uint64) error {
	lower := streamKey(stream, from)
	upper := streamKey(stream, to)
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	positions := c.positions[:0]
	var keys [][]byte // while there are few
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil || len(v) < fixedLen {
			it.Close()
			return fmt.Errorf("pebble eventstore: drop %q: %w", stream, errors.Join(err, errCorrupt))
		}
		positions = append(positions, valuePosition(v))
		if len(positions) <= pointDeleteLimit {
			keys = append(keys, bytes.Clone(it.Key()))
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if cap(positions) <= 1<<16 {
		c.positions = positions[:0]
	}
	// Neither can fail: the batch is not indexed.
	b := c.ensureBatch()
	for _, p := range positions {
		b.Delete(logKey(p), nil)
	}
	// A few events go one by one: every range tombstone in the memtable
	// is fragmented again by each read until it is flushed, so thousands
	// of small truncations (purges, ContinueAsNew, entity checkpoints)
	// would make every read slower. A long run goes as one range.
	if len(positions) > pointDeleteLimit {
		b.DeleteRange(lower, upper, nil)
		return nil
	}
	for _, k := range keys {
		b.Delete(k, nil)
	}
	return nil
}

// pointDeleteLimit is the most events dropEvents deletes one by one.
const pointDeleteLimit = 256
