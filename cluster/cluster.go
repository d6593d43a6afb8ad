package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/emptypb"
)

// abandonTimeout bounds the clean-up of a Start that failed after protoactor
// had started part of the member.
const abandonTimeout = 15 * time.Second

// Cluster is one running member: an actor system, its remote layer and its
// cluster membership. Create it with Start and end it with Stop. Its methods
// are safe for concurrent use.
type Cluster struct {
	cfg      Config
	log      *slog.Logger
	system   *actor.ActorSystem
	member   *protocluster.Cluster
	provider protocluster.ClusterProvider
	// local is the identity lookup of the single-member mode, nil with a
	// multi-member provider.
	local *localLookup

	// placement mirrors the ClusterTopology the member list publishes, with
	// the same rendezvous hashing the disthash identity lookup uses, so that
	// Request can ask the owning member's placement actor directly with its
	// own timeout and context instead of through disthash's blocking Get.
	placement *protocluster.Rendezvous
	topoSub   *eventstream.Subscription

	topoMu  sync.Mutex
	members []*protocluster.Member

	ready     chan struct{} // closed when the topology first includes this member
	readyOnce sync.Once

	started  chan struct{} // closed when protoactor's StartMember has returned
	startErr error         // set before started is closed

	stopping chan struct{} // closed when Stop begins
	stopOnce sync.Once
	stopped  chan struct{} // closed when the shutdown has finished
	stopErr  error         // set before stopped is closed
}

// Start starts an actor system and a cluster member hosting kinds, and returns
// once the member is part of the cluster topology (in process: at once) or
// ctx ends. Start fails with an error wrapping ErrInvalidConfig for a Config
// or Kind it cannot use.
//
// With a Provider, protoactor's Cluster.StartMember ends with an
// unconditional one-second sleep. Start runs it on its own goroutine and
// returns as soon as the member is ready; Stop waits for that goroutine, so
// a Stop right after Start takes up to that second. In process (no
// Provider) there is no member start at all.
func Start(ctx context.Context, cfg Config, kinds ...Kind) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pkinds, err := validateKinds(kinds)
	if err != nil {
		return nil, err
	}
	if cfg.Provider == nil {
		return startInProcess(cfg, pkinds), nil
	}
	if err := checkPortFree(cfg.Host, cfg.Port); err != nil {
		return nil, err
	}

	system := actor.NewActorSystem(actor.WithLoggerFactory(protoactorLogger(cfg.Logger)))

	var remoteOpts []remote.ConfigOption
	if cfg.AdvertisedHost != "" {
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(cfg.AdvertisedHost))
	}
	// A member that is the whole cluster places grains with a local
	// lookup; a real provider spreads them over members with disthash.
	var lookup protocluster.IdentityLookup = disthash.New()
	var local *localLookup
	if _, single := cfg.Provider.(SingleMember); single {
		local = newLocalLookup()
		lookup = local
	}
	memberCfg := protocluster.Configure(cfg.Name, cfg.Provider, lookup,
		remote.Configure(cfg.Host, cfg.Port, remoteOpts...),
		protocluster.WithKinds(pkinds...),
		protocluster.WithRequestTimeout(cfg.RequestTimeout),
	)

	c := &Cluster{
		cfg:       cfg,
		log:       cfg.Logger,
		system:    system,
		member:    protocluster.New(system, memberCfg),
		provider:  cfg.Provider,
		local:     local,
		placement: protocluster.NewRendezvous(),
		ready:     make(chan struct{}),
		started:   make(chan struct{}),
		stopping:  make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	// Subscribe before the member starts so that the first topology, which
	// the provider may publish synchronously inside StartMember, is seen.
	c.topoSub = system.EventStream.Subscribe(c.onEvent)

	go c.startMember()

	select {
	case <-c.ready:
		return c, nil
	case <-c.started:
		if c.startErr != nil {
			c.abandon()
			return nil, c.startErr
		}
		// The provider reports the topology asynchronously (a real
		// multi-node provider does): keep waiting for it.
		select {
		case <-c.ready:
			return c, nil
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	c.abandon()
	return nil, fmt.Errorf("cluster: start: member not ready: %w", ctx.Err())
}

// startInProcess starts the in-process mode: an actor system with
// protoactor's cluster extension, whose grains the local lookup places on
// this process. Nothing of protoactor's member starts: no remote layer (no
// gRPC, no listener), no gossip, no membership, no fixed sleep. So it
// starts and stops in milliseconds, and several engines in one process
// share no global state (a member start rewrites gRPC's process-wide
// logger, which races with any other member's gRPC goroutines).
func startInProcess(cfg Config, kinds []*protocluster.Kind) *Cluster {
	system := actor.NewActorSystem(actor.WithLoggerFactory(protoactorLogger(cfg.Logger)))
	local := newLocalLookup()
	// The member is never started; it is protoactor's cluster extension,
	// which its grain middleware (ClusterInit, PID cache) looks up.
	member := protocluster.New(system, protocluster.Configure(cfg.Name, SingleMember{}, local,
		remote.Configure(cfg.Host, 0), protocluster.WithRequestTimeout(cfg.RequestTimeout)))
	activated := make([]*protocluster.ActivatedKind, len(kinds))
	for i, k := range kinds {
		activated[i] = k.Build(member)
	}
	local.setup(member, activated)
	c := &Cluster{
		cfg:      cfg,
		log:      cfg.Logger,
		system:   system,
		member:   member,
		local:    local,
		ready:    make(chan struct{}),
		started:  make(chan struct{}),
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	close(c.ready)
	close(c.started)
	return c
}

// startMember runs protoactor's StartMember, which reports failures (a port
// that cannot be bound, a provider error) by panicking.
func (c *Cluster) startMember() {
	defer close(c.started)
	defer func() {
		if r := recover(); r != nil {
			c.startErr = fmt.Errorf("cluster: start member: %v", r)
		}
	}()
	c.member.StartMember()
}

// abandon releases what a failed Start had started, once protoactor's
// StartMember has returned or panicked.
func (c *Cluster) abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), abandonTimeout)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		c.log.Warn("cluster: clean-up after failed start", slog.Any("error", err))
	}
}

// checkPortFree fails early, with an error instead of protoactor's panic,
// when a fixed port cannot be bound.
func checkPortFree(host string, port int) error {
	if port == 0 {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("cluster: start: %w", err)
	}
	return l.Close()
}

// onEvent follows the topology published by the member list.
func (c *Cluster) onEvent(evt any) {
	topo, ok := evt.(*protocluster.ClusterTopology)
	if !ok {
		return
	}
	c.placement.UpdateMembers(topo.Members)
	c.topoMu.Lock()
	c.members = topo.Members
	c.topoMu.Unlock()
	for _, m := range topo.Members {
		if m.Id == c.system.ID {
			c.readyOnce.Do(func() { close(c.ready) })
		}
	}
}

// Started is closed once protoactor's member start has returned in full,
// its trailing sleep included; a Stop before then waits for it.
func (c *Cluster) Started() <-chan struct{} { return c.started }

// System is the actor system, for grain code that spawns or messages plain
// actors.
func (c *Cluster) System() *actor.ActorSystem { return c.system }

// ProtoCluster is protoactor's cluster member, for grain code that needs what
// this package does not wrap (cluster identity of an actor context, pub-sub,
// gossip). Prefer Request for grain calls: protoactor's own
// Cluster.Request logs an Error for every failed attempt and sleeps between
// retries without a context.
func (c *Cluster) ProtoCluster() *protocluster.Cluster { return c.member }

// Addr is the host:port of this member's remote layer, with the port chosen
// when Config.Port was 0; empty in process, which has no remote layer.
func (c *Cluster) Addr() string {
	if c.provider == nil {
		return ""
	}
	return c.system.Address()
}

// Active returns how many grains of kind are active on this member.
func (c *Cluster) Active(kind string) int {
	if c.local != nil {
		return c.local.active(kind)
	}
	if k := c.member.GetClusterKind(kind); k != nil {
		return int(k.Count())
	}
	return 0
}

// Members returns the addresses of the members in the current topology,
// sorted.
func (c *Cluster) Members() []string {
	c.topoMu.Lock()
	defer c.topoMu.Unlock()
	out := make([]string, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.Address())
	}
	sort.Strings(out)
	return out
}

// Stop shuts the member down gracefully, within ctx:
//
//  1. new and in-flight Request calls end with ErrStopped;
//  2. the member announces it left (gossip) and leaves the provider, so peers
//     place its grains elsewhere;
//  3. every active grain is deactivated: it receives *actor.Stopping and
//     *actor.Stopped, after the messages already in its mailbox;
//  4. gossip, the remote layer (gRPC server and client connections) and the
//     actor system are shut down.
//
// If ctx ends first, Stop returns an error wrapping ctx.Err() while the
// shutdown goes on in the background, bounded by protoactor's own 10s
// timeouts; call Stop again to wait for it. Once the shutdown has finished,
// every call returns its result (an error only if the provider failed to
// leave).
//
// Stop does its own sequence rather than protoactor's Cluster.Shutdown, which
// sleeps two seconds unconditionally and shuts the actor system before the
// grains are deactivated.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		close(c.stopping)
		go c.shutdown()
	})
	select {
	case <-c.stopped:
		return c.stopErr
	case <-ctx.Done():
		return fmt.Errorf("cluster: stop: shutdown still running: %w", ctx.Err())
	}
}

// shutdown runs the steps of Stop, sets stopErr and closes stopped.
func (c *Cluster) shutdown() {
	defer close(c.stopped)
	// protoactor's StartMember may still be in its trailing sleep; shutting
	// down under it would race with it.
	<-c.started
	begin := time.Now()
	if c.provider == nil {
		// In process: only grains and the actor system to stop.
		c.local.Shutdown()
		c.system.Shutdown()
		c.log.Debug("cluster: stopped", slog.Duration("took", time.Since(begin)))
		return
	}
	c.step("announce leaving", func() {
		c.member.Gossip.SetState(protocluster.GracefullyLeftKey, &emptypb.Empty{})
	})
	c.step("leave provider", func() {
		if err := c.provider.Shutdown(true); err != nil && c.startErr == nil {
			c.stopErr = fmt.Errorf("cluster: stop: leave provider: %w", err)
		}
	})
	// Stops every grain the identity lookup activated and waits for each
	// (the local lookup itself; disthash through its placement actor).
	c.step("deactivate grains", func() { c.member.IdentityLookup.Shutdown() })
	c.step("stop gossip", func() { c.member.Gossip.Shutdown() })
	c.step("stop remote", func() { c.member.Remote.Shutdown(true) })
	c.system.EventStream.Unsubscribe(c.topoSub)
	c.system.Shutdown()
	c.log.Debug("cluster: stopped", slog.String("address", c.Addr()), slog.Duration("took", time.Since(begin)))
}

// step runs one shutdown step. After a failed start some parts of the member
// never started, and protoactor's shutdown of a part that never started
// panics on a nil field; such a step is skipped, so that the parts that did
// start (the gRPC listener, gossip's loop) are still released.
func (c *Cluster) step(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Debug("cluster: shutdown step skipped", slog.String("step", name), slog.Any("panic", r))
		}
	}()
	fn()
}

// isStopping reports whether Stop has begun.
func (c *Cluster) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}
