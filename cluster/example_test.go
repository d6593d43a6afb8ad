package cluster_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/durableactor/durable/cluster"
)

// A grain kind whose activations greet by name and refuse empty names; the
// embedded mode needs no server. Since this example checks its output, it
// also shows that nothing else reaches stdout.
func Example() {
	greeter := cluster.Kind{Name: "greeter", Props: actor.PropsFromFunc(func(ctx actor.Context) {
		msg, ok := ctx.Message().(*wrapperspb.StringValue)
		if !ok {
			return // lifecycle messages
		}
		if msg.GetValue() == "" {
			ctx.Respond(cluster.ErrorReply(status.Error(codes.InvalidArgument, "no name")))
			return
		}
		me := protocluster.GetClusterIdentity(ctx).Identity
		ctx.Respond(wrapperspb.String(me + " greets " + msg.GetValue()))
	})}

	ctx := context.Background()
	c, err := cluster.Start(ctx, cluster.Config{}, greeter)
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	defer c.Stop(ctx)

	reply, err := c.Request(ctx, "greeter", "alice", wrapperspb.String("bob"))
	if err != nil {
		fmt.Println("request:", err)
		return
	}
	fmt.Println(reply.(*wrapperspb.StringValue).GetValue())

	_, err = c.Request(ctx, "greeter", "alice", wrapperspb.String(""))
	var ge *cluster.GrainError
	fmt.Println(errors.As(err, &ge), status.Code(err))
	// Output:
	// alice greets bob
	// true InvalidArgument
}
