package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/cluster"
	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/orchestration"
)

// Config configures an Engine. Only Dir and Registry are required; the
// defaults run everything embedded, on this machine, listening on nothing
// but loopback.
type Config struct {
	// Dir is the data directory: the embedded event store keeps its files
	// in Dir/events, the embedded message bus in Dir/bus.
	Dir string
	// Registry holds the orchestrators and activities to run.
	Registry *Registry
	// Logger receives everything the engine and its parts log; quiet by
	// default. slog.Default() when nil.
	Logger *slog.Logger

	// Store replaces the embedded Pebble event store, for example with
	// EventStoreDB/KurrentDB. The engine does not close a store it was given.
	Store eventstore.Store
	// NATSURL replaces the embedded message bus with an external NATS
	// server with JetStream.
	NATSURL string

	// MaxConcurrentActivities bounds the activities running at once on this
	// node; 10 per CPU when zero, as Durable Functions does.
	MaxConcurrentActivities int
	// IdleTimeout is how long an instance stays in memory without messages
	// before it passivates; 30 seconds when zero.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds how long Stop lets running activities finish;
	// 30 seconds when zero.
	ShutdownTimeout time.Duration
	// Orchestration sets the executor's limits. Its Converter is ignored:
	// the Registry's converter encodes all payloads.
	Orchestration orchestration.Options
	// Clock gives the time of episodes; time.Now when nil.
	Clock func() time.Time
}

func (c *Config) validate() error {
	if c.Registry == nil {
		return errors.New("durable: Config.Registry is nil")
	}
	if c.Dir == "" && (c.Store == nil || c.NATSURL == "") {
		return errors.New("durable: Config.Dir is empty (it is required unless both Store and NATSURL are set)")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxConcurrentActivities <= 0 {
		c.MaxConcurrentActivities = 10 * runtime.GOMAXPROCS(0)
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	c.Orchestration.Converter = c.Registry.Converter()
	if c.Orchestration.Logger == nil {
		c.Orchestration.Logger = c.Logger
	}
	c.Orchestration = c.Orchestration.WithDefaults()
	return nil
}

// Engine runs orchestrations: it owns the event store, the message bus, the
// actor cluster and the instance index of one node.
type Engine struct {
	cfg       Config
	store     eventstore.Store
	ownsStore bool
	bus       *delivery.Bus
	cluster   *cluster.Cluster
	runtime   *actors.Runtime
	index     *index.Index
	client    *Client
	// checkpoint is the acted-on checkpoint read at Open.
	checkpoint uint64

	mu       sync.Mutex
	started  bool
	stopped  bool
	stopBus  context.CancelFunc
	busDone  chan error
	stopLoop context.CancelFunc
	loopDone chan struct{}
}

// Open opens the engine's parts and rebuilds its index; Start makes it run.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, store: cfg.Store}
	if e.store == nil {
		store, err := pebble.Open(pebble.Config{Dir: filepath.Join(cfg.Dir, "events"), Logger: cfg.Logger, Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		e.store, e.ownsStore = store, true
	}
	fail := func(err error) (*Engine, error) {
		e.close()
		return nil, err
	}
	bus, err := delivery.Open(ctx, delivery.Config{Dir: filepath.Join(cfg.Dir, "bus"), URL: cfg.NATSURL, Logger: cfg.Logger})
	if err != nil {
		return fail(err)
	}
	e.bus = bus
	if e.index, err = index.Open(ctx, e.store, cfg.Logger); err != nil {
		return fail(err)
	}
	e.runtime = actors.NewRuntime(actors.Config{
		Store:                   e.store,
		Orchestrators:           cfg.Registry.Orchestrators(),
		Activities:              cfg.Registry,
		Executor:                cfg.Orchestration,
		Bus:                     bus,
		Logger:                  cfg.Logger,
		Clock:                   cfg.Clock,
		IdleTimeout:             cfg.IdleTimeout,
		MaxConcurrentActivities: cfg.MaxConcurrentActivities,
		LocalTimers:             time.Second,
	})
	// Records after the checkpoint, up to the end of the log now, may hold
	// decisions a crash kept from the bus; grains that load them act again.
	e.checkpoint = e.readCheckpoint()
	end, err := e.runtime.LastPosition(ctx)
	if err != nil {
		return fail(err)
	}
	e.runtime.SetRecoveryWindow(e.checkpoint, end)
	e.cluster, err = cluster.Start(ctx, cluster.Config{Logger: cfg.Logger},
		cluster.Kind{Name: actors.Kind, Props: e.runtime.Props()})
	if err != nil {
		return fail(err)
	}
	e.runtime.Bind(e.cluster.System(), e.cluster)
	e.client = &Client{e: e}
	return e, nil
}

func (e *Engine) isStopped() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopped
}

// ActiveInstances returns how many instances are active (in memory) on
// this node; idle ones passivate after Config.IdleTimeout.
func (e *Engine) ActiveInstances() int {
	if kind := e.cluster.ProtoCluster().GetClusterKind(actors.Kind); kind != nil {
		return int(kind.Count())
	}
	return 0
}

// Client returns the engine's client.
func (e *Engine) Client() *Client { return e.client }

// Start wakes the instances that a crash may have left with work in flight
// and starts consuming messages (raised events, control requests, fired
// timers).
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return ErrStopped
	}
	if e.started {
		return nil
	}
	if err := e.recover(ctx); err != nil {
		return err
	}
	busCtx, stopBus := context.WithCancel(context.Background())
	e.stopBus, e.busDone = stopBus, make(chan error, 1)
	go func() { e.busDone <- e.bus.Run(busCtx, e.runtime.HandleMessage) }()
	loopCtx, stopLoop := context.WithCancel(context.Background())
	e.stopLoop, e.loopDone = stopLoop, make(chan struct{})
	go e.checkpointLoop(loopCtx)
	e.started = true
	return nil
}

// checkpointFile holds the position up to which every recorded decision
// has been carried out.
func (e *Engine) checkpointFile() string { return filepath.Join(e.cfg.Dir, "acted-checkpoint") }

func (e *Engine) readCheckpoint() uint64 {
	data, err := os.ReadFile(e.checkpointFile())
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		e.cfg.Logger.Warn("ignoring an unreadable checkpoint", "file", e.checkpointFile(), "error", err)
		return 0
	}
	return n
}

// writeCheckpoint replaces the checkpoint file atomically and durably.
func (e *Engine) writeCheckpoint(position uint64) error {
	tmp := e.checkpointFile() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d\n", position)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, e.checkpointFile())
}

// checkpointLoop records, every second, how far decisions have been acted
// on, so a restart after a crash wakes only the instances written since.
func (e *Engine) checkpointLoop(ctx context.Context) {
	defer close(e.loopDone)
	last := e.checkpoint
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, err := e.runtime.Checkpoint(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.Warn("checkpoint failed", "error", err)
			}
			continue
		}
		if p != last {
			if err := e.writeCheckpoint(p); err != nil {
				e.cfg.Logger.Warn("writing the checkpoint failed", "error", err)
				continue
			}
			last = p
		}
	}
}

// recover wakes every instance that may have work nobody will resume: a
// running one's activity or sub-orchestration without an outcome, or
// decisions recorded after the last checkpoint (timers or events a crash
// may have kept from the bus; a finished instance's last episode may have
// sent events too). Instances that only wait for a timer or event
// scheduled earlier are woken by that message.
func (e *Engine) recover(ctx context.Context) error {
	checkpoint := e.checkpoint
	ids := e.index.Select(func(in *index.Instance) bool {
		return in.LastPosition > checkpoint || (!in.Status.IsTerminal() && in.PendingTasks > 0)
	})
	if len(ids) == 0 {
		return nil
	}
	e.cfg.Logger.Info("waking instances with work in flight", "instances", len(ids), "checkpoint", checkpoint)
	work := make(chan string)
	errs := make(chan error, len(ids))
	var wg sync.WaitGroup
	for range min(16, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if _, err := e.cluster.Request(ctx, actors.Kind, id, &grainpb.Wake{}); err != nil {
					errs <- fmt.Errorf("durable: wake: %w", grainError(id, err))
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	return errors.Join(slicesOf(errs)...)
}

func slicesOf(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// Stop shuts the engine down gracefully: it stops taking work, lets the
// running activities finish and record their results (up to
// ShutdownTimeout, or ctx), writes a final checkpoint and closes everything.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	started := e.started
	e.mu.Unlock()
	var errs []error
	if started {
		e.stopBus()
		if err := <-e.busDone; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		e.runtime.Drain()
		drainCtx, cancel := context.WithTimeout(ctx, e.cfg.ShutdownTimeout)
		if err := e.runtime.WaitIdle(drainCtx); err != nil {
			e.cfg.Logger.Warn("activities still running at shutdown are cancelled; they run again after a restart", "error", err)
		}
		cancel()
		e.stopLoop()
		<-e.loopDone
		if p, err := e.runtime.Checkpoint(ctx); err == nil {
			if err := e.writeCheckpoint(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, e.close())
	return errors.Join(errs...)
}

// close releases the parts that were opened, in reverse order.
func (e *Engine) close() error {
	var errs []error
	if e.runtime != nil {
		e.runtime.Shutdown()
	}
	if e.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, e.cluster.Stop(ctx))
		cancel()
	}
	if e.runtime != nil {
		e.runtime.Close()
	}
	if e.index != nil {
		e.index.Close()
	}
	if e.bus != nil {
		errs = append(errs, e.bus.Close())
	}
	if e.ownsStore {
		errs = append(errs, e.store.Close())
	}
	return errors.Join(errs...)
}
