package cluster

import (
	"hash/maphash"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// localLookup places every grain on this member: the identity lookup of the
// single-member mode. It replaces protoactor's disthash there because
// disthash keeps all activations in one placement actor that finds a
// stopped grain by scanning every activation, so passivating n grains costs
// O(n^2), and every activation waits in that one actor's mailbox. Here
// activations live in sharded maps: placing, finding and forgetting a grain
// are O(1) and need no actor round trip.
type localLookup struct {
	cluster *protocluster.Cluster
	seed    maphash.Seed
	kinds   map[string]*localKind
	shards  [64]lookupShard
}

// localKind is a kind's props, with the forgetting middleware, and its
// count of activations.
type localKind struct {
	props     *actor.Props
	activated *protocluster.ActivatedKind
}

type lookupShard struct {
	mu   sync.Mutex
	pids map[string]*actor.PID
}

var _ protocluster.IdentityLookup = (*localLookup)(nil)

func newLocalLookup() *localLookup {
	l := &localLookup{seed: maphash.MakeSeed(), kinds: make(map[string]*localKind)}
	for i := range l.shards {
		l.shards[i].pids = make(map[string]*actor.PID)
	}
	return l
}

func (l *localLookup) shard(key string) *lookupShard {
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

// Setup prepares the kinds of a started member (protoactor calls it).
func (l *localLookup) Setup(c *protocluster.Cluster, kinds []string, _ bool) {
	var activated []*protocluster.ActivatedKind
	for _, name := range kinds {
		if kind := c.GetClusterKind(name); kind != nil {
			activated = append(activated, kind)
		}
	}
	l.setup(c, activated)
}

// setup prepares the kinds' props so that a stopping grain removes itself.
func (l *localLookup) setup(c *protocluster.Cluster, kinds []*protocluster.ActivatedKind) {
	l.cluster = c
	for _, k := range kinds {
		l.kinds[k.Kind] = &localKind{props: k.Props.Clone(actor.WithReceiverMiddleware(l.forgetOnStop)), activated: k}
	}
}

// active returns how many grains of kind are active.
func (l *localLookup) active(kind string) int {
	if k, ok := l.kinds[kind]; ok {
		return int(k.activated.Count())
	}
	return 0
}

// forgetOnStop removes a grain from the lookup when it stops, so the next
// message activates it anew.
func (l *localLookup) forgetOnStop(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		next(c, env)
		if _, ok := env.Message.(*actor.Stopped); ok {
			if ci := protocluster.GetClusterIdentity(c); ci != nil {
				l.RemovePid(ci, c.Self())
				if kind, ok := l.kinds[ci.Kind]; ok {
					kind.activated.Dec()
				}
			}
		}
	}
}

// Get returns the grain's activation, activating it if there is none; nil
// for a kind this member does not host.
func (l *localLookup) Get(ci *protocluster.ClusterIdentity) *actor.PID {
	kind, ok := l.kinds[ci.Kind]
	if !ok {
		return nil
	}
	key := ci.AsKey()
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if pid, ok := s.pids[key]; ok {
		return pid
	}
	pid := l.cluster.ActorSystem.Root.SpawnPrefix(protocluster.WithClusterIdentity(kind.props, ci), ci.Identity)
	kind.activated.Inc()
	s.pids[key] = pid
	return pid
}

// RemovePid forgets an activation, unless a newer one took its place.
func (l *localLookup) RemovePid(ci *protocluster.ClusterIdentity, pid *actor.PID) {
	key := ci.AsKey()
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.pids[key]; ok && cur.Equal(pid) {
		delete(s.pids, key)
	}
}

// Shutdown stops every activation and waits until they have stopped, so
// each grain sees Stopping and Stopped before the actor system goes.
func (l *localLookup) Shutdown() {
	var futures []*actor.Future
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, pid := range s.pids {
			futures = append(futures, l.cluster.ActorSystem.Root.StopFuture(pid))
		}
		s.mu.Unlock()
	}
	for _, f := range futures {
		f.Wait()
	}
}
