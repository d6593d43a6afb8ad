package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/history"
)

// WakeFunc wakes one instance: it returns once the instance's grain is
// active and has issued its work again, nil also when the instance refuses
// for good (it does not exist, say); an error means "try again later".
type WakeFunc func(ctx context.Context, id string) error

// Config configures Recovery.
type Config struct {
	Store eventstore.Store
	Index *index.Index
	Wake  WakeFunc
	// Logger receives what recovery does; quiet at Info and below in normal
	// running. slog.Default() when nil.
	Logger *slog.Logger
	// Clock gives the time against which due times are checked; time.Now
	// when nil.
	Clock func() time.Time
	// CheckpointStream holds the acted-on checkpoint; CheckpointStream when
	// empty.
	CheckpointStream string
	// Grace is how long past its due time an instance may wait for the
	// message bus before the sweep wakes it; 5 seconds when zero. The bus
	// fires a timer within about 250ms, so an instance the sweep wakes
	// really was missed.
	Grace time.Duration
	// SweepInterval is how often the sweep looks for overdue instances; 1
	// second when zero. Every StrandedEvery sweeps it also scans for
	// stranded ones (60 when zero).
	SweepInterval time.Duration
	StrandedEvery int
	// CheckpointInterval is how often the acted-on checkpoint is written
	// when it moved; 1 second when zero.
	CheckpointInterval time.Duration
	// Workers is how many wakes run at once; 16 when zero.
	Workers int
}

func (c *Config) withDefaults() error {
	switch {
	case c.Store == nil:
		return errors.New("recovery: Config.Store is nil")
	case c.Index == nil:
		return errors.New("recovery: Config.Index is nil")
	case c.Wake == nil:
		return errors.New("recovery: Config.Wake is nil")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.CheckpointStream == "" {
		c.CheckpointStream = CheckpointStream
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.StrandedEvery <= 0 {
		c.StrandedEvery = 60
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	return nil
}

// Recovery decides which instances must run and wakes them. Open it before
// grains activate (they ask it what a crash may have left unacted), Start it
// once the cluster runs, Stop it before the cluster stops.
type Recovery struct {
	cfg         Config
	log         *slog.Logger
	tracker     *tracker
	checkpoints checkpoints
	// window is the range of global positions (after, upTo] whose
	// decisions a crash may have left unacted: from the checkpoint read at
	// Open to the end of the log then.
	after, upTo uint64

	mu sync.Mutex
	// redone are the instances that have acted again on their records in
	// the window since Open.
	redone map[string]bool
	// queued are the instances waiting for a wake, with their backoff;
	// ready those to wake now, in order. woken is when the sweep last woke
	// an instance, so an instance the index shows overdue for a moment
	// longer is not woken twice; warned are the stranded instances already
	// reported.
	queued  map[string]*backoff.ExponentialBackOff
	ready   []string
	signal  chan struct{}
	woken   map[string]time.Time
	warned  map[string]bool
	running bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open reads the acted-on checkpoint and the end of the log: what lies
// between is what a crash may have left unacted.
func Open(ctx context.Context, cfg Config) (*Recovery, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	r := &Recovery{
		cfg:         cfg,
		log:         cfg.Logger,
		tracker:     newTracker(),
		checkpoints: checkpoints{store: cfg.Store, stream: cfg.CheckpointStream},
		redone:      make(map[string]bool),
		queued:      make(map[string]*backoff.ExponentialBackOff),
		signal:      make(chan struct{}, 1),
		woken:       make(map[string]time.Time),
		warned:      make(map[string]bool),
	}
	var err error
	if r.after, err = r.checkpoints.read(ctx); err != nil {
		return nil, err
	}
	if r.upTo, err = eventstore.LastPosition(ctx, cfg.Store); err != nil {
		return nil, fmt.Errorf("recovery: read the end of the log: %w", err)
	}
	if r.upTo <= r.checkpoints.own {
		r.upTo = r.after // nothing after the checkpoint but the checkpoint
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Begin registers an append and the acts that follow it; End, with the
// epoch Begin returned, marks them done. The checkpoint never passes an
// append whose acts have not ended.
func (r *Recovery) Begin() uint64 { return r.tracker.begin() }

// End marks the append and acts of an epoch done.
func (r *Recovery) End(epoch uint64) { r.tracker.end(epoch) }

// Busy reports whether appends or their acts are in flight.
func (r *Recovery) Busy() bool { return r.tracker.busy() }

// Unacted returns the range (after, upTo] of global positions whose
// decisions a crash may have left unacted, for an instance whose grain is
// loading: its records in that range must be acted on again. The range is
// empty once the instance has done so since Open (see Redone).
func (r *Recovery) Unacted(id string) (after, upTo uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.redone[id] || r.after >= r.upTo {
		return 0, 0
	}
	return r.after, r.upTo
}

// Redone records that an instance has acted again on its records in the
// range Unacted gave it.
func (r *Recovery) Redone(id string) {
	r.mu.Lock()
	r.redone[id] = true
	r.mu.Unlock()
}

// Start wakes the instances a crash may have left with nothing running
// their work: those with activities or sub-orchestrations in flight, those
// with records after the checkpoint, those overdue and those stranded. Then
// it keeps sweeping for overdue instances and writing checkpoints until
// Stop. Start does not wait for the wakes; a wake that fails is retried.
func (r *Recovery) Start() {
	ids := r.cfg.Index.InFlight()
	ids = append(ids, r.cfg.Index.Stranded()...)
	ids = append(ids, r.cfg.Index.Overdue(r.cfg.Clock(), 1<<30)...)
	ids = append(ids, r.windowStreams()...)
	if len(ids) > 0 {
		r.log.Info("waking instances that have work in flight, are due, or have records after the last checkpoint",
			"instances", len(ids), "checkpoint", r.after, "end", r.upTo)
	}
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	for _, id := range ids {
		r.Wake(id)
	}
	for range r.cfg.Workers {
		r.wg.Add(1)
		go r.worker()
	}
	r.wg.Add(2)
	go r.sweepLoop()
	go r.checkpointLoop()
}

// Wake puts an instance on the wake queue, unless it is on it already.
func (r *Recovery) Wake(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.queued[id]; ok || r.ctx.Err() != nil {
		return
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 100*time.Millisecond, 30*time.Second
	r.queued[id] = b
	r.ready = append(r.ready, id)
	r.notify()
}

func (r *Recovery) notify() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// next returns the next instance to wake, waiting for one.
func (r *Recovery) next() (string, bool) {
	for {
		r.mu.Lock()
		if len(r.ready) > 0 && r.running {
			id := r.ready[0]
			r.ready[0] = ""
			r.ready = r.ready[1:]
			if len(r.ready) > 0 {
				r.notify() // another worker may take the next
			}
			r.mu.Unlock()
			return id, true
		}
		r.mu.Unlock()
		select {
		case <-r.signal:
		case <-r.ctx.Done():
			return "", false
		}
	}
}

func (r *Recovery) worker() {
	defer r.wg.Done()
	for {
		id, ok := r.next()
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		err := r.cfg.Wake(ctx, id)
		cancel()
		r.mu.Lock()
		b := r.queued[id]
		if err == nil || r.ctx.Err() != nil {
			delete(r.queued, id)
			r.mu.Unlock()
			continue
		}
		wait := b.NextBackOff()
		r.mu.Unlock()
		r.log.Warn("waking an instance failed; trying again", "instance", id, "in", wait.Round(time.Millisecond), "error", err)
		time.AfterFunc(wait, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.ctx.Err() == nil {
				r.ready = append(r.ready, id)
				r.notify()
			}
		})
	}
}

// sweepLoop wakes overdue instances every SweepInterval and reports
// stranded ones every StrandedEvery sweeps.
func (r *Recovery) sweepLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.Sweep()
		if n%r.cfg.StrandedEvery == 0 {
			r.wakeStranded()
		}
	}
}

// Sweep wakes the instances that are overdue by more than Config.Grace:
// the bus missed their timer or scheduled start, or a crash cut their
// ContinueAsNew short. An instance is woken at most once per Grace.
func (r *Recovery) Sweep() {
	now := r.cfg.Clock()
	overdue := r.cfg.Index.Overdue(now.Add(-r.cfg.Grace), 10_000)
	r.mu.Lock()
	for id, at := range r.woken {
		if now.Sub(at) > r.cfg.Grace {
			delete(r.woken, id)
		}
	}
	var wake []string
	for _, id := range overdue {
		if _, recent := r.woken[id]; !recent {
			r.woken[id] = now
			wake = append(wake, id)
		}
	}
	r.mu.Unlock()
	if len(wake) > 0 {
		r.log.Warn("waking overdue instances the message bus has not delivered to", "instances", len(wake), "grace", r.cfg.Grace)
	}
	for _, id := range wake {
		r.Wake(id)
	}
}

// Stranded returns the running instances that have no durable reason to
// run again (see index.Instance.Stranded). There should never be any.
func (r *Recovery) Stranded() []string { return r.cfg.Index.Stranded() }

// windowStreams returns the instances and entities (as "@" and their ID)
// with records in the window a crash may have left unacted, read from the
// log: the window spans the checkpoint interval, so it holds little.
func (r *Recovery) windowStreams() []string {
	if r.after >= r.upTo {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	defer cancel()
	seen := make(map[string]bool)
	var ids []string
	filter := eventstore.Filter{StreamPrefixes: []string{history.StreamPrefix, entitylog.StreamPrefix}}
	for rec, err := range r.cfg.Store.ReadAll(ctx, eventstore.ReadAllOptions{From: eventstore.FromPosition(r.after + 1), Filter: filter}) {
		if err != nil {
			// The instances with work in flight are woken all the same;
			// the others of the window act again when next activated.
			r.log.Warn("reading the records after the checkpoint failed", "error", err)
			break
		}
		if rec.Position > r.upTo {
			break
		}
		id, ok := strings.CutPrefix(rec.Stream, history.StreamPrefix)
		if !ok {
			id = "@" + strings.TrimPrefix(rec.Stream, entitylog.StreamPrefix)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// wakeStranded reports and wakes stranded instances: their grain replays
// them and records what they wait for.
func (r *Recovery) wakeStranded() {
	for _, id := range r.Stranded() {
		r.mu.Lock()
		first := !r.warned[id]
		r.warned[id] = true
		r.mu.Unlock()
		if first {
			in, _ := r.cfg.Index.Get(id)
			r.log.Error("an instance has no durable reason to run again; waking it", "instance", id, "status", in.Status, "waits_for", in.WaitsFor())
		}
		r.Wake(id)
	}
}

// checkpointLoop writes the acted-on checkpoint every CheckpointInterval.
func (r *Recovery) checkpointLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if err := r.checkpoint(r.ctx); err != nil && r.ctx.Err() == nil {
			r.log.Warn("writing the acted-on checkpoint failed", "error", err)
		}
	}
}

// checkpoint waits until every append up to the end of the log has been
// acted on and stores that position.
func (r *Recovery) checkpoint(ctx context.Context) error {
	p, err := r.tracker.checkpoint(ctx, func(ctx context.Context) (uint64, error) {
		return eventstore.LastPosition(ctx, r.cfg.Store)
	})
	if err != nil {
		return err
	}
	return r.checkpoints.write(ctx, p)
}

// Stop stops waking and sweeping, and writes a last checkpoint if every
// append has been acted on by then (within ctx). Acts still in flight are
// then carried out again after the next start.
func (r *Recovery) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if err := r.checkpoint(ctx); err != nil {
		return fmt.Errorf("recovery: last checkpoint: %w", err)
	}
	return nil
}
