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
	props   map[string]*actor.Props // by kind, with the forgetting middleware
	shards  [64]lookupShard
}

type lookupShard struct {
	mu   sync.Mutex
	pids map[string]*actor.PID
}

var _ protocluster.IdentityLookup = (*localLookup)(nil)

func newLocalLookup() *localLookup {
	l := &localLookup{seed: maphash.MakeSeed(), props: make(map[string]*actor.Props)}
	for i := range l.shards {
		l.shards[i].pids = make(map[string]*actor.PID)
	}
	return l
}

func (l *localLookup) shard(key string) *lookupShard {
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

// Setup prepares the kinds' props so that a stopping grain removes itself.
func (l *localLookup) Setup(c *protocluster.Cluster, kinds []string, _ bool) {
	l.cluster = c
	for _, name := range kinds {
		kind := c.GetClusterKind(name)
		if kind == nil {
			continue
		}
		l.props[name] = kind.Props.Clone(actor.WithReceiverMiddleware(l.forgetOnStop))
	}
}

// forgetOnStop removes a grain from the lookup when it stops, so the next
// message activates it anew.
func (l *localLookup) forgetOnStop(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		next(c, env)
		if _, ok := env.Message.(*actor.Stopped); ok {
			if ci := protocluster.GetClusterIdentity(c); ci != nil {
				l.RemovePid(ci, c.Self())
				if kind := l.cluster.GetClusterKind(ci.Kind); kind != nil {
					kind.Dec()
				}
			}
		}
	}
}

// Get returns the grain's activation, activating it if there is none; nil
// for a kind this member does not host.
func (l *localLookup) Get(ci *protocluster.ClusterIdentity) *actor.PID {
	props, ok := l.props[ci.Kind]
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
	pid := l.cluster.ActorSystem.Root.SpawnPrefix(protocluster.WithClusterIdentity(props, ci), ci.Identity)
	l.cluster.GetClusterKind(ci.Kind).Inc()
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
