// Two members in one process race inside protoactor-go and gRPC, not in this
// package: every member's remote.Start replaces gRPC's process-wide logger
// (grpclog.SetLoggerV2, a plain write) while the other member's gRPC server
// and connections read it, and protoactor's gossip and member list share
// state between goroutines without synchronization. The race detector
// reports those, so this test runs only without -race.

//go:build !race

package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/durableactor/durable/cluster"
)

// whereKind counts messages per identity and replies
// "address identity=count", so the caller sees which member hosts it.
func whereKind() cluster.Kind {
	return cluster.Kind{Name: "where", Props: actor.PropsFromProducer(func() actor.Actor {
		n := 0
		return actor.ReceiveFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
				n++
				ctx.Respond(wrapperspb.String(fmt.Sprintf("%s %s=%d", ctx.ActorSystem().Address(), identityOf(ctx), n)))
			}
		})
	})}
}

func TestGrainOnTheOtherMemberIsReachedWithProtobufMessages(t *testing.T) {
	// protoactor's in-memory provider: both members register with one
	// shared agent, which tells each of them about the other.
	agent := test.NewInMemAgent()
	one := startCluster(t, cluster.Config{Provider: test.NewTestProvider(agent)}, whereKind())
	two := startCluster(t, cluster.Config{Provider: test.NewTestProvider(agent)}, whereKind())

	both := []string{one.Addr(), two.Addr()}
	slices.Sort(both)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(one.Members(), both) || !slices.Equal(two.Members(), both) {
		if time.Now().After(deadline) {
			t.Fatalf("members did not see each other within 10s: one sees %v, two sees %v", one.Members(), two.Members())
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}

	// Rendezvous hashing spreads identities over both members; find one
	// that lives on member two, calling from member one.
	remote := ""
	for i := 0; i < 64 && remote == ""; i++ {
		id := fmt.Sprintf("w%d", i)
		if got := requestString(t, one, "where", id); strings.HasPrefix(got, two.Addr()+" ") {
			remote = id
			if want := two.Addr() + " " + id + "=1"; got != want {
				t.Fatalf("first call to %s: got %q, want %q", id, got, want)
			}
		}
	}
	if remote == "" {
		t.Fatalf("none of 64 identities was placed on member two (%s)", two.Addr())
	}

	// Both members agree on the placement: member two reaches the same
	// activation locally, and member one reaches it again remotely.
	if got, want := requestString(t, two, "where", remote), two.Addr()+" "+remote+"=2"; got != want {
		t.Fatalf("call from member two: got %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := one.Request(ctx, "where", remote, wrapperspb.String("again"))
	if err != nil {
		t.Fatalf("second remote call: %v", err)
	}
	if got, want := reply.(*wrapperspb.StringValue).GetValue(), two.Addr()+" "+remote+"=3"; got != want {
		t.Fatalf("second remote call: got %q, want %q", got, want)
	}
}
