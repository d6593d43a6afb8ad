package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/orchestration"
)

// Query selects instances for List. Every filter left at its zero value
// keeps all.
type Query struct {
	// RuntimeStatus keeps the instances in one of these statuses.
	RuntimeStatus []orchestration.Status
	// CreatedFrom and CreatedTo keep those created in [CreatedFrom,
	// CreatedTo).
	CreatedFrom, CreatedTo time.Time
	// Name keeps the instances of one orchestrator (case-insensitive).
	Name string
	// InstanceIDPrefix keeps those whose ID starts with it.
	InstanceIDPrefix string
	// CustomStatus keeps those whose custom status, as encoded (JSON by
	// default), contains it. Custom statuses over 512 bytes are not
	// searched.
	CustomStatus string
	// PageSize bounds the page: 100 when zero, at most MaxPageSize.
	PageSize int
	// ContinuationToken continues a previous page: its ContinuationToken.
	ContinuationToken string
	// FetchInputs fills in the inputs (outputs and custom statuses are
	// always there, as in Durable Functions' list).
	FetchInputs bool
}

// MaxPageSize is the largest page List returns.
const MaxPageSize = 1000

// InstancePage is a page of instances and the token of the next one, empty
// on the last page.
type InstancePage struct {
	Instances         []*Status
	ContinuationToken string
}

// ErrBadQuery is matched by the errors List and PurgeMany return for a
// query they cannot run: a bad continuation token, a bad filter.
var ErrBadQuery = errors.New("durable: bad query")

// List returns a page of the instances q selects, in order of creation (by
// ID when q selects by ID prefix alone), from the index: no instance is
// activated, and a page costs what it returns, not a scan of every
// instance. Continuation tokens stay valid while instances are written.
func (c *Client) List(ctx context.Context, q Query) (*InstancePage, error) {
	if q.PageSize < 0 || q.PageSize > MaxPageSize {
		return nil, fmt.Errorf("%w: page size %d is not in 1..%d", ErrBadQuery, q.PageSize, MaxPageSize)
	}
	if !q.CreatedTo.IsZero() && q.CreatedTo.Before(q.CreatedFrom) {
		return nil, fmt.Errorf("%w: the created-time range ends (%s) before it starts (%s)", ErrBadQuery,
			q.CreatedTo.Format(time.RFC3339), q.CreatedFrom.Format(time.RFC3339))
	}
	for _, s := range q.RuntimeStatus {
		if _, ok := orchestration.ParseStatus(s.String()); !ok {
			return nil, fmt.Errorf("%w: %s is not a runtime status", ErrBadQuery, s)
		}
	}
	if err := c.caughtUp(ctx); err != nil {
		return nil, err
	}
	p, err := c.e.index.List(index.Query{
		Statuses: q.RuntimeStatus, CreatedFrom: q.CreatedFrom, CreatedTo: q.CreatedTo, Name: q.Name,
		IDPrefix: q.InstanceIDPrefix, CustomStatus: q.CustomStatus, Limit: q.PageSize, Token: q.ContinuationToken,
	})
	if errors.Is(err, index.ErrBadToken) {
		return nil, fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	if err != nil {
		return nil, err
	}
	page := &InstancePage{Instances: make([]*Status, 0, len(p.Instances)), ContinuationToken: p.Next}
	for i := range p.Instances {
		st, err := c.status(ctx, &p.Instances[i], q.FetchInputs)
		if err != nil {
			return nil, err
		}
		page.Instances = append(page.Instances, st)
	}
	return page, nil
}

// Purge deletes an instance that has completed, failed or been terminated:
// its history and its index entry. Purging a running instance is
// ErrInstanceRunning (terminate it first), an unknown (or already purged)
// one ErrInstanceNotFound. The instance's grain records the purge before
// it truncates the stream, so a crash between the two leaves an instance
// that reads as purged, and whose stream the next load truncates.
func (c *Client) Purge(ctx context.Context, id string) error {
	if err := ValidateInstanceID(id); err != nil {
		return err
	}
	_, err := c.call(ctx, id, &grainpb.Purge{})
	return err
}

// PurgeFilter selects the instances PurgeMany purges.
type PurgeFilter struct {
	// CreatedFrom and CreatedTo keep those created in [CreatedFrom,
	// CreatedTo); CreatedTo zero: up to now.
	CreatedFrom, CreatedTo time.Time
	// RuntimeStatus keeps those in these statuses, which must be terminal;
	// Completed, Failed and Terminated when empty.
	RuntimeStatus []orchestration.Status
}

// PurgeMany purges the ended instances f selects and returns how many it
// purged. It is idempotent: an instance purged meanwhile (or by a run
// that a crash stopped halfway) is not counted, and a second run purges
// what the first left.
func (c *Client) PurgeMany(ctx context.Context, f PurgeFilter) (int, error) {
	statuses := f.RuntimeStatus
	if len(statuses) == 0 {
		statuses = []orchestration.Status{orchestration.StatusCompleted, orchestration.StatusFailed, orchestration.StatusTerminated}
	}
	for _, s := range statuses {
		if !s.IsTerminal() {
			return 0, fmt.Errorf("%w: only ended instances can be purged, and %s is not an end", ErrBadQuery, s)
		}
	}
	if !f.CreatedTo.IsZero() && f.CreatedTo.Before(f.CreatedFrom) {
		return 0, fmt.Errorf("%w: the created-time range ends before it starts", ErrBadQuery)
	}
	q := Query{RuntimeStatus: statuses, CreatedFrom: f.CreatedFrom, CreatedTo: f.CreatedTo, PageSize: MaxPageSize}
	if q.CreatedTo.IsZero() {
		q.CreatedTo = c.e.cfg.Clock()
	}
	purged := 0
	for {
		page, err := c.List(ctx, q)
		if err != nil {
			return purged, err
		}
		n, err := c.purgeAll(ctx, page.Instances)
		purged += n
		if err != nil || page.ContinuationToken == "" {
			return purged, err
		}
		q.ContinuationToken = page.ContinuationToken
	}
}

// purgeAll purges instances, a few at a time, and counts those it purged.
func (c *Client) purgeAll(ctx context.Context, instances []*Status) (int, error) {
	var (
		mu     sync.Mutex
		purged int
		first  error
		wg     sync.WaitGroup
		next   = make(chan string)
	)
	for range min(16, len(instances)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				err := c.Purge(ctx, id)
				mu.Lock()
				switch {
				case err == nil:
					purged++
				case errors.Is(err, ErrInstanceNotFound), errors.Is(err, ErrInstanceRunning):
					// Purged meanwhile, or started again: not ours to purge.
				case first == nil:
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, st := range instances {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		next <- st.InstanceID
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return purged, first
}

// RestartOptions configures Restart.
type RestartOptions struct {
	// NewInstanceID starts the orchestration under a new, random ID; by
	// default it starts over under the same ID, which must have ended.
	NewInstanceID bool
}

// Restart starts an instance's orchestration again with the same input and
// version, under the same ID (the instance must have ended:
// ErrInstanceExists otherwise) or a new one, and returns the ID.
//
// Durable Functions also has Rewind, which replays a failed instance as
// if its failed activities had not failed. durable leaves it out: it
// would have to remove recorded outcomes from an append-only history, and
// the instance's code may have acted on them. Restart starts over instead.
func (c *Client) Restart(ctx context.Context, id string, opts RestartOptions) (string, error) {
	in, err := c.instance(ctx, id)
	if err != nil {
		return "", err
	}
	st, err := c.status(ctx, &in, true)
	if err != nil {
		return "", err
	}
	newID := id
	if opts.NewInstanceID {
		newID = strings.ReplaceAll(uuid.NewString(), "-", "")
	} else if !in.Status.IsTerminal() {
		return "", fmt.Errorf("%w: %q is %s; restart it under a new ID or terminate it first", ErrInstanceExists, id, in.Status)
	}
	return c.start(ctx, st.Name, st.Input, WithInstanceID(newID), WithVersion(st.Version))
}
