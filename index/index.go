// Package index is the instance index: a projection of the event store's
// global log that knows, for every orchestration instance, its name, status,
// times, pending work and the durable reason it will run again, and for
// every entity its lock and whether it has state, without activating a
// grain.
//
// It lives in its own Pebble database (Config.Dir), a checkpointed
// projection: every batch of applied records is written together with the
// global position it reaches, so opening an index reads only what the log
// holds after that position, and a crash never leaves it between two
// states. It is derived data: the database is not synced on every write (a
// crash may lose its last writes, and they are applied again from the log),
// and Rebuild makes it again from the whole log. In cluster mode every node
// keeps its own, rebuilt from the shared log.
//
// Records are kept on disk with secondary orderings (creation time, status,
// name, due time; see keys.go), so a page of a list, the overdue instances
// or the ones with work in flight cost what they return, not a scan of
// every instance; memory holds only recently applied records.
//
// Status queries read it (and fetch payloads from the instance's stream on
// demand, so the index itself stays small). Recovery asks it which instances
// have work in flight and which are due: every running instance has a wake
// reason (see Instance.Due and Instance.Stranded). A record that cannot be
// decoded does not stop the index: its instance is shown Failed with the
// decoding error, and every other instance goes on.
package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/internal/indexpb"
	"github.com/durableactor/durable/orchestration"
)

// Config configures an Index.
type Config struct {
	Store eventstore.Store
	// Dir holds the index's database; empty keeps it in memory, rebuilt
	// from the whole log at every Open.
	Dir string
	// Logger receives what the index logs; slog.Default() when nil.
	Logger *slog.Logger
	// CacheRecords bounds the records kept in memory between commits;
	// 16,384 when zero.
	CacheRecords int
}

// Index is the projection. It is safe for concurrent use.
type Index struct {
	cfg   Config
	store eventstore.Store
	log   *slog.Logger

	// dbMu guards db: readers hold it while they read, Close takes it to
	// close the database.
	dbMu sync.RWMutex
	db   *pebble.DB

	mu sync.RWMutex
	// cache holds recently applied records, those not yet written among
	// them (a nil record: deleted); it is cleared after a flush once it
	// holds more than CacheRecords.
	cache    map[string]*Instance
	entities map[string]*Entity
	// dirty and dirtyEntities are the records applied since the last
	// flush, each with its value as the database holds it (nil: none);
	// flush writes each once, however often it changed meanwhile. Only
	// the goroutine that applies records touches them.
	dirty         map[string]*Instance
	dirtyEntities map[string]*Entity
	// applied is the global position applied (to the cache: what Get and
	// WaitFor see); flushed the one the database holds.
	applied, flushed uint64
	// flushes asks the applying goroutine to flush now, for a query that
	// reads the database; it closes the channel it receives when done.
	flushes chan chan struct{}
	changed chan struct{}
	// watched is set when someone holds changed; advance replaces the
	// channel only then, not for every batch.
	watched bool
	err     error
	// ended holds channels closed when an instance ends, for Wait.
	ended map[string]chan struct{}
	// scratch is the decoding buffer of apply (one goroutine applies).
	scratch []orchestration.HistoryEvent

	cancel context.CancelFunc
	done   chan struct{}
	// stopped is closed when the index stops following the store, on an
	// error or at Close.
	stopped chan struct{}
}

// ErrStopped is matched by the error WaitFor returns when the index stopped
// following the store.
var ErrStopped = errors.New("index: stopped")

// Open opens the index, applies what the log holds after its checkpoint,
// and keeps it current until Close.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheRecords <= 0 {
		cfg.CacheRecords = 16384
	}
	x := &Index{
		cfg:           cfg,
		store:         cfg.Store,
		log:           cfg.Logger,
		cache:         make(map[string]*Instance),
		entities:      make(map[string]*Entity),
		dirty:         make(map[string]*Instance),
		dirtyEntities: make(map[string]*Entity),
		flushes:       make(chan chan struct{}),
		changed:       make(chan struct{}),
		ended:         make(map[string]chan struct{}),
		done:          make(chan struct{}),
		stopped:       make(chan struct{}),
	}
	var err error
	if x.db, err = openDB(cfg); err != nil {
		return nil, err
	}
	var current bool
	if x.applied, current, err = readApplied(x.db); err != nil {
		x.db.Close()
		return nil, err
	}
	if !current {
		// New, or made by another version: start from nothing.
		if err := x.clear(); err != nil {
			x.db.Close()
			return nil, err
		}
	}
	if x.applied > 0 {
		end, err := eventstore.LastPosition(ctx, cfg.Store)
		if err != nil {
			x.db.Close()
			return nil, fmt.Errorf("index: read the end of the log: %w", err)
		}
		if end < x.applied {
			// The index was made from another store (or one that lost
			// its end): nothing in it can be trusted.
			x.log.Warn("the instance index is ahead of the event store's log; rebuilding it", "applied", x.applied, "end", end)
			if err := x.clear(); err != nil {
				x.db.Close()
				return nil, err
			}
		}
	}
	if err := x.catchUp(ctx); err != nil {
		x.db.Close()
		return nil, err
	}
	follow, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	go x.follow(follow)
	return x, nil
}

func openDB(cfg Config) (*pebble.DB, error) {
	cache := pebble.NewCache(32 << 20)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       16 << 20,
		Logger:             pebbleLogger{cfg.Logger},
	}
	// Bloom filters let the read of a record that does not exist skip
	// the tables quickly.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	dir := cfg.Dir
	if dir == "" {
		opts.FS, dir = vfs.NewMem(), "index"
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	return db, nil
}

// formatVersion is the layout of the index's keys and records, stored with
// its checkpoint; an index of another layout is rebuilt.
const formatVersion = 1

// readApplied reads the checkpoint: the global position applied, and
// whether the database holds an index of this layout (false for a new
// database, or one another version made).
func readApplied(db *pebble.DB) (uint64, bool, error) {
	v, closer, err := db.Get(keyApplied)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("index: read its checkpoint: %w", err)
	}
	defer closer.Close()
	if len(v) != 9 || v[0] != formatVersion {
		return 0, false, nil
	}
	return binary.BigEndian.Uint64(v[1:]), true, nil
}

// Rebuild drops the index in cfg.Dir and makes it again from the whole
// log, logging its progress every few seconds. The engine that uses the
// directory must be stopped.
func Rebuild(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db, err := openDB(cfg)
	if err != nil {
		return err
	}
	x := &Index{cfg: cfg, store: cfg.Store, log: cfg.Logger, db: db, cache: make(map[string]*Instance),
		entities: make(map[string]*Entity), dirty: make(map[string]*Instance), dirtyEntities: make(map[string]*Entity),
		changed: make(chan struct{}), ended: make(map[string]chan struct{})}
	if cfg.CacheRecords <= 0 {
		x.cfg.CacheRecords = 16384
	}
	defer db.Close()
	if err := x.clear(); err != nil {
		return err
	}
	x.log.Info("rebuilding the instance index from the event store's log")
	return x.catchUp(ctx)
}

// clear deletes everything the index holds.
func (x *Index) clear() error {
	if err := x.db.DeleteRange([]byte{0}, []byte{0xff}, pebble.Sync); err != nil {
		return fmt.Errorf("index: clear: %w", err)
	}
	x.applied, x.flushed = 0, 0
	clear(x.cache)
	clear(x.entities)
	clear(x.dirty)
	clear(x.dirtyEntities)
	return nil
}

// filter selects the records the index applies.
var filter = eventstore.Filter{StreamPrefixes: []string{history.StreamPrefix, entitylog.StreamPrefix}}

// catchUp applies what the log holds after the checkpoint, committing
// every few thousand records and logging its progress every few seconds.
func (x *Index) catchUp(ctx context.Context) error {
	from := eventstore.AllStart
	if x.applied > 0 {
		from = eventstore.FromPosition(x.applied + 1)
	}
	var dec history.Decoder
	total := 0
	began, reported := time.Now(), time.Now()
	for rec, err := range x.store.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Filter: filter}) {
		if err != nil {
			return fmt.Errorf("index: catch up: %w", err)
		}
		x.apply(&dec, &rec)
		x.advance(rec.Position)
		total++
		if total%4096 == 0 {
			if err := x.flush(); err != nil {
				return err
			}
			if time.Since(reported) > 3*time.Second {
				reported = time.Now()
				x.log.Info("the instance index is catching up on the log", "records", total, "position", rec.Position)
			}
		}
	}
	if err := x.flush(); err != nil {
		return err
	}
	if total > 0 {
		x.log.Info("the instance index caught up on the log", "records", total, "took", time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// flushInterval is how long applied records may wait to be written: the
// records of an instance that changes several times meanwhile (an
// orchestration's episodes) are written once. Reads of single records
// come from memory; queries that read the database flush first.
const flushInterval = 50 * time.Millisecond

// follow applies new records until Close, writing them every
// flushInterval, when many are waiting, or when a query asks. A
// subscription that ends with an error (the store is unreachable) is made
// again from the last applied position, with backoff, until it holds;
// only a closed store stops the index.
func (x *Index) follow(ctx context.Context) {
	defer close(x.done)
	defer close(x.stopped)
	retry := backoff.NewExponentialBackOff()
	retry.InitialInterval, retry.MaxInterval = 50*time.Millisecond, 5*time.Second
	for {
		err := x.followOnce(ctx, retry)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, eventstore.ErrClosed):
			x.fail(fmt.Errorf("index: subscription ended: %w", err))
			return
		}
		wait := retry.NextBackOff()
		x.log.Warn("the instance index lost its subscription to the event store; subscribing again", "in", wait.Round(time.Millisecond), "error", err)
		timer := time.NewTimer(wait)
	waiting:
		for {
			select {
			case <-timer.C:
				break waiting
			case done := <-x.flushes:
				x.flushFor(done)
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
	}
}

// flushFor flushes for a query and tells it.
func (x *Index) flushFor(done chan struct{}) {
	if err := x.flush(); err != nil {
		x.log.Warn("writing the instance index failed; its queries may miss the newest records", "error", err)
	}
	close(done)
}

// followOnce subscribes from the applied position and applies records
// until the subscription ends.
func (x *Index) followOnce(ctx context.Context, retry *backoff.ExponentialBackOff) error {
	type item struct {
		rec eventstore.RecordedEvent
		err error
	}
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	x.mu.RLock()
	from := eventstore.FromPosition(x.applied)
	x.mu.RUnlock()
	records := make(chan item, 1024)
	go func() {
		defer close(records)
		for rec, err := range x.store.SubscribeToAll(sub, eventstore.SubscribeAllOptions{From: from, Filter: filter}) {
			select {
			case records <- item{rec, err}:
			case <-sub.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	ticker := time.NewTicker(flushInterval)
	defer ticker.Stop()
	flushAt := max(1, x.cfg.CacheRecords/2)
	var dec history.Decoder
	for {
		select {
		case it, ok := <-records:
			if !ok {
				return ctx.Err()
			}
			if it.err != nil {
				return it.err
			}
			x.apply(&dec, &it.rec)
			x.advance(it.rec.Position)
			retry.Reset()
			if len(x.dirty)+len(x.dirtyEntities) >= flushAt {
				if err := x.flush(); err != nil {
					return err
				}
			}
		case <-ticker.C:
			if err := x.flush(); err != nil {
				return err
			}
		case done := <-x.flushes:
			x.flushFor(done)
		}
	}
}

func (x *Index) fail(err error) {
	x.log.Error("instance index stopped", "error", err)
	x.mu.Lock()
	x.err = err
	close(x.changed)
	x.changed = make(chan struct{})
	x.watched = false
	x.mu.Unlock()
}

// advance makes position the applied one and tells those waiting for it.
func (x *Index) advance(position uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.applied = position
	if x.watched {
		close(x.changed)
		x.changed = make(chan struct{})
		x.watched = false
	}
}

// flush writes the records applied since the last flush, each once, from
// what the database holds to what the cache holds now, with the position
// they reach, in one batch: a crash leaves the database at one flush or
// the next, never between.
func (x *Index) flush() error {
	x.mu.RLock()
	applied := x.applied
	x.mu.RUnlock()
	if applied == x.flushed && len(x.dirty) == 0 && len(x.dirtyEntities) == 0 {
		return nil
	}
	b := x.db.NewBatch()
	defer b.Close()
	for id, committed := range x.dirty {
		x.write(b, committed, x.cache[id])
	}
	for id, committed := range x.dirtyEntities {
		x.writeEntity(b, committed, x.entities[id])
	}
	if err := b.Set(keyApplied, binary.BigEndian.AppendUint64([]byte{formatVersion}, applied), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("index: write: %w", err)
	}
	clear(x.dirty)
	clear(x.dirtyEntities)
	x.flushed = applied
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.cache)+len(x.entities) > x.cfg.CacheRecords {
		clear(x.cache)
		clear(x.entities)
	}
	return nil
}

// sync asks the applying goroutine to flush and waits, for a query that
// reads the database: it then sees every record applied before it asked.
func (x *Index) sync() {
	if x.flushes == nil {
		return // Rebuild: everything is flushed
	}
	done := make(chan struct{})
	select {
	case x.flushes <- done:
		select {
		case <-done:
		case <-x.stopped:
		}
	case <-x.stopped:
	}
}

// apply folds one stored record into the cache, marking what it changed
// for the next flush.
func (x *Index) apply(dec *history.Decoder, rec *eventstore.RecordedEvent) {
	id, ok := strings.CutPrefix(rec.Stream, history.StreamPrefix)
	if !ok {
		x.applyEntity(rec)
		return
	}
	// A stream's first record is a new instance: no record to read (the
	// revisions of a purged stream go on, so this holds after a purge).
	var old *Instance
	if rec.Revision > 0 {
		old = x.get(id)
	}
	var in *Instance
	switch {
	case rec.Type == history.PurgedType:
		// The instance was purged: it is forgotten, also when the log
		// keeps the events of its deleted stream.
	default:
		events, err := dec.DecodeRecord(x.scratch[:0], rec)
		x.scratch = events
		if err != nil {
			x.log.Error("an instance's history cannot be decoded; it is shown as failed", "instance", id, "error", err)
			in = corrupt(clone(old), id, rec, err)
			break
		}
		in = clone(old)
		for i := range events {
			in = applyEvent(in, id, &events[i], rec)
			// An ExecutionStarted within an episode (after its
			// OrchestratorStarted) starts running now, and the episode
			// that runs its code follows; alone, it is a start scheduled
			// for later.
			if events[i].Kind == orchestration.ExecutionStarted && i > 0 && events[i-1].Kind == orchestration.OrchestratorStarted {
				in.Status, in.Runnable = orchestration.StatusRunning, true
			}
		}
		if in == nil {
			return // a record of a generation whose start was truncated
		}
	}
	if _, ok := x.dirty[id]; !ok {
		x.dirty[id] = old // as the database holds it
	}
	x.mu.Lock()
	x.cache[id] = in
	// A wait ends when the instance ends, or is purged.
	if in == nil || in.Status.IsTerminal() {
		if ch, ok := x.ended[id]; ok {
			close(ch)
			delete(x.ended, id)
		}
	}
	x.mu.Unlock()
}

func clone(in *Instance) *Instance {
	if in == nil {
		return nil
	}
	c := *in
	return &c
}

// write puts an instance's record and secondary keys in b, removing those
// of its previous record (in nil: the instance is gone).
func (x *Index) write(b *pebble.Batch, old, in *Instance) {
	if old == nil && in == nil {
		return
	}
	if secondaryChanged(old, in) {
		x.writeSecondary(b, old, in)
	}
	switch {
	case in != nil:
		data, _ := proto.Marshal(in.toRecord()) // index records always encode
		b.Set(instanceKey(in.ID), data, nil)
	case old != nil:
		b.Delete(instanceKey(old.ID), nil)
	}
}

// secondaryChanged reports whether two records of an instance have
// different secondary keys; most episodes change none.
func secondaryChanged(a, b *Instance) bool {
	if a == nil || b == nil {
		return true
	}
	at, adue := a.Due()
	bt, bdue := b.Due()
	return !a.Created.Equal(b.Created) || a.Status != b.Status || a.Name != b.Name || adue != bdue || !at.Equal(bt) ||
		a.InFlight() != b.InFlight() || a.Stranded() != b.Stranded()
}

// writeSecondary puts in b the secondary keys of in that old lacks, and
// deletes those of old that in lacks.
func (x *Index) writeSecondary(b *pebble.Batch, old, in *Instance) {
	oldKeys, newKeys := secondary(old), secondary(in)
	for _, k := range oldKeys {
		if !containsKey(newKeys, k) {
			b.Delete(k, nil)
		}
	}
	for _, k := range newKeys {
		if !containsKey(oldKeys, k) {
			b.Set(k, nil, nil)
		}
	}
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, c := range keys {
		if string(c) == string(k) {
			return true
		}
	}
	return false
}

// get returns an instance's record: from the cache, or from the database.
func (x *Index) get(id string) *Instance {
	x.mu.RLock()
	in, cached := x.cache[id]
	x.mu.RUnlock()
	if cached {
		return in
	}
	var r indexpb.Instance
	if !x.lookup(instanceKey(id), func(v []byte) error { return proto.Unmarshal(v, &r) }) {
		return nil
	}
	return instanceOf(&r)
}

// lookup reads the record at key from the database and decodes it; it
// reports false when there is none (a read error counts as none: the
// index is derived data), when it does not decode, or once the database
// is closed.
func (x *Index) lookup(key []byte, decode func(v []byte) error) bool {
	x.dbMu.RLock()
	defer x.dbMu.RUnlock()
	if x.db == nil {
		return false
	}
	v, closer, err := x.db.Get(key)
	if err != nil {
		return false
	}
	defer closer.Close()
	if err := decode(v); err != nil {
		x.log.Error("an index record cannot be decoded", "key", string(key), "error", err)
		return false
	}
	return true
}

// Get returns what the index knows of an instance.
func (x *Index) Get(id string) (Instance, bool) {
	in := x.get(id)
	if in == nil {
		return Instance{}, false
	}
	return *in, true
}

// Ended returns a channel that is closed once the instance has completed,
// failed or been terminated (at once if it has), or has been purged.
func (x *Index) Ended(id string) <-chan struct{} {
	x.mu.Lock()
	ch, ok := x.ended[id]
	if !ok {
		ch = make(chan struct{})
		x.ended[id] = ch
	}
	x.mu.Unlock()
	if in := x.get(id); in != nil && in.Status.IsTerminal() {
		x.mu.Lock()
		if c, ok := x.ended[id]; ok && c == ch {
			close(ch)
			delete(x.ended, id)
		}
		x.mu.Unlock()
	}
	return ch
}

// WaitFor returns once the index has applied the event at position, so a
// client reads its own writes, or ErrStopped once the index has stopped.
func (x *Index) WaitFor(ctx context.Context, position uint64) error {
	for {
		x.mu.Lock()
		applied, changed, err := x.applied, x.changed, x.err
		x.watched = x.watched || applied < position
		x.mu.Unlock()
		if applied >= position {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStopped, err)
		}
		select {
		case <-changed:
		case <-x.stopped:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stopped returns a channel that is closed when the index stops following
// the store: on an error (see Err) or at Close. Its entries are stale from
// then on.
func (x *Index) Stopped() <-chan struct{} { return x.stopped }

// Err returns the error that stopped the index, if one did.
func (x *Index) Err() error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.err
}

// Close stops following the store and closes the database.
func (x *Index) Close() {
	x.cancel()
	<-x.done
	x.dbMu.Lock()
	defer x.dbMu.Unlock()
	if x.db != nil {
		if err := x.flush(); err != nil {
			x.log.Warn("writing the instance index at close", "error", err)
		}
	}
	if x.db != nil {
		if err := x.db.Close(); err != nil {
			x.log.Warn("closing the instance index", "error", err)
		}
		x.db = nil
	}
}

// pebbleLogger routes Pebble's logging to slog, its chatter at Debug.
type pebbleLogger struct{ l *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.l.Debug(fmt.Sprintf(format, args...), "component", "index")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...), "component", "index")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.l.Error(msg, "component", "index")
	panic("index: " + msg)
}
