package durable

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
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
	"github.com/durableactor/durable/recovery"
)

// Config configures an Engine. Only Dir and Registry are required; the
// defaults run everything embedded, on this machine, listening on nothing
// but loopback.
type Config struct {
	// Dir is the data directory: the embedded event store keeps its files
	// in Dir/events, the embedded message bus in Dir/bus, the instance
	// index in Dir/index (without Dir the index is kept in memory and
	// rebuilt from the store's log at every Open).
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
	// MaxEntityStateSize bounds an entity's encoded state, in bytes; an
	// operation that would grow it past that fails.
	// entities.DefaultMaxStateSize when zero.
	MaxEntityStateSize int
	// Clock gives the time of episodes; time.Now when nil.
	Clock func() time.Time

	// seams lets the engine's own fault tests wrap its parts.
	seams seams
}

// seams wrap the engine's parts where its fault tests inject failures: the
// handler of bus messages (lost and repeated acknowledgements) and the bus
// the grains schedule timers on (lost schedules). The store is wrapped
// through Config.Store.
type seams struct {
	handler func(delivery.Handler) delivery.Handler
	bus     func(actors.Bus) actors.Bus
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
	recovery  *recovery.Recovery
	client    *Client

	mu      sync.Mutex
	started bool
	stopped bool
	stopBus context.CancelFunc
	busDone chan error
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
	indexDir := ""
	if cfg.Dir != "" {
		indexDir = filepath.Join(cfg.Dir, "index")
	}
	if e.index, err = index.Open(ctx, index.Config{Store: e.store, Dir: indexDir, Logger: cfg.Logger}); err != nil {
		return fail(err)
	}
	e.recovery, err = recovery.Open(ctx, recovery.Config{
		Store: e.store, Index: e.index, Wake: e.wake, Logger: cfg.Logger, Clock: cfg.Clock,
	})
	if err != nil {
		return fail(err)
	}
	var grainBus actors.Bus = bus
	if cfg.seams.bus != nil {
		grainBus = cfg.seams.bus(grainBus)
	}
	e.runtime = actors.NewRuntime(actors.Config{
		Store:                   e.store,
		Orchestrators:           cfg.Registry.Orchestrators(),
		Activities:              cfg.Registry,
		Entities:                cfg.Registry,
		MaxEntityStateSize:      cfg.MaxEntityStateSize,
		Executor:                cfg.Orchestration,
		Bus:                     grainBus,
		Recovery:                e.recovery,
		Logger:                  cfg.Logger,
		Clock:                   cfg.Clock,
		IdleTimeout:             cfg.IdleTimeout,
		MaxConcurrentActivities: cfg.MaxConcurrentActivities,
		LocalTimers:             time.Second,
	})
	e.cluster, err = cluster.Start(ctx, cluster.Config{Logger: cfg.Logger},
		cluster.Kind{Name: actors.Kind, Props: e.runtime.Props()},
		cluster.Kind{Name: actors.EntityKind, Props: e.runtime.EntityProps()})
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
	return e.cluster.Active(actors.Kind)
}

// ActiveEntities returns how many entities are active (in memory) on this
// node; idle ones passivate after Config.IdleTimeout.
func (e *Engine) ActiveEntities() int {
	return e.cluster.Active(actors.EntityKind)
}

// Stranded returns the instances that have neither ended nor anything to
// wait for that would make them run again (see package recovery). It is
// empty unless durable has a bug: every running instance waits for work in
// flight, a timer, an event or a Resume. The engine reports and wakes
// stranded instances by itself; tests check it after every fault.
func (e *Engine) Stranded() []string { return e.recovery.Stranded() }

// Client returns the engine's client.
func (e *Engine) Client() *Client { return e.client }

// Start wakes, in the background, the instances that a crash may have
// left with work nobody resumes (see package recovery), and starts
// consuming the message bus (fired timers, redriven dead letters). One
// instance that cannot be loaded does not keep the engine from starting:
// recovery retries it, or it shows as failed.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return ErrStopped
	}
	if e.started {
		return nil
	}
	e.recovery.Start()
	handler := delivery.Handler(e.runtime.HandleMessage)
	if e.cfg.seams.handler != nil {
		handler = e.cfg.seams.handler(handler)
	}
	busCtx, stopBus := context.WithCancel(context.Background())
	e.stopBus, e.busDone = stopBus, make(chan error, 1)
	go func() { e.busDone <- e.bus.Run(busCtx, handler) }()
	e.started = true
	return nil
}

// wake activates an instance so that it issues its work in flight again;
// recovery calls it, and retries when it returns an error. An entity is
// known to recovery as "@" and its ID.
func (e *Engine) wake(ctx context.Context, id string) error {
	kind := actors.Kind
	if entity, ok := strings.CutPrefix(id, "@"); ok {
		kind, id = actors.EntityKind, entity
	}
	_, err := e.cluster.Request(ctx, kind, id, &grainpb.Wake{})
	if actors.Retriable(err) {
		return err
	}
	if err != nil {
		e.cfg.Logger.Debug("an instance refused to wake", "instance", id, "reason", err)
	}
	return nil
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
			e.cfg.Logger.Warn("work still in flight at shutdown is cut short; it is done again after a restart", "error", err)
		}
		cancel()
		// The last checkpoint needs every append acted on; after a timeout
		// above it cannot be, and the previous one stands.
		lastCtx, cancel := context.WithTimeout(ctx, time.Second)
		if err := e.recovery.Stop(lastCtx); err != nil {
			e.cfg.Logger.Warn("no final checkpoint; the next start acts again on the last records", "error", err)
		}
		cancel()
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
