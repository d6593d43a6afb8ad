package cluster

import (
	"errors"
	"fmt"

	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// SingleMember is the membership provider of the embedded mode: the member
// that starts it is the whole cluster. It discovers nothing and opens no
// socket of its own; StartMember reports a topology of exactly this member,
// and Start pairs it with a local identity lookup that places every grain
// here.
//
// It exists because protoactor-go's own single-process options do not fit an
// embedded library: the automanaged provider binds 0.0.0.0 and prints to
// stdout, and the test provider needs a shared in-memory agent and leaves a
// goroutine running after shutdown.
type SingleMember struct{}

var _ protocluster.ClusterProvider = SingleMember{}

// StartMember publishes the one-member topology. protoactor calls it at the
// end of Cluster.StartMember, after the remote layer is bound, so the
// member's address is known.
func (SingleMember) StartMember(c *protocluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("single-member provider: member address: %w", err)
	}
	c.MemberList.UpdateClusterTopology(protocluster.Members{{
		Id:    c.ActorSystem.ID,
		Host:  host,
		Port:  int32(port),
		Kinds: c.GetClusterKinds(),
	}})
	return nil
}

// StartClient is refused: a client member hosts no grains and needs members
// to talk to, which a cluster of one does not have.
func (SingleMember) StartClient(*protocluster.Cluster) error {
	return errors.New("single-member provider: client members are not supported")
}

// Shutdown does nothing. Publishing an empty topology here would make the
// member block its own ID and poison its grains as "moved"; the grains are
// instead deactivated by the identity lookup's shutdown, in order.
func (SingleMember) Shutdown(bool) error { return nil }
