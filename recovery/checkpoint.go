package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// CheckpointStream is the default stream that holds the acted-on checkpoint.
// It keeps one event: each new checkpoint truncates the ones before.
const CheckpointStream = "durable-checkpoint"

// CheckpointType is the event type of a checkpoint.
const CheckpointType = "ActedCheckpoint"

// checkpointData is a checkpoint event's JSON: every decision recorded at or
// before Position has been acted on.
type checkpointData struct {
	Position uint64 `json:"position"`
}

// checkpoints reads and writes the acted-on checkpoint in the event store.
type checkpoints struct {
	store  eventstore.Store
	stream string
	// own is the global position of the last checkpoint event written: a
	// checkpoint that finds nothing newer in the log than it is not written
	// again.
	own uint64
}

// read returns the last checkpoint, 0 if none was written.
func (c *checkpoints) read(ctx context.Context) (uint64, error) {
	for rec, err := range c.store.ReadStream(ctx, c.stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.StreamEnd, Limit: 1}) {
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("recovery: read checkpoint: %w", err)
		}
		var d checkpointData
		if err := json.Unmarshal(rec.Data, &d); err != nil {
			return 0, fmt.Errorf("recovery: checkpoint %s@%d: %w", c.stream, rec.Revision, err)
		}
		c.own = rec.Position
		return d.Position, nil
	}
	return 0, nil
}

// write stores a checkpoint at position, unless the log holds nothing after
// the last checkpoint event, and drops the checkpoints before it.
func (c *checkpoints) write(ctx context.Context, position uint64) error {
	if position <= c.own {
		return nil
	}
	data, _ := json.Marshal(checkpointData{Position: position})
	res, err := c.store.Append(ctx, c.stream, eventstore.Any, eventstore.EventData{
		ID: uuid.New(), Type: CheckpointType, ContentType: eventstore.ContentTypeJSON, Data: data,
	})
	if err != nil {
		return fmt.Errorf("recovery: write checkpoint: %w", err)
	}
	c.own = res.Position
	if res.Revision > 0 {
		if err := c.store.TruncateBefore(ctx, c.stream, res.Revision); err != nil {
			return fmt.Errorf("recovery: drop old checkpoints: %w", err)
		}
	}
	return nil
}
