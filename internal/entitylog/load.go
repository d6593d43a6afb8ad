package entitylog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
)

// StreamPrefix is the category of entity streams.
const StreamPrefix = "entity-"

// BatchType is the stored event type of a Batch record.
const BatchType = "durable.EntityBatch"

// StreamName returns the stream of an entity.
func StreamName(id entities.ID) string { return StreamPrefix + id.String() }

// Limits of what an entity remembers of the requests it recorded.
const (
	// RecentRequests is how many request IDs an entity recognises as
	// repeated: those of its latest RecentRequests requests.
	RecentRequests = 10_000
	// RecentResults is how many call results it keeps, to answer a
	// repeated call the same.
	RecentResults = 1_000
)

// Fingerprint is what a checkpoint keeps of a request ID: 64 bits of its
// FNV-1a hash, stable across processes.
func Fingerprint(requestID string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211 // FNV-1a, 64 bits
	h := uint64(offset)
	for i := 0; i < len(requestID); i++ {
		h ^= uint64(requestID[i])
		h *= prime
	}
	return h
}

// Window remembers an entity's recent requests, to recognise repeated ones,
// and the results of recent calls, to answer a repeated call the same.
type Window struct {
	ring    []uint64 // fingerprints, oldest first
	seen    map[uint64]int
	results map[string]*Ran
	order   []string
}

// NewWindow returns an empty window.
func NewWindow() *Window {
	return &Window{seen: make(map[uint64]int), results: make(map[string]*Ran)}
}

// Seen reports whether a request ID is among the recent ones.
func (w *Window) Seen(requestID string) bool { return w.seen[Fingerprint(requestID)] > 0 }

// Add remembers a request ID, forgetting the oldest past RecentRequests.
func (w *Window) Add(requestID string) { w.addFingerprint(Fingerprint(requestID)) }

func (w *Window) addFingerprint(f uint64) {
	w.ring = append(w.ring, f)
	w.seen[f]++
	if len(w.ring) > RecentRequests {
		old := w.ring[0]
		w.ring = w.ring[1:]
		if w.seen[old]--; w.seen[old] == 0 {
			delete(w.seen, old)
		}
	}
}

// Keep remembers the outcome of a call.
func (w *Window) Keep(r *Ran) {
	if _, ok := w.results[r.RequestId]; !ok {
		w.order = append(w.order, r.RequestId)
	}
	w.results[r.RequestId] = r
	if len(w.order) > RecentResults {
		delete(w.results, w.order[0])
		w.order = w.order[1:]
	}
}

// Result returns the kept outcome of a call.
func (w *Window) Result(requestID string) (*Ran, bool) {
	r, ok := w.results[requestID]
	return r, ok
}

// Fingerprints returns the recent requests' fingerprints, oldest first,
// for a checkpoint.
func (w *Window) Fingerprints() []uint64 { return slices.Clone(w.ring) }

// Stored is one Batch record read back, with where it is.
type Stored struct {
	Batch    *Batch
	Revision uint64
	Position uint64
	// FirstRevision is the revision of the append's first stored event (its
	// first domain event, or the batch itself).
	FirstRevision uint64
}

// Loaded is an entity as its stream holds it.
type Loaded struct {
	Entity *entities.Entity
	Window *Window
	Queue  []*Queued
	Lock   *Lock
	// Revision and Position are the stream's last (NoRevision: no stream).
	Revision int64
	Position uint64
	// Batches are the Batch records read, oldest first: those after the
	// last checkpoint, and the checkpoint's own.
	Batches []Stored
	// SinceCheckpoint counts the batches after the last checkpoint, and
	// EventsSinceSnapshot the domain events after it.
	SinceCheckpoint     int
	EventsSinceSnapshot int
}

// Load reads an entity back from its stream: back to its last checkpoint,
// and for an event-sourced kind whose snapshot is of another version, all
// its domain events. A stream that does not exist is an entity without
// state.
func Load(ctx context.Context, store eventstore.Store, id entities.ID, kind *entities.Kind, conv entities.Converter, maxState int) (*Loaded, error) {
	l := &Loaded{Entity: kind.New(id, conv, maxState), Window: NewWindow(), Revision: eventstore.NoRevision}
	stream := StreamName(id)
	// Newest first, back to the checkpoint.
	var records []eventstore.RecordedEvent
	var checkpoint *Checkpoint
	removed := false
	for rec, err := range store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.StreamEnd}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return l, nil
		}
		if err != nil {
			return nil, err
		}
		if l.Revision == eventstore.NoRevision {
			l.Revision, l.Position = int64(rec.Revision), rec.Position
		}
		records = append(records, rec)
		if rec.Type == BatchType {
			var b Batch
			if err := proto.Unmarshal(rec.Data, &b); err != nil {
				return nil, fmt.Errorf("%w: %s@%d: %v", ErrCorrupt, stream, rec.Revision, err)
			}
			if b.Removed {
				// The entity was removed here: what came before is gone,
				// and a crash may have kept it from being truncated.
				records = records[:len(records)-1]
				removed = true
				break
			}
			if b.Checkpoint != nil {
				checkpoint = b.Checkpoint
				break
			}
		}
	}
	slices.Reverse(records)
	var events []entities.Event
	first := uint64(0)
	if len(records) > 0 {
		first = records[0].Revision
	}
	for _, rec := range records {
		if rec.Type != BatchType {
			events = append(events, entities.NewEvent(rec.Type, rec.Data, conv))
			continue
		}
		var b Batch
		if err := proto.Unmarshal(rec.Data, &b); err != nil {
			return nil, fmt.Errorf("%w: %s@%d: %v", ErrCorrupt, stream, rec.Revision, err)
		}
		l.Batches = append(l.Batches, Stored{Batch: &b, Revision: rec.Revision, Position: rec.Position, FirstRevision: first})
		first = rec.Revision + 1
	}
	if len(l.Batches) == 0 && removed && len(records) == 0 {
		return l, nil // removed, nothing since
	}
	if len(l.Batches) == 0 {
		return nil, fmt.Errorf("%w: %s holds no batch record", ErrCorrupt, stream)
	}
	// What the checkpoint holds, then what each batch after it changed.
	start := 0
	if checkpoint != nil {
		for _, f := range checkpoint.Recent {
			l.Window.addFingerprint(f)
		}
		l.Queue = checkpoint.Queue
		// The checkpoint holds its own batch's requests and queue, and its
		// snapshot the events of its append; the batch still holds the
		// results of its calls.
		start = 1
		l.keepResults(l.Batches[0].Batch)
		events = eventsAfter(records, l.Batches[0].Revision, conv)
	}
	for _, s := range l.Batches[start:] {
		l.applyBatch(s.Batch)
	}
	l.SinceCheckpoint = len(l.Batches) - start
	last := l.Batches[len(l.Batches)-1].Batch
	if last.Lock != nil && last.Lock.Id != "" {
		l.Lock = last.Lock
	}
	if err := l.restore(ctx, store, stream, kind, conv, checkpoint, last, events); err != nil {
		if ctx.Err() == nil && !errors.Is(err, eventstore.ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
		return nil, err
	}
	return l, nil
}

// applyBatch folds what a batch changed into the window, the results and
// the queue: the batch's queued requests joined its back, then it took
// Dequeued from its front.
func (l *Loaded) applyBatch(b *Batch) {
	for _, r := range b.Ran {
		l.Window.Add(r.RequestId)
	}
	l.keepResults(b)
	for _, id := range b.Requests {
		l.Window.Add(id)
	}
	for _, q := range b.Queued {
		l.Window.Add(QueuedID(q))
	}
	l.Queue = append(l.Queue, b.Queued...)
	l.Queue = l.Queue[min(int(b.Dequeued), len(l.Queue)):]
}

func (l *Loaded) keepResults(b *Batch) {
	for _, r := range b.Ran {
		if r.Call {
			l.Window.Keep(r)
		}
	}
}

// restore brings the entity's state back: a function-style kind's from its
// last batch, an event-sourced kind's from the checkpoint's snapshot and
// the events after it, or from all its events when there is no usable
// snapshot.
func (l *Loaded) restore(ctx context.Context, store eventstore.Store, stream string, kind *entities.Kind, conv entities.Converter,
	checkpoint *Checkpoint, last *Batch, events []entities.Event) error {
	if !kind.EventSourced() {
		return l.Entity.Restore(last.State, last.HasState)
	}
	if checkpoint != nil && checkpoint.HasSnapshot && int(checkpoint.Version) == kind.Version() {
		if err := l.Entity.Restore(checkpoint.Snapshot, true); err != nil {
			return err
		}
	} else if checkpoint != nil && (checkpoint.HasSnapshot || int(checkpoint.Version) != kind.Version()) {
		// A snapshot of another version of the state: rebuild from every
		// event of the stream.
		var err error
		if events, err = allEvents(ctx, store, stream, conv); err != nil {
			return err
		}
	}
	l.EventsSinceSnapshot = len(events)
	return l.Entity.Replay(events)
}

func eventsAfter(records []eventstore.RecordedEvent, revision uint64, conv entities.Converter) []entities.Event {
	var out []entities.Event
	for _, rec := range records {
		if rec.Revision > revision && rec.Type != BatchType {
			out = append(out, entities.NewEvent(rec.Type, rec.Data, conv))
		}
	}
	return out
}

// allEvents reads every domain event of a stream.
func allEvents(ctx context.Context, store eventstore.Store, stream string, conv entities.Converter) ([]entities.Event, error) {
	var out []entities.Event
	for rec, err := range store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
		if err != nil {
			return nil, err
		}
		if rec.Type != BatchType {
			out = append(out, entities.NewEvent(rec.Type, rec.Data, conv))
		}
	}
	return out, nil
}

// QueuedID is the request ID of a queued request.
func QueuedID(q *Queued) string {
	if q.Operation != nil {
		return q.Operation.RequestId
	}
	return LockRequestID(q.Lock.Lock, q.Lock.Index)
}

// LockRequestID is the request ID of a lock request at one entity.
func LockRequestID(lock string, index int32) string { return fmt.Sprintf("lock:%s:%d", lock, index) }

var (
	// ErrCorrupt is matched by errors of records that cannot be decoded.
	ErrCorrupt = errors.New("entitylog: corrupt record")
	// ErrUnreadable is matched by the error of an entity whose stored state
	// or events its kind cannot read back (their shape changed without an
	// upgrade path, say).
	ErrUnreadable = errors.New("entitylog: the entity's state cannot be read back")
)

// BatchData returns a Batch record to append, with the given ID.
func BatchData(b *Batch, id uuid.UUID) (eventstore.EventData, error) {
	data, err := proto.Marshal(b)
	if err != nil {
		return eventstore.EventData{}, err
	}
	return eventstore.EventData{ID: id, Type: BatchType, ContentType: eventstore.ContentTypeBinary, Data: data}, nil
}
