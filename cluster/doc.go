// Package cluster is durable's membership and placement: it runs a
// protoactor-go actor system as a cluster member and calls grains (virtual
// actors) by kind and identity, wherever in the cluster they live.
//
// # Grains
//
// A grain kind is a name and the actor.Props of one activation:
//
//	counter := cluster.Kind{Name: "counter", Props: actor.PropsFromProducer(newCounter)}
//	c, err := cluster.Start(ctx, cluster.Config{}, counter)
//	defer c.Stop(ctx)
//	reply, err := c.Request(ctx, "counter", "order-42", wrapperspb.String("add"))
//
// Every identity of a kind is one actor, activated on first use on the member
// that owns the identity (this process in the in-process mode; otherwise
// rendezvous hashing over the members that host the kind, protoactor's
// disthash identity lookup) and living until it stops
// itself or the member stops. durable's orchestration and entity grains are
// kinds "orchestration" and "entity".
//
// Messages between grains and callers are protobuf messages (proto.Message):
// protoactor's remote layer serializes with protobuf and silently drops any
// other value sent to a grain on another member, so the API only takes
// protobuf, even in the embedded mode where nothing is serialized. A message
// sent to a local grain is handed over by pointer; do not modify it after
// sending.
//
// A grain answers a Request with ctx.Respond(reply). It reports a failure to
// its caller by replying with a google.rpc.Status (ErrorReply(err) or
// status.New(code, msg).Proto()): Request returns it as a *GrainError and
// does not retry, since the grain did handle the call. Besides its own
// messages a grain receives protoactor's lifecycle messages (*actor.Started,
// *cluster.ClusterInit, *actor.Stopping, *actor.Stopped) and should ignore
// what it does not know. A grain that calls Request blocks its own mailbox
// until the reply, so a grain must never call itself, directly or round a
// cycle of grains.
//
// A grain passivates by stopping itself, typically after an idle period:
// ctx.SetReceiveTimeout(d) on *actor.Started, then ctx.Stop(ctx.Self()) on
// *actor.ReceiveTimeout. The next call activates it again with fresh state,
// which durable's grains rebuild from their event stream.
//
// # Calls, retries and failures
//
// Request retries what is a transport failure, not the grain's answer: an
// attempt that gets no reply within Config.RequestTimeout (2s by default) or
// that reaches an activation that no longer exists is repeated, against a
// fresh placement, until the caller's context ends. The per-attempt timeout
// is short on purpose: when a member is lost, its grains are placed on the
// survivors and the next attempt reaches them, instead of the call waiting
// out one long timeout. The price is that a grain can receive a message more
// than once (a late reply makes the caller try again), so grains deduplicate
// inputs by ID, as durable's invariants require anyway.
//
// Durable inputs go through Request (reply after persist) or through the
// Watermill topics of package delivery; there is no fire-and-forget send,
// which would be at most once.
//
// This package runs its own call loop instead of protoactor's
// Cluster.Request, which sleeps between attempts without a context, logs an
// Error for every failed attempt (expected ones included) and gives up after
// three. The loop talks to disthash's placement actors directly with the
// same protobuf messages disthash uses.
//
// # Modes
//
// The in-process mode, the zero Config (no Provider), is durable's embedded
// mode: a cluster of this process alone. It is protoactor's actor system and
// cluster extension with a local identity lookup that places every grain
// here, and nothing of protoactor's member: no remote layer, no gossip, no
// membership. Nothing listens on the network at all, it starts and stops in
// milliseconds, and several of them in one process share no state (so a
// test binary may open many engines at once, under the race detector too).
// Messages are still protobuf, so grain code does not change between modes.
//
// With a Provider the member is networked. SingleMember is a member that is
// the whole cluster, reporting itself as the topology with no discovery;
// its remote layer's gRPC listener binds 127.0.0.1 on a free port unless
// Config.Host says otherwise. The multi-node mode is the same code with a
// real membership provider (any protoactor ClusterProvider), Host set to an
// address the other members can reach (or AdvertisedHost when binding a
// wildcard), and the same kinds registered on every member. Only the
// provider changes; placement, calls and shutdown do not.
//
// # Logging and lifecycle
//
// All of protoactor's logging goes to Config.Logger, its Info chatter
// lowered to Debug, except actor panics and lost members, raised to Warn; a
// nil Logger discards it. protoactor logs a recovered panic without its
// stack, so grain code that wants one recovers and logs it itself. Nothing
// in this package or, as configured here, in protoactor writes to stdout.
//
// Start returns when the member is in its own topology (in process: at
// once). Stop refuses new calls, leaves the cluster, deactivates every grain
// (each receives *actor.Stopping and *actor.Stopped), then stops gossip, the
// remote layer and the actor system. If its context ends first it returns,
// the shutdown goes on, and a second Stop waits for it.
//
// # protoactor-go quirks handled here
//
// The first four concern networked members only; the in-process mode starts
// none of those parts.
//
//   - Cluster.StartMember ends with a fixed one-second sleep and reports
//     errors by panicking: Start runs it on a goroutine and returns as soon
//     as the member is ready, turns panics into errors, checks a fixed port
//     beforehand and, after a failure, releases whatever had started (the
//     gRPC listener, gossip). Stop waits for that goroutine, so a member
//     lives at least about a second.
//   - Cluster.Shutdown sleeps two seconds and shuts the actor system before
//     the grains: Stop does its own sequence, which takes milliseconds.
//   - disthash's lookup blocks up to five seconds per placement, without a
//     context: Request places grains itself with RequestTimeout and ctx.
//   - Its default logger writes to stderr at Info, and the remote layer
//     silences gRPC by replacing gRPC's process-wide logger (grpclog) each
//     time a member starts. That write races with the gRPC goroutines of any
//     other networked member alive in the same process, so under the race
//     detector a process (a test binary) must run one networked member at a
//     time; tests with several belong in files built without -race. The
//     in-process mode has no gRPC and is free of this.
//   - When a member of a multi-node cluster stops, protoactor logs the closed
//     gRPC streams at Error ("EndpointWriter lost connection") on both sides.
//   - Some of its log throttles leave a goroutine waiting out a window of up
//     to a minute after Stop; goroutine-leak checks must ignore them (see
//     this package's TestMain).
package cluster
