package durable

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/internal/grainpb"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// start opens and starts an engine for a test, and stops it at the end.
func start(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSweepFiresLostSchedules: every schedule the grains make is lost, as
// if each crash came between an append and its acts. The sweep finds the
// overdue timer and the overdue scheduled start in the index and wakes
// their instances, which fire them themselves: late, never lost.
func TestSweepFiresLostSchedules(t *testing.T) {
	reg := NewRegistry()
	RegisterOrchestrator(reg, "Sleeper", func(ctx *orchestration.Context, _ any) (string, error) {
		// Longer than the grain's own timers, so only the bus would fire it.
		return "woke", orchestration.Sleep(ctx, 1500*time.Millisecond)
	})
	RegisterOrchestrator(reg, "Quick", func(*orchestration.Context, any) (string, error) { return "ran", nil })
	bus := &lossyBus{rate: 1}
	e := start(t, Config{Registry: reg, seams: seams{bus: func(b actors.Bus) actors.Bus { bus.Bus = b; return bus }}})
	c := e.Client()
	ctx := within(t, 30*time.Second)
	begin := time.Now()
	if _, err := c.Start(ctx, "Sleeper", nil, WithInstanceID("timer")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "Quick", nil, WithInstanceID("later"), WithStartTime(begin.Add(1500*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"timer", "later"} {
		st, err := c.Wait(ctx, id)
		if err != nil || st.RuntimeStatus != orchestration.StatusCompleted {
			t.Fatalf("%s: %v (%v)", id, st, err)
		}
	}
	if bus.dropped.Load() < 2 {
		t.Fatalf("only %d schedules were dropped", bus.dropped.Load())
	}
	t.Logf("both ended %v after the start, %d schedules lost", time.Since(begin).Round(time.Millisecond), bus.dropped.Load())
}

// TestDuplicateAfterContinueAsNewOnTheBus: an event published on the bus
// is recorded, the instance continues as new, and the bus delivers the
// event again because its acknowledgement was lost. The new generation
// must drop it.
func TestDuplicateAfterContinueAsNewOnTheBus(t *testing.T) {
	reg := NewRegistry()
	RegisterOrchestrator(reg, "Step", func(ctx *orchestration.Context, n int) (int, error) {
		if _, err := orchestration.WaitForEvent[int](ctx, "next").Await(); err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(n + 1)
	})
	var calls atomic.Int32
	redelivered := make(chan error, 1)
	e := start(t, Config{Registry: reg, seams: seams{handler: func(h delivery.Handler) delivery.Handler {
		return func(ctx context.Context, topic delivery.Topic, m delivery.Message) error {
			err := h(ctx, topic, m)
			switch calls.Add(1) {
			case 1:
				if err == nil {
					err = errors.New("injected: acknowledgement lost")
				}
			case 2:
				redelivered <- err
			}
			return err
		}
	}}})
	c := e.Client()
	ctx := within(t, 30*time.Second)
	if _, err := c.Start(ctx, "Step", 0, WithInstanceID("s")); err != nil {
		t.Fatal(err)
	}
	// An external producer publishes the event on the bus.
	ev := orchestration.HistoryEvent{Kind: orchestration.EventRaised, Name: "next", Input: []byte("1"), RequestID: uuid.NewString()}
	payload, err := proto.Marshal(actors.DeliverMessage(ev))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(ctx, delivery.Events, delivery.Message{ID: ev.RequestID, Kind: actors.Kind, Identity: "s", Type: "EventRaised", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if err := <-redelivered; err != nil {
		t.Fatalf("the redelivery was refused: %v", err)
	}
	h, err := c.History(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if h[1].Kind != orchestration.ExecutionStarted || h[1].Generation != 1 || string(h[1].Input) != "1" {
		t.Fatalf("after one event and its redelivery the instance is at %+v, want generation 1", h[1])
	}
}

// TestWaitEndsWhenTheIndexStops: Wait does not outlive the index it waits
// on.
func TestWaitEndsWhenTheIndexStops(t *testing.T) {
	reg := NewRegistry()
	RegisterOrchestrator(reg, "Forever", func(ctx *orchestration.Context, _ any) (any, error) {
		return nil, ctx.WaitForEvent("never").Await(nil)
	})
	e := start(t, Config{Registry: reg})
	c := e.Client()
	if _, err := c.Start(within(t, 10*time.Second), "Forever", nil, WithInstanceID("f")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Wait(context.Background(), "f")
		done <- err
	}()
	e.index.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrIndexStopped) {
			t.Fatalf("Wait returned %v, want ErrIndexStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still waits on a stopped index")
	}
}

// TestStopIsQuickWhenIdle: with nothing running, Stop takes well under a
// second.
func TestStopIsQuickWhenIdle(t *testing.T) {
	reg := NewRegistry()
	greet := RegisterActivity(reg, "Greet", func(_ context.Context, s string) (string, error) { return "hi " + s, nil })
	RegisterOrchestrator(reg, "Hello", func(ctx *orchestration.Context, s string) (string, error) { return greet.Call(ctx, s).Await() })
	ctx := within(t, 30*time.Second)
	e, err := Open(ctx, Config{Dir: t.TempDir(), Registry: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := e.Client()
	for i := range 50 {
		id, err := c.Start(ctx, "Hello", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// protoactor-go's member start ends with a fixed one-second sleep that
	// a Stop must wait out; it is not what this test measures.
	<-e.cluster.Started()
	begin := time.Now()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Fatalf("Stop took %v with nothing running", took)
	}
}

// TestFencing: two activations of one instance run at once (the second is
// forced past the lookup). Both run the activity in flight and record its
// outcome; exactly one append wins, the loser stops without acting on its
// decisions, and the history holds every decision once.
func TestFencing(t *testing.T) {
	reg := NewRegistry()
	release, blocked := make(chan struct{}), make(chan struct{}, 2)
	var afters atomic.Int32
	RegisterActivity(reg, "Block", func(ctx context.Context, _ any) (string, error) {
		blocked <- struct{}{}
		select {
		case <-release:
			return "released", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	RegisterActivity(reg, "After", func(context.Context, any) (string, error) {
		afters.Add(1)
		return "after", nil
	})
	RegisterOrchestrator(reg, "Fenced", func(ctx *orchestration.Context, _ any) (string, error) {
		if err := ctx.CallActivity("Block", nil).Await(nil); err != nil {
			return "", err
		}
		return orchestration.CallActivity[string](ctx, "After", nil).Await()
	})
	e := start(t, Config{Registry: reg})
	c := e.Client()
	ctx := within(t, 30*time.Second)
	if _, err := c.Start(ctx, "Fenced", nil, WithInstanceID("f")); err != nil {
		t.Fatal(err)
	}
	kind := protocluster.NewKind(actors.Kind, e.runtime.Props()).Build(e.cluster.ProtoCluster())
	second := e.cluster.System().Root.Spawn(protocluster.WithClusterIdentity(kind.Props, protocluster.NewClusterIdentity("f", actors.Kind)))
	reply, err := e.cluster.System().Root.RequestFuture(second, &grainpb.Wake{}, 10*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reply.(*grainpb.Ack); !ok {
		t.Fatalf("the second activation answered %v", reply)
	}
	// Each activation runs the activity in flight.
	<-blocked
	<-blocked
	close(release)
	st, err := c.Wait(ctx, "f")
	if err != nil || st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("%v (%v)", st, err)
	}
	if n := afters.Load(); n != 1 {
		t.Fatalf("the next activity ran %d times: the losing activation acted on its decision", n)
	}
	if err := checkHistory(ctx, c, "f"); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptHistory: one instance's stream holds a record that cannot be
// decoded. The engine starts and serves the others; that instance shows as
// failed, with the reason, and refuses requests with a clear error.
func TestCorruptHistory(t *testing.T) {
	reg := NewRegistry()
	RegisterOrchestrator(reg, "Quick", func(_ *orchestration.Context, n int) (int, error) { return n, nil })
	dir := t.TempDir()
	store, err := pebble.Open(pebble.Config{Dir: filepath.Join(dir, "events"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := within(t, 30*time.Second)
	inst := orchestration.NewInstance(reg.Orchestrators(), orchestration.Options{})
	ep, err := inst.Step(time.Now(), orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: "Quick", InstanceID: "bad", Input: []byte("1")})
	inst.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, history.StreamName("bad"), eventstore.NoStream,
		eventstore.EventData{ID: uuid.New(), Type: history.EpisodeType, Data: append(history.AppendEpisode(nil, ep.Events[:2]), 0xff)}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	e := start(t, Config{Dir: dir, Registry: reg})
	c := e.Client()
	st, err := c.Status(ctx, "bad")
	if err != nil || st.RuntimeStatus != orchestration.StatusFailed || st.Failure == nil || !strings.Contains(st.Failure.Message, "corrupt") {
		t.Fatalf("the corrupt instance: %+v (%v)", st, err)
	}
	if err := c.RaiseEvent(ctx, "bad", "x", nil); !errors.Is(err, ErrInstanceNotRunning) || !strings.Contains(err.Error(), "cannot be loaded") {
		t.Fatalf("raising an event on it: %v", err)
	}
	id, err := c.Start(ctx, "Quick", 7)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(ctx, id); err != nil || string(st.Output) != "7" {
		t.Fatalf("another instance: %+v (%v)", st, err)
	}
}

// TestRejectedEpisode: an episode larger than the store takes fails its
// instance with the store's reason; the engine goes on.
func TestRejectedEpisode(t *testing.T) {
	reg := NewRegistry()
	RegisterActivity(reg, "Take", func(_ context.Context, s string) (int, error) { return len(s), nil })
	RegisterOrchestrator(reg, "Huge", func(ctx *orchestration.Context, n int) (int, error) {
		if n < 0 { // an event asks for the fan-out, later
			if err := ctx.WaitForEvent("go").Await(&n); err != nil {
				return 0, err
			}
		}
		big := strings.Repeat("x", 400<<10)
		var tasks []orchestration.Awaitable
		for range n { // three of them make an episode over the 1 MiB an event may hold
			tasks = append(tasks, ctx.CallActivity("Take", big))
		}
		return n, ctx.WhenAll(tasks...).Await(nil)
	})
	e := start(t, Config{Registry: reg})
	c := e.Client()
	ctx := within(t, 30*time.Second)
	// The start is recorded; the instance fails, as one whose code fails at
	// once would.
	if _, err := c.Start(ctx, "Huge", 3, WithInstanceID("huge")); err != nil {
		t.Fatalf("starting an instance whose first episode is too large: %v", err)
	}
	st, err := c.Wait(ctx, "huge")
	if err != nil || st.RuntimeStatus != orchestration.StatusFailed || st.Failure.ErrorType != orchestration.ErrorTypeEpisodeRejected {
		t.Fatalf("%+v (%v)", st, err)
	}
	if !strings.Contains(st.Failure.Message, "over the limit") {
		t.Fatalf("the failure does not say why: %s", st.Failure.Message)
	}
	// A later episode refused: the event that led to it was not recorded,
	// and its sender hears that the instance failed.
	if _, err := c.Start(ctx, "Huge", -1, WithInstanceID("later")); err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, "later", "go", 3); !errors.Is(err, ErrInstanceNotRunning) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("the event whose episode was refused: %v", err)
	}
	if st, err := c.Wait(ctx, "later"); err != nil || st.RuntimeStatus != orchestration.StatusFailed {
		t.Fatalf("%+v (%v)", st, err)
	}
	id, err := c.Start(ctx, "Huge", 1)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Wait(ctx, id); err != nil || st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("the next instance: %+v (%v)", st, err)
	}
}

// TestSendToMissingInstanceIsADeadLetter: an event sent to an instance that
// does not exist is kept as a dead letter with the reason, and once the
// instance exists a redrive delivers it.
func TestSendToMissingInstanceIsADeadLetter(t *testing.T) {
	reg := NewRegistry()
	RegisterOrchestrator(reg, "Sender", func(ctx *orchestration.Context, _ any) (any, error) {
		return nil, ctx.SendEvent("receiver", "ping", "hello")
	})
	RegisterOrchestrator(reg, "Receiver", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.WaitForEvent[string](ctx, "ping").Await()
	})
	bus := &deadLetterWatch{kept: make(chan struct{}, 1)}
	e := start(t, Config{Registry: reg, seams: seams{bus: func(b actors.Bus) actors.Bus { bus.Bus = b; return bus }}})
	c := e.Client()
	ctx := within(t, 30*time.Second)
	if _, err := c.Start(ctx, "Sender", nil, WithInstanceID("sender")); err != nil {
		t.Fatal(err)
	}
	<-bus.kept
	dead, err := c.DeadLetters(ctx, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %+v (%v)", dead, err)
	}
	d := dead[0]
	if d.InstanceID != "receiver" || d.Type != "EventRaised" || !strings.Contains(d.Reason, "does not exist") {
		t.Fatalf("dead letter %+v", d)
	}
	if _, err := c.Start(ctx, "Receiver", nil, WithInstanceID("receiver")); err != nil {
		t.Fatal(err)
	}
	if err := c.RedriveDeadLetter(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, "receiver")
	if err != nil || string(st.Output) != `"hello"` {
		t.Fatalf("the receiver after the redrive: %+v (%v)", st, err)
	}
	if err := c.DiscardDeadLetter(ctx, d.ID); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Fatalf("discarding a redriven dead letter: %v", err)
	}
}

// deadLetterWatch tells when a grain has kept a dead letter.
type deadLetterWatch struct {
	actors.Bus
	kept chan struct{}
}

func (b *deadLetterWatch) DeadLetter(ctx context.Context, topic delivery.Topic, m delivery.Message, reason string) error {
	err := b.Bus.DeadLetter(ctx, topic, m, reason)
	if err == nil {
		b.kept <- struct{}{}
	}
	return err
}

// TestEnginesSideBySide: several engines open, run and stop at once in one
// process, as a user's parallel tests do; under the race detector too.
func TestEnginesSideBySide(t *testing.T) {
	reg := NewRegistry()
	greet := RegisterActivity(reg, "Greet", func(_ context.Context, s string) (string, error) { return "hi " + s, nil })
	RegisterOrchestrator(reg, "Hello", func(ctx *orchestration.Context, s string) (string, error) { return greet.Call(ctx, s).Await() })
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			c := start(t, Config{Registry: reg}).Client()
			ctx := within(t, 30*time.Second)
			id, err := c.Start(ctx, "Hello", fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			if st, err := c.Wait(ctx, id); err != nil || string(st.Output) != fmt.Sprintf(`"hi %d"`, i) {
				t.Fatalf("%+v (%v)", st, err)
			}
		})
	}
}
