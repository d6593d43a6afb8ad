package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/durableactor/durable/cluster"
	"github.com/durableactor/durable/internal/leaktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leaktest.IgnoreProtoactor()...)
}

// logs captures every record protoactor and the package log, so that tests
// can show warnings and errors and nothing reaches the test's output after
// the test ended. Handlers made by WithAttrs share the parent's records.
type logs struct {
	store *logStore
	attrs string // rendered attributes added by WithAttrs
}

type logStore struct {
	mu      sync.Mutex
	records []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s", r.Level, r.Message, l.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	st := l.store
	st.mu.Lock()
	st.records = append(st.records, b.String())
	st.mu.Unlock()
	return nil
}

func (l *logs) WithAttrs(attrs []slog.Attr) slog.Handler {
	child := &logs{store: l.store, attrs: l.attrs}
	for _, a := range attrs {
		child.attrs += fmt.Sprintf(" %s=%v", a.Key, a.Value)
	}
	return child
}

func (l *logs) WithGroup(string) slog.Handler { return l }

func newLogs() *logs { return &logs{store: &logStore{}} }

// atLeast returns the records at level or above.
func (l *logs) atLeast(level slog.Level) []string {
	st := l.store
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for _, r := range st.records {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(strings.Fields(r)[0])); err == nil && lv >= level {
			out = append(out, r)
		}
	}
	return out
}

// startCluster starts a member with captured logs and stops it at the end of
// the test, reporting its warnings.
func startCluster(t *testing.T, cfg cluster.Config, kinds ...cluster.Kind) *cluster.Cluster {
	t.Helper()
	l := newLogs()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cfg, kinds...)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		begin := time.Now()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		t.Logf("%s stopped in %v", c.Addr(), time.Since(begin).Round(time.Millisecond))
		for _, r := range l.atLeast(slog.LevelWarn) {
			t.Logf("log: %s", r)
		}
		// protoactor logs a panic in any actor (its own placement and
		// gossip actors included) as "Recovering" at Info, which
		// Config.Logger gets at Debug: none may happen in these tests.
		for _, r := range l.atLeast(slog.LevelDebug) {
			if strings.Contains(r, "Recovering") {
				t.Errorf("an actor panicked: %s", r)
			}
		}
	})
	return c
}

// identityOf is the identity of the grain an actor context belongs to.
func identityOf(ctx actor.Context) string {
	if ci := protocluster.GetClusterIdentity(ctx); ci != nil {
		return ci.Identity
	}
	return "?"
}

// events is how test grains report lifecycle events to the test: each event
// is "identity:what", the channel is large enough never to block a grain.
type events chan string

func newEvents() events { return make(events, 1024) }

// expect waits for event or fails the test after a deadline.
func (e events) expect(t *testing.T, event string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-e:
			if got == event {
				return
			}
		case <-deadline:
			t.Fatalf("event %q not seen within 10s", event)
		}
	}
}

// drain returns the events already reported.
func (e events) drain() []string {
	var out []string
	for {
		select {
		case ev := <-e:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// counterKind counts the messages each identity receives and replies
// "identity=count", reporting its lifecycle to ev. With idle > 0 the grain
// passivates (stops itself) after that much idle time.
func counterKind(name string, ev events, idle time.Duration) cluster.Kind {
	return cluster.Kind{Name: name, Props: actor.PropsFromProducer(func() actor.Actor {
		return &counter{ev: ev, idle: idle}
	})}
}

type counter struct {
	ev   events
	idle time.Duration
	n    int
}

func (g *counter) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if g.idle > 0 {
			ctx.SetReceiveTimeout(g.idle)
		}
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		g.ev <- identityOf(ctx) + ":stopping"
	case *actor.Stopped:
		g.ev <- identityOf(ctx) + ":stopped"
	case *wrapperspb.StringValue:
		g.n++
		ctx.Respond(wrapperspb.String(fmt.Sprintf("%s=%d", identityOf(ctx), g.n)))
	}
}

// requestString calls a grain and returns the reply's string value.
func requestString(t *testing.T, c *cluster.Cluster, kind, identity string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, kind, identity, wrapperspb.String("hi"))
	if err != nil {
		t.Fatalf("Request(%s, %s): %v", kind, identity, err)
	}
	s, ok := reply.(*wrapperspb.StringValue)
	if !ok {
		t.Fatalf("Request(%s, %s): reply %T, want *wrapperspb.StringValue", kind, identity, reply)
	}
	return s.GetValue()
}
