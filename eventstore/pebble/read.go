package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/internal/follow"
)

// Reads copy a page of events out of a view, release the view, and only then
// yield them. No Pebble iterator or snapshot stays open while the caller's
// loop body runs, so a slow consumer holds no storage resources and Close
// never waits on user code.
const (
	readPage = 256
	// scanPage bounds how many log entries one page examines when a filter
	// skips most of them.
	scanPage = 4096
)

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := s.limits.CheckAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, &request{op: opAppend, stream: stream, expected: expected, events: events})
}

// DeleteStream implements eventstore.Store.
func (s *Store) DeleteStream(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	return s.removal(ctx, &request{op: opDelete, stream: stream, expected: expected})
}

// TombstoneStream implements eventstore.Store.
func (s *Store) TombstoneStream(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	return s.removal(ctx, &request{op: opTombstone, stream: stream, expected: expected})
}

// TruncateBefore implements eventstore.Store. A revision past the stream's
// end is treated as the end, so events appended later stay readable.
func (s *Store) TruncateBefore(ctx context.Context, stream string, revision uint64) error {
	return s.removal(ctx, &request{op: opTruncate, stream: stream, revision: revision})
}

func (s *Store) removal(ctx context.Context, r *request) error {
	if err := s.limits.CheckStreamName(r.stream); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.submit(ctx, r)
	return err
}

// meta reads a stream's state from a view.
func (v *view) meta(name string) (streamMeta, bool, error) {
	val, closer, err := v.snap.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return streamMeta{last: eventstore.NoRevision}, false, nil
	}
	if err != nil {
		return streamMeta{}, false, fmt.Errorf("pebble eventstore: read stream %q: %w", name, err)
	}
	defer closer.Close()
	m, err := decodeMeta(val)
	return m, true, err
}

// readable returns the state of a stream that may be read, or the error a
// read of it yields.
func (v *view) readable(name string) (streamMeta, error) {
	m, _, err := v.meta(name)
	switch {
	case err != nil:
		return m, err
	case m.tombstoned:
		return m, &eventstore.TombstonedError{Stream: name}
	case m.current() == eventstore.NoRevision:
		return m, &eventstore.NotFoundError{Stream: name}
	}
	return m, nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, name string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		if err := s.limits.CheckStreamName(name); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		backwards := opts.Direction == eventstore.Backwards
		var (
			dec       decoder
			page      []eventstore.RecordedEvent
			next      uint64
			remaining = opts.Limit
		)
		for first := true; ; first = false {
			if err := ctx.Err(); err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			v, err := s.acquire()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			if first {
				var ok bool
				next, ok, err = v.streamStart(name, opts.From, backwards)
				if err != nil || !ok {
					v.release()
					if err != nil {
						yield(eventstore.RecordedEvent{}, err)
					}
					return
				}
			}
			want := readPage
			if remaining > 0 && remaining < readPage {
				want = int(remaining)
			}
			page, err = v.readStream(&dec, name, next, backwards, want, page[:0])
			v.release()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			for _, ev := range page {
				if !yield(ev, nil) {
					return
				}
			}
			if len(page) < want {
				return
			}
			last := page[len(page)-1].Revision
			if backwards {
				if last == 0 {
					return
				}
				next = last - 1
			} else {
				next = last + 1
			}
			if remaining > 0 {
				remaining -= uint64(len(page))
				if remaining == 0 {
					return
				}
			}
		}
	}
}

// streamStart resolves where a read of name begins; ok is false when there
// is nothing to read.
func (v *view) streamStart(name string, from eventstore.StreamFrom, backwards bool) (next uint64, ok bool, err error) {
	m, err := v.readable(name)
	if err != nil {
		return 0, false, err
	}
	last := uint64(m.last)
	rev, exact := from.Revision()
	switch {
	case backwards && from.IsEnd():
		next = last
	case backwards && from.IsStart():
		next = m.floor
	case backwards:
		next = min(rev, last)
	case from.IsEnd():
		return 0, false, nil
	case exact:
		next = max(rev, m.floor)
	default:
		next = m.floor
	}
	if backwards && next < m.floor {
		return 0, false, nil
	}
	return next, true, nil
}

// readStream appends up to n events of name to out, starting at revision
// from and going forwards or backwards.
func (v *view) readStream(dec *decoder, name string, from uint64, backwards bool, n int, out []eventstore.RecordedEvent) ([]eventstore.RecordedEvent, error) {
	opts := &pebble.IterOptions{LowerBound: streamKey(name, from), UpperBound: streamUpper(name)}
	if backwards {
		opts = &pebble.IterOptions{LowerBound: streamPrefix(name), UpperBound: streamKey(name, from+1)}
	}
	it, err := v.snap.NewIter(opts)
	if err != nil {
		return out, err
	}
	valid := it.First()
	if backwards {
		valid = it.Last()
	}
	for ; valid && len(out) < n; valid = step(it, backwards) {
		val, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return out, err
		}
		key := it.Key()
		ev := eventstore.RecordedEvent{Stream: name, Revision: binary.BigEndian.Uint64(key[len(key)-8:])}
		if err := dec.decodeEvent(val, &ev); err != nil {
			it.Close()
			return out, fmt.Errorf("pebble eventstore: %q@%d: %w", name, ev.Revision, err)
		}
		out = append(out, ev)
	}
	return out, it.Close()
}

func step(it *pebble.Iterator, backwards bool) bool {
	if backwards {
		return it.Prev()
	}
	return it.Next()
}

// readLog appends to out up to n events of the global log that match filter,
// starting at position from and examining at most scan entries. It returns
// the position of the last entry examined and how many it examined.
func (v *view) readLog(dec *decoder, from uint64, backwards bool, filter eventstore.Filter, n, scan int, out []eventstore.RecordedEvent) (_ []eventstore.RecordedEvent, last uint64, examined int, err error) {
	opts := &pebble.IterOptions{LowerBound: logKey(from), UpperBound: logKey(v.position + 1)}
	if backwards {
		opts = &pebble.IterOptions{LowerBound: logKey(0), UpperBound: logKey(min(from, v.position) + 1)}
	}
	it, err := v.snap.NewIter(opts)
	if err != nil {
		return out, 0, 0, err
	}
	valid := it.First()
	if backwards {
		valid = it.Last()
	}
	for ; valid && len(out) < n && examined < scan; valid = step(it, backwards) {
		examined++
		last = binary.BigEndian.Uint64(it.Key()[1:])
		val, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return out, last, examined, err
		}
		stream, rev, body, err := decodeLogHeader(val)
		if err != nil {
			it.Close()
			return out, last, examined, fmt.Errorf("pebble eventstore: log position %d: %w", last, err)
		}
		if !filter.IsEmpty() {
			ok, err := passes(filter, stream, body)
			if err != nil {
				it.Close()
				return out, last, examined, fmt.Errorf("pebble eventstore: log position %d: %w", last, err)
			}
			if !ok {
				continue
			}
		}
		ev := eventstore.RecordedEvent{Stream: dec.intern(stream), Revision: rev}
		if err := dec.decodeEvent(body, &ev); err != nil {
			it.Close()
			return out, last, examined, fmt.Errorf("pebble eventstore: log position %d: %w", last, err)
		}
		out = append(out, ev)
	}
	return out, last, examined, it.Close()
}

// firstPosition returns the position of the first event of the global log,
// or 0, which no event has, when the log is empty.
func (v *view) firstPosition() (uint64, error) {
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: logKey(0), UpperBound: logKey(v.position + 1)})
	if err != nil {
		return 0, err
	}
	var pos uint64
	if it.First() {
		pos = binary.BigEndian.Uint64(it.Key()[1:])
	}
	return pos, it.Close()
}

// passes reports whether the log entry of an event of stream, with the
// encoded event body, passes filter. It compares the bytes in place, since
// converting them to strings would allocate for every entry examined (the
// engine's stream names are longer than the compiler's 32-byte buffer).
func passes(filter eventstore.Filter, stream, body []byte) (bool, error) {
	if !hasAnyPrefix(stream, filter.StreamPrefixes) {
		return false, nil
	}
	if len(filter.EventTypePrefixes) == 0 {
		return true, nil
	}
	typ, err := eventType(body)
	if err != nil {
		return false, err
	}
	return hasAnyPrefix(typ, filter.EventTypePrefixes), nil
}

// hasAnyPrefix is eventstore.Filter's rule for one kind of prefix: b passes
// when it starts with one of prefixes, or there are none.
func hasAnyPrefix(b []byte, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if len(b) >= len(p) && string(b[:len(p)]) == p {
			return true
		}
	}
	return false
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		backwards := opts.Direction == eventstore.Backwards
		var (
			dec       decoder
			page      []eventstore.RecordedEvent
			remaining = opts.Limit
			next      uint64
		)
		for first := true; ; first = false {
			if err := ctx.Err(); err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			v, err := s.acquire()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			if first {
				pos, exact := opts.From.Position()
				switch {
				case opts.From.IsEnd() && !backwards:
					v.release()
					return
				case opts.From.IsEnd(), backwards && exact && pos > v.position:
					next = v.position
				case exact:
					next = pos
				case backwards:
					// AllStart is the log's first event; nothing precedes it.
					if next, err = v.firstPosition(); err != nil {
						v.release()
						yield(eventstore.RecordedEvent{}, err)
						return
					}
				}
			}
			want := readPage
			if remaining > 0 && remaining < readPage {
				want = int(remaining)
			}
			var last uint64
			var examined int
			page, last, examined, err = v.readLog(&dec, next, backwards, opts.Filter, want, scanPage, page[:0])
			v.release()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			for _, ev := range page {
				if !yield(ev, nil) {
					return
				}
			}
			if len(page) < want && examined < scanPage {
				return
			}
			if backwards {
				if last == 0 {
					return
				}
				next = last - 1
			} else {
				next = last + 1
			}
			if remaining > 0 {
				remaining -= uint64(len(page))
				if remaining == 0 {
					return
				}
			}
		}
	}
}

// SubscribeToAll implements eventstore.Store.
func (s *Store) SubscribeToAll(ctx context.Context, opts eventstore.SubscribeAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		after, _ := opts.From.Position()
		if opts.From.IsEnd() {
			v, err := s.acquire()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			after = v.position
			v.release()
		}
		var (
			dec  decoder
			page []eventstore.RecordedEvent
		)
		read := func(yield func(eventstore.RecordedEvent) bool) (bool, error) {
			v, err := s.acquire()
			if err != nil {
				return false, err
			}
			if after >= v.position {
				v.release()
				return false, nil
			}
			var last uint64
			var examined int
			page, last, examined, err = v.readLog(&dec, after+1, false, opts.Filter, follow.PageSize, follow.PageSize, page[:0])
			v.release()
			if err != nil {
				return false, err
			}
			if examined > 0 {
				after = last
			}
			for _, ev := range page {
				if !yield(ev) {
					return false, nil
				}
			}
			return examined == follow.PageSize, nil
		}
		follow.Run(ctx, s.changes, read, yield)
	}
}

// SubscribeToStream implements eventstore.Store.
func (s *Store) SubscribeToStream(ctx context.Context, name string, opts eventstore.SubscribeStreamOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		if err := s.limits.CheckStreamName(name); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		next, exact := opts.From.Revision()
		if exact {
			next++
		} else if opts.From.IsEnd() {
			v, err := s.acquire()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			m, _, err := v.meta(name)
			v.release()
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			next = uint64(m.last + 1)
		}
		var (
			dec  decoder
			page []eventstore.RecordedEvent
		)
		read := func(yield func(eventstore.RecordedEvent) bool) (bool, error) {
			v, err := s.acquire()
			if err != nil {
				return false, err
			}
			m, err := v.readable(name)
			if err != nil {
				v.release()
				if errors.Is(err, eventstore.ErrStreamNotFound) {
					return false, nil
				}
				return false, err
			}
			page, err = v.readStream(&dec, name, max(next, m.floor), false, follow.PageSize, page[:0])
			v.release()
			if err != nil {
				return false, err
			}
			for _, ev := range page {
				next = ev.Revision + 1
				if !yield(ev) {
					return false, nil
				}
			}
			return len(page) == follow.PageSize, nil
		}
		follow.Run(ctx, s.changes, read, yield)
	}
}
