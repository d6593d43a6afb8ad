package history

import (
	"context"
	"errors"
	"slices"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/orchestration"
)

// StreamPrefix is the category of orchestration instance streams: the
// stream of an instance holds its history, one record per episode.
const StreamPrefix = "orchestration-"

// StreamName returns the stream of an instance.
func StreamName(instanceID string) string { return StreamPrefix + instanceID }

// PurgedType is the event-store type of the record a purge appends to an
// instance's stream before it truncates everything older: the instance is
// gone, and readers (the grain, the index) forget what came before it. The
// record stays, so every reader of the global log learns of the purge,
// also one that reads it later, and the next start of the same ID
// continues the stream's revisions.
const PurgedType = "Purged"

// ReadCurrent reads the history of an instance's current generation from
// its stream: a purge forgets what came before it, and a generation that
// ContinueAsNew ended may still be there until its truncation. Events
// without a timestamp get their record's. A stream that does not exist,
// or holds nothing since a purge, is no history and no error.
func ReadCurrent(ctx context.Context, store eventstore.Store, instanceID string) ([]orchestration.HistoryEvent, error) {
	var d Decoder
	var out []orchestration.HistoryEvent
	for rec, err := range store.ReadStream(ctx, StreamName(instanceID), eventstore.ReadStreamOptions{}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if rec.Type == PurgedType {
			out = out[:0]
			continue
		}
		first := len(out)
		if out, err = d.DecodeRecord(out, &rec); err != nil {
			return nil, err
		}
		if first > 0 && slices.ContainsFunc(out[first:], func(ev orchestration.HistoryEvent) bool { return ev.Kind == orchestration.ExecutionStarted }) {
			out = append(out[:0], out[first:]...)
			first = 0
		}
		for i := first; i < len(out); i++ {
			if out[i].Timestamp.IsZero() {
				out[i].Timestamp = rec.Created
			}
		}
	}
	return out, nil
}
