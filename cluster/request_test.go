package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/durableactor/durable/cluster"
)

func TestRequestReachesTheActivationOfEachIdentity(t *testing.T) {
	ev := newEvents()
	c := startCluster(t, cluster.Config{}, counterKind("counter", ev, 0))

	for i, want := range []string{"a=1", "a=2", "b=1", "a=3", "b=2", "c=1"} {
		identity := want[:1]
		if got := requestString(t, c, "counter", identity); got != want {
			t.Fatalf("call %d to %q: got %q, want %q", i, identity, got, want)
		}
	}
}

func TestPassivatedGrainIsActivatedAgainWithFreshState(t *testing.T) {
	ev := newEvents()
	c := startCluster(t, cluster.Config{}, counterKind("idle", ev, 20*time.Millisecond))

	if got := requestString(t, c, "idle", "p"); got != "p=1" {
		t.Fatalf("first call: got %q, want p=1", got)
	}
	ev.expect(t, "p:stopped") // passivated after its receive timeout

	if got := requestString(t, c, "idle", "p"); got != "p=1" {
		t.Fatalf("call after passivation: got %q, want p=1 (fresh state)", got)
	}
}

// lateKind does not answer the first message of an identity within its
// attempt: it keeps the sender and answers it only when the retry arrives,
// then answers the retry. The first attempt therefore always times out and
// its reply arrives late, after the caller moved on.
func lateKind(ev events) cluster.Kind {
	return cluster.Kind{Name: "late", Props: actor.PropsFromProducer(func() actor.Actor {
		return &late{ev: ev}
	})}
}

type late struct {
	ev      events
	first   *actor.PID
	arrived int
}

func (g *late) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*wrapperspb.StringValue); !ok {
		return
	}
	g.arrived++
	if g.arrived == 1 {
		g.first = ctx.Sender()
		g.ev <- identityOf(ctx) + ":held"
		return
	}
	ctx.Send(g.first, wrapperspb.String("too late"))
	ctx.Respond(wrapperspb.Int64(int64(g.arrived)))
}

func TestSlowReplyIsRetriedAndTheCallSucceeds(t *testing.T) {
	ev := newEvents()
	const timeout = 200 * time.Millisecond
	c := startCluster(t, cluster.Config{RequestTimeout: timeout}, lateKind(ev))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	reply, err := c.Request(ctx, "late", "x", wrapperspb.String("work"))
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if got := reply.(*wrapperspb.Int64Value).GetValue(); got != 2 {
		t.Fatalf("reply: grain saw %d deliveries, want 2 (first attempt, retry)", got)
	}
	if took < timeout {
		t.Fatalf("call took %v, less than one attempt timeout %v: the first attempt was not the one that failed", took, timeout)
	}
	ev.expect(t, "x:held")
}

// silentKind never replies; it reports each message it receives.
func silentKind(ev events) cluster.Kind {
	return cluster.Kind{Name: "silent", Props: actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ev <- identityOf(ctx) + ":received"
		}
	})}
}

func TestCancellationEndsACallPromptly(t *testing.T) {
	ev := newEvents()
	// An attempt timeout far longer than the test: only cancellation can
	// end the call in time.
	c := startCluster(t, cluster.Config{RequestTimeout: time.Minute}, silentKind(ev))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "silent", "s", wrapperspb.String("hello?"))
		result <- err
	}()
	ev.expect(t, "s:received")
	cancel()

	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Request error = %v, want context.Canceled", err)
		}
		var re *cluster.RequestError
		if !errors.As(err, &re) || re.Kind != "silent" || re.Identity != "s" {
			t.Fatalf("Request error = %#v, want a *RequestError naming silent/s", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Request did not return within 2s of cancellation")
	}
}

func TestDeadlineEndsARetriedCallWithTheLastFailure(t *testing.T) {
	ev := newEvents()
	c := startCluster(t, cluster.Config{RequestTimeout: 50 * time.Millisecond}, silentKind(ev))

	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := c.Request(ctx, "silent", "d", wrapperspb.String("hello?"))

	var re *cluster.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("Request error = %v, want *RequestError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, cluster.ErrTimeout) {
		t.Fatalf("Request error = %v, want DeadlineExceeded with last failure ErrTimeout", err)
	}
	if re.Attempts < 2 {
		t.Fatalf("attempts = %d, want several attempts of 50ms within 400ms", re.Attempts)
	}
	for _, s := range []string{`"silent"`, `"d"`} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not name %s", err, s)
		}
	}
}

func TestGrainErrorReplyIsReturnedAndNotRetried(t *testing.T) {
	ev := newEvents()
	refuse := cluster.Kind{Name: "refuse", Props: actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ev <- identityOf(ctx) + ":refused"
			ctx.Respond(cluster.ErrorReply(status.Error(codes.FailedPrecondition, "not now")))
		}
	})}
	c := startCluster(t, cluster.Config{RequestTimeout: 100 * time.Millisecond}, refuse)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Request(ctx, "refuse", "r", wrapperspb.String("please"))

	var ge *cluster.GrainError
	if !errors.As(err, &ge) {
		t.Fatalf("Request error = %v, want *GrainError", err)
	}
	if ge.Kind != "refuse" || ge.Identity != "r" || status.Code(err) != codes.FailedPrecondition || ge.Status.Message() != "not now" {
		t.Fatalf("GrainError = %v (code %v), want refuse/r FailedPrecondition \"not now\"", err, status.Code(err))
	}
	if got := ev.drain(); len(got) != 1 {
		t.Fatalf("grain handled the call %d times (%v), want once: an error reply must not be retried", len(got), got)
	}
}

func TestUnknownKindFailsNamingTheKind(t *testing.T) {
	c := startCluster(t, cluster.Config{}, counterKind("counter", newEvents(), 0))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Request(ctx, "no-such-kind", "x", wrapperspb.String("hi"))
	if !errors.Is(err, cluster.ErrUnknownKind) {
		t.Fatalf("Request error = %v, want ErrUnknownKind", err)
	}
	if !strings.Contains(err.Error(), `"no-such-kind"`) {
		t.Fatalf("error %q does not name the kind", err)
	}
	if ctx.Err() != nil {
		t.Fatal("unknown kind was retried until the deadline instead of failing at once")
	}
}

func TestInvalidCallsAreRefused(t *testing.T) {
	c := startCluster(t, cluster.Config{}, counterKind("counter", newEvents(), 0))
	ctx := context.Background()
	for _, tc := range []struct{ kind, identity string }{{"", "x"}, {"counter", ""}} {
		if _, err := c.Request(ctx, tc.kind, tc.identity, wrapperspb.String("hi")); err == nil {
			t.Errorf("Request(%q, %q) succeeded, want an error", tc.kind, tc.identity)
		}
	}
	if _, err := c.Request(ctx, "counter", "x", nil); err == nil {
		t.Error("Request with a nil message succeeded, want an error")
	}
}
