// Package memory is an in-memory eventstore.Store for tests and examples.
//
// It follows the contract exactly, including expected revisions, idempotent
// retries, soft deletion with continuing revisions, tombstones, truncation and
// catch-up subscriptions, but keeps nothing across restarts. Global positions
// start at 1, so a checkpoint of 0 means "nothing processed yet".
package memory

import (
	"context"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/internal/follow"
	"github.com/durableactor/durable/eventstore/internal/idempotency"
)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	Limits eventstore.Limits
	// Clock stamps events with their creation time; time.Now when nil.
	Clock func() time.Time
}

// Store is an in-memory event store.
type Store struct {
	limits eventstore.Limits
	clock  func() time.Time

	mu      sync.RWMutex
	streams map[string]*stream
	// log holds the live events of every stream in position order. Deleted
	// and truncated events are removed from it.
	log     []eventstore.RecordedEvent
	lastPos uint64
	changed chan struct{}
	closed  bool
}

type stream struct {
	// events are the readable events, events[i].Revision == first+i.
	events []eventstore.RecordedEvent
	// last is the revision of the last event ever appended, NoRevision if none.
	last       int64
	deleted    bool
	tombstoned bool
}

func (s *stream) current() int64 {
	if s == nil || s.deleted {
		return eventstore.NoRevision
	}
	return s.last
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Store{
		limits:  cfg.Limits.WithDefaults(),
		clock:   cfg.Clock,
		streams: make(map[string]*stream),
		changed: make(chan struct{}),
	}
}

var _ eventstore.Store = (*Store)(nil)

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, name string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := s.limits.CheckAppend(name, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	st := s.streams[name]
	if st != nil && st.tombstoned {
		return eventstore.AppendResult{}, &eventstore.TombstonedError{Stream: name}
	}
	actual := st.current()
	if !expected.Matches(actual) {
		if res, ok := st.retried(expected, events); ok {
			return res, nil
		}
		return eventstore.AppendResult{}, &eventstore.WrongExpectedRevisionError{Stream: name, Expected: expected, Actual: actual}
	}
	if res, ok := st.retried(expected, events); ok && (expected.IsAny() || expected.IsStreamExists()) {
		return res, nil
	}
	if st == nil {
		st = &stream{last: eventstore.NoRevision}
		s.streams[name] = st
	}
	if st.deleted {
		st.deleted = false
		st.events = nil
	}
	now := s.clock().UTC()
	for _, ev := range events {
		s.lastPos++
		st.last++
		rec := eventstore.RecordedEvent{
			Stream:      name,
			ID:          ev.ID,
			Type:        ev.Type,
			ContentType: ev.ContentType,
			Data:        slices.Clone(ev.Data),
			Metadata:    slices.Clone(ev.Metadata),
			Revision:    uint64(st.last),
			Position:    s.lastPos,
			Created:     now,
		}
		if rec.ID == uuid.Nil {
			rec.ID = uuid.New()
		}
		if rec.ContentType == "" {
			rec.ContentType = eventstore.ContentTypeBinary
		}
		st.events = append(st.events, rec)
		s.log = append(s.log, rec)
	}
	s.notify()
	return eventstore.AppendResult{Revision: uint64(st.last), Position: s.lastPos}, nil
}

// retried reports whether events were already appended where a retry at
// expected looks for them (see idempotency.Revisions), and if so the result
// of that earlier append.
func (st *stream) retried(expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, bool) {
	if st == nil || st.deleted {
		return eventstore.AppendResult{}, false
	}
	floor := uint64(st.last + 1)
	if len(st.events) > 0 {
		floor = st.events[0].Revision
	}
	first, ok := idempotency.Revisions(expected, floor, st.last, len(events))
	if !ok {
		return eventstore.AppendResult{}, false
	}
	stored := st.events[first-floor:][:len(events)]
	for i, ev := range events {
		if ev.ID == uuid.Nil || stored[i].ID != ev.ID {
			return eventstore.AppendResult{}, false
		}
	}
	last := stored[len(stored)-1]
	return eventstore.AppendResult{Revision: last.Revision, Position: last.Position}, true
}

func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Store) changes() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, name string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		events, err := s.streamEvents(name)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		if len(events) == 0 {
			return
		}
		first := events[0].Revision
		var n uint64
		emit := func(ev eventstore.RecordedEvent) bool {
			if opts.Limit > 0 && n == opts.Limit {
				return false
			}
			n++
			return yield(clone(ev), nil)
		}
		if opts.Direction == eventstore.Backwards {
			i := len(events) - 1
			if rev, ok := opts.From.Revision(); ok {
				i = min(i, int(int64(rev)-int64(first)))
			} else if opts.From.IsStart() {
				i = min(i, 0)
			}
			for ; i >= 0; i-- {
				if !emit(events[i]) {
					return
				}
			}
			return
		}
		i := 0
		if rev, ok := opts.From.Revision(); ok && rev > first {
			i = int(rev - first)
		} else if opts.From.IsEnd() {
			i = len(events)
		}
		for ; i < len(events); i++ {
			if !emit(events[i]) {
				return
			}
		}
	}
}

// streamEvents returns the readable events of a stream; the slice is never
// modified in place afterwards, only replaced, so it is safe to use unlocked.
func (s *Store) streamEvents(name string) ([]eventstore.RecordedEvent, error) {
	if err := s.limits.CheckStreamName(name); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, eventstore.ErrClosed
	}
	st := s.streams[name]
	switch {
	case st != nil && st.tombstoned:
		return nil, &eventstore.TombstonedError{Stream: name}
	case st.current() == eventstore.NoRevision:
		return nil, &eventstore.NotFoundError{Stream: name}
	}
	return st.events[:len(st.events):len(st.events)], nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		s.mu.RLock()
		log, closed := s.log[:len(s.log):len(s.log)], s.closed
		s.mu.RUnlock()
		if closed {
			yield(eventstore.RecordedEvent{}, eventstore.ErrClosed)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		var n uint64
		emit := func(ev eventstore.RecordedEvent) bool {
			if !opts.Filter.Match(ev.Stream, ev.Type) {
				return true
			}
			if opts.Limit > 0 && n == opts.Limit {
				return false
			}
			n++
			return yield(clone(ev), nil)
		}
		if opts.Direction == eventstore.Backwards {
			i := len(log) - 1
			if pos, ok := opts.From.Position(); ok {
				i = search(log, pos+1) - 1
			} else if opts.From.IsStart() {
				i = min(i, 0)
			}
			for ; i >= 0; i-- {
				if !emit(log[i]) {
					return
				}
			}
			return
		}
		i := 0
		if pos, ok := opts.From.Position(); ok {
			i = search(log, pos)
		} else if opts.From.IsEnd() {
			i = len(log)
		}
		for ; i < len(log); i++ {
			if !emit(log[i]) {
				return
			}
		}
	}
}

// search returns the index of the first event in log at or after pos.
func search(log []eventstore.RecordedEvent, pos uint64) int {
	i, _ := slices.BinarySearchFunc(log, pos, func(ev eventstore.RecordedEvent, p uint64) int {
		switch {
		case ev.Position < p:
			return -1
		case ev.Position > p:
			return 1
		}
		return 0
	})
	return i
}

func clone(ev eventstore.RecordedEvent) eventstore.RecordedEvent {
	ev.Data = slices.Clone(ev.Data)
	ev.Metadata = slices.Clone(ev.Metadata)
	return ev
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
			s.mu.RLock()
			next = uint64(s.streams[name].current() + 1)
			s.mu.RUnlock()
		}
		page := func(yield func(eventstore.RecordedEvent) bool) (bool, error) {
			events, err := s.streamEvents(name)
			if err != nil && !isNotFound(err) {
				return false, err
			}
			if len(events) == 0 {
				return false, nil
			}
			i := 0
			if first := events[0].Revision; next > first {
				i = int(min(next-first, uint64(len(events))))
			}
			end := min(i+follow.PageSize, len(events))
			for _, ev := range events[i:end] {
				next = ev.Revision + 1
				if !yield(clone(ev)) {
					return false, nil
				}
			}
			return end < len(events), nil
		}
		follow.Run(ctx, s.changes, page, yield)
	}
}

func isNotFound(err error) bool {
	_, ok := err.(*eventstore.NotFoundError)
	return ok
}

// SubscribeToAll implements eventstore.Store.
func (s *Store) SubscribeToAll(ctx context.Context, opts eventstore.SubscribeAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		after, _ := opts.From.Position()
		if opts.From.IsEnd() {
			s.mu.RLock()
			after = s.lastPos
			s.mu.RUnlock()
		}
		page := func(yield func(eventstore.RecordedEvent) bool) (bool, error) {
			s.mu.RLock()
			log, closed := s.log[:len(s.log):len(s.log)], s.closed
			s.mu.RUnlock()
			if closed {
				return false, eventstore.ErrClosed
			}
			i := search(log, after+1)
			end := min(i+follow.PageSize, len(log))
			for _, ev := range log[i:end] {
				after = ev.Position
				if !opts.Filter.Match(ev.Stream, ev.Type) {
					continue
				}
				if !yield(clone(ev)) {
					return false, nil
				}
			}
			return end < len(log), nil
		}
		follow.Run(ctx, s.changes, page, yield)
	}
}

// DeleteStream implements eventstore.Store.
func (s *Store) DeleteStream(ctx context.Context, name string, expected eventstore.ExpectedRevision) error {
	return s.remove(ctx, name, expected, false)
}

// TombstoneStream implements eventstore.Store.
func (s *Store) TombstoneStream(ctx context.Context, name string, expected eventstore.ExpectedRevision) error {
	return s.remove(ctx, name, expected, true)
}

func (s *Store) remove(ctx context.Context, name string, expected eventstore.ExpectedRevision, tombstone bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.limits.CheckStreamName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.ErrClosed
	}
	st := s.streams[name]
	if st != nil && st.tombstoned {
		return &eventstore.TombstonedError{Stream: name}
	}
	if actual := st.current(); !expected.Matches(actual) {
		return &eventstore.WrongExpectedRevisionError{Stream: name, Expected: expected, Actual: actual}
	}
	if st == nil {
		if !tombstone {
			return nil
		}
		st = &stream{last: eventstore.NoRevision}
		s.streams[name] = st
	}
	s.dropFromLog(name, st.events)
	st.events = nil
	st.deleted = true
	st.tombstoned = tombstone
	s.notify()
	return nil
}

// dropFromLog removes events of one stream from the global log. The log is
// rebuilt rather than edited in place because readers may hold the old slice.
func (s *Store) dropFromLog(name string, events []eventstore.RecordedEvent) {
	if len(events) == 0 {
		return
	}
	from, to := events[0].Position, events[len(events)-1].Position
	kept := make([]eventstore.RecordedEvent, 0, len(s.log)-len(events))
	for _, ev := range s.log {
		if ev.Stream == name && ev.Position >= from && ev.Position <= to {
			continue
		}
		kept = append(kept, ev)
	}
	s.log = kept
}

// TruncateBefore implements eventstore.Store. A revision past the stream's
// end is treated as the end, so events appended later stay readable.
func (s *Store) TruncateBefore(ctx context.Context, name string, revision uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.limits.CheckStreamName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.ErrClosed
	}
	st := s.streams[name]
	switch {
	case st != nil && st.tombstoned:
		return &eventstore.TombstonedError{Stream: name}
	case st.current() == eventstore.NoRevision:
		return &eventstore.NotFoundError{Stream: name}
	}
	n := 0
	for n < len(st.events) && st.events[n].Revision < revision {
		n++
	}
	s.dropFromLog(name, st.events[:n])
	st.events = slices.Clone(st.events[n:])
	s.notify()
	return nil
}

// Close implements eventstore.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.notify()
	}
	return nil
}
