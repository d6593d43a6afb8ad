package pebble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/durableactor/durable/eventstore"
)

// Config configures a Store.
type Config struct {
	// Dir is the directory of the database; it is created if missing.
	Dir string
	// Limits bound what appends may contain.
	Limits eventstore.Limits
	// Clock stamps events with their creation time; time.Now when nil.
	Clock func() time.Time
	// Logger receives Pebble's messages; slog.Default() when nil.
	Logger *slog.Logger
	// CacheSize is Pebble's block cache in bytes; 64 MiB when zero.
	CacheSize int64

	// fs replaces the operating system's file system; the power-loss test
	// uses Pebble's crashable in-memory file system.
	fs vfs.FS
}

// Store is the embedded, durable event store.
type Store struct {
	cfg    Config
	db     *pebble.DB
	limits eventstore.Limits
	clock  func() time.Time
	log    *slog.Logger

	requests chan *request
	stop     chan struct{}
	stopped  chan struct{}

	// mu guards the published view and the change channel.
	mu      sync.RWMutex
	current *view
	changed chan struct{}
	closed  bool
	// views counts views whose snapshot is still open; Close waits for it.
	views sync.WaitGroup
}

var _ eventstore.Store = (*Store)(nil)

// view is the durable state of the store at one commit: a Pebble snapshot
// taken after the commit's fsync, and the last position it contains.
// Readers only ever read through a view, so they never see an event (or a
// deletion) before it is on disk, even though Pebble itself makes a batch
// visible before its WAL sync finishes. Only the committer writes, so the
// snapshot holds exactly what has been committed.
type view struct {
	store    *Store
	snap     *pebble.Snapshot
	position uint64
	// refs counts the store's own reference (while the view is current) and
	// each reader's; the snapshot closes when it drops to zero.
	refs atomic.Int64
}

// Open opens (or creates) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pebble eventstore: Config.Dir is empty")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 64 << 20
	}
	cache := pebble.NewCache(cfg.CacheSize)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       64 << 20,
		Logger:             logger{cfg.Logger},
		FS:                 cfg.fs,
	}
	// Bloom filters let a read of a stream that does not exist (every new
	// orchestration instance starts with one) skip the tables quickly.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pebble eventstore: open %s: %w", cfg.Dir, err)
	}
	last, err := readLastPosition(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	exists, err := loadFilter(db, 0)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("pebble eventstore: read stream states: %w", err)
	}
	s := &Store{
		cfg:      cfg,
		db:       db,
		limits:   cfg.Limits.WithDefaults(),
		clock:    cfg.Clock,
		log:      cfg.Logger,
		requests: make(chan *request, maxBatch),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		changed:  make(chan struct{}),
	}
	s.current = s.newView(last)
	go newCommitter(s, db, last, exists).run()
	return s, nil
}

func readLastPosition(db *pebble.DB) (uint64, error) {
	v, closer, err := db.Get(keyLastPosition)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pebble eventstore: read last position: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("pebble eventstore: last position: %w", errCorrupt)
	}
	return valuePosition(v), nil
}

func (s *Store) newView(position uint64) *view {
	v := &view{store: s, snap: s.db.NewSnapshot(), position: position}
	v.refs.Store(1)
	s.views.Add(1)
	return v
}

// publish makes a durable commit visible to readers and wakes subscribers.
func (s *Store) publish(position uint64) {
	v := s.newView(position)
	s.mu.Lock()
	old := s.current
	s.current = v
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	old.release()
}

// acquire returns the current view; the caller must call release.
func (s *Store) acquire() (*view, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, eventstore.ErrClosed
	}
	s.current.refs.Add(1)
	return s.current, nil
}

func (v *view) release() {
	if v.refs.Add(-1) == 0 {
		v.snap.Close()
		v.store.views.Done()
	}
}

func (s *Store) changes() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// Close stops the committer (appends queued behind it fail with ErrClosed),
// waits for reads in progress to release their views, and closes Pebble.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	<-s.stopped

	s.mu.Lock()
	old := s.current
	s.current = nil
	close(s.changed)
	s.mu.Unlock()
	old.release()
	s.views.Wait()
	return s.db.Close()
}

// submit hands a request to the committer and waits for its outcome. If ctx
// ends while the request waits in the queue, the request is withdrawn: it
// never runs, its events are not read again, and submit returns ctx.Err().
// Once the committer has taken it, submit waits for its outcome, which takes
// at most the one commit that writes it.
func (s *Store) submit(ctx context.Context, r *request) (eventstore.AppendResult, error) {
	r.done = make(chan reply, 1)
	select {
	case s.requests <- r:
	case <-s.stop:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	}
	select {
	case rep := <-r.done:
		return rep.result, rep.err
	case <-s.stopped:
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, withdrawn) {
			return eventstore.AppendResult{}, ctx.Err()
		}
		// The committer took the request first; it replies once the commit
		// that writes it is done.
		rep := <-r.done
		return rep.result, rep.err
	}
	// The committer replies before it stops, so a reply is here now or the
	// request was never taken.
	select {
	case rep := <-r.done:
		return rep.result, rep.err
	default:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
}

// logger routes Pebble's messages to slog: its informational chatter at
// debug level, so the store is quiet by default.
type logger struct{ l *slog.Logger }

func (l logger) Infof(format string, args ...any) {
	l.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l logger) Errorf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.l.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}
