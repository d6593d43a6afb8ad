package durable

// Fault injection at the engine's seams: a store whose appends fail, lose
// their reply or stall at random, or that goes away entirely for a while; a
// bus whose acknowledgements are lost or repeated and whose schedules are
// lost. Recovery alone must finish every instance: no test here sends
// anything again to help an instance along.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/delivery"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/orchestration"
)

// errOutage is what the faulty store answers while it is away.
var errOutage = errors.New("injected: the store is unreachable")

// faultyStore wraps a store. A share of appends (rate) fails: half are not
// written, half are written and their reply is lost; another share stalls
// long enough for the cluster to retry the request that led to it. While
// outage is set, every append, read and subscription fails.
type faultyStore struct {
	eventstore.Store
	rate   float64
	outage atomic.Bool
	// Counts of what was injected.
	notWritten, replyLost, stalled atomic.Int64
}

func (s *faultyStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if s.outage.Load() {
		return eventstore.AppendResult{}, errOutage
	}
	switch r := rand.Float64(); {
	case r < s.rate/2:
		s.notWritten.Add(1)
		return eventstore.AppendResult{}, errors.New("injected: the append was not written")
	case r < s.rate:
		if _, err := s.Store.Append(ctx, stream, expected, events...); err != nil {
			return eventstore.AppendResult{}, err
		}
		s.replyLost.Add(1)
		return eventstore.AppendResult{}, errors.New("injected: the append was written and its reply lost")
	case r < s.rate*1.2:
		s.stalled.Add(1)
		select {
		case <-time.After(2500 * time.Millisecond): // past the cluster's request timeout
		case <-ctx.Done():
			return eventstore.AppendResult{}, ctx.Err()
		}
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

func (s *faultyStore) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	if s.outage.Load() {
		return failing(errOutage)
	}
	return s.Store.ReadStream(ctx, stream, opts)
}

func (s *faultyStore) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	if s.outage.Load() {
		return failing(errOutage)
	}
	return s.Store.ReadAll(ctx, opts)
}

// SubscribeToAll ends the subscription with an error when an outage
// begins, as a subscription to a server that went away does.
func (s *faultyStore) SubscribeToAll(ctx context.Context, opts eventstore.SubscribeAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	if s.outage.Load() {
		return failing(errOutage)
	}
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		for ev, err := range s.Store.SubscribeToAll(ctx, opts) {
			if s.outage.Load() {
				yield(eventstore.RecordedEvent{}, errOutage)
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

func failing(err error) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) { yield(eventstore.RecordedEvent{}, err) }
}

// faultyHandler loses the acknowledgement of a share of bus messages
// (handled, then reported failed: the bus delivers them again) and hands
// another share to the grain twice.
func faultyHandler(rate float64, lost, repeated *atomic.Int64) func(delivery.Handler) delivery.Handler {
	return func(h delivery.Handler) delivery.Handler {
		return func(ctx context.Context, topic delivery.Topic, m delivery.Message) error {
			switch r := rand.Float64(); {
			case r < rate:
				if err := h(ctx, topic, m); err != nil {
					return err
				}
				lost.Add(1)
				return errors.New("injected: acknowledgement lost")
			case r < 2*rate:
				repeated.Add(1)
				if err := h(ctx, topic, m); err != nil {
					return err
				}
			}
			return h(ctx, topic, m)
		}
	}
}

// lossyBus drops a share of timer schedules without a word, as a crash
// between an episode's append and its acts would.
type lossyBus struct {
	actors.Bus
	rate    float64
	dropped atomic.Int64
}

func (b *lossyBus) Schedule(ctx context.Context, at time.Time, m delivery.Message) error {
	if rand.Float64() < b.rate {
		b.dropped.Add(1)
		return nil
	}
	return b.Bus.Schedule(ctx, at, m)
}

// faultKinds are the orchestrations of the fault tests, with the output
// each must end with for input n.
var faultKinds = []struct {
	name string
	want func(n int) string
}{
	{"FChain", func(n int) string { return fmt.Sprint(n + 3) }},
	{"FFan", func(n int) string { return fmt.Sprint(10*n + 45 + 10) }},
	{"FMonitor", func(n int) string { return fmt.Sprint(n + 3) }},
	{"FApproval", nil}, // approved or timed out: which came first, see approvalWant
	{"FParent", func(n int) string { return fmt.Sprint(2*n + 5) }},
	{"FEternal", func(n int) string { return fmt.Sprint(n + 3) }},
	{"FAdder", func(int) string { return "3" }},
}

func faultRegistry() *Registry {
	reg := NewRegistry()
	inc := RegisterActivity(reg, "Inc", func(_ context.Context, n int) (int, error) { return n + 1, nil })
	chain := func(ctx *orchestration.Context, n, steps int, pause time.Duration) (int, error) {
		for range steps {
			var err error
			if n, err = inc.Call(ctx, n).Await(); err != nil {
				return 0, err
			}
			if pause > 0 {
				if err := orchestration.Sleep(ctx, pause); err != nil {
					return 0, err
				}
			}
		}
		return n, nil
	}
	RegisterOrchestrator(reg, "FChain", func(ctx *orchestration.Context, n int) (int, error) { return chain(ctx, n, 3, 0) })
	RegisterOrchestrator(reg, "FMonitor", func(ctx *orchestration.Context, n int) (int, error) {
		return chain(ctx, n, 3, 50*time.Millisecond)
	})
	RegisterOrchestrator(reg, "FFan", func(ctx *orchestration.Context, n int) (int, error) {
		var fs []orchestration.Future[int]
		var tasks []orchestration.Awaitable
		for i := range 10 {
			f := inc.Call(ctx, n+i)
			fs, tasks = append(fs, f), append(tasks, f)
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, f := range fs {
			v, _ := f.Await()
			sum += v
		}
		return sum, nil
	})
	RegisterOrchestrator(reg, "FApproval", func(ctx *orchestration.Context, _ int) (string, error) {
		_, err := orchestration.WaitForEvent[bool](ctx, "Approval", orchestration.WithTimeout(2*time.Second)).Await()
		if errors.Is(err, orchestration.ErrTimeout) {
			return "timed out", nil
		}
		return "approved", err
	})
	child := RegisterOrchestrator(reg, "FChild", func(ctx *orchestration.Context, n int) (int, error) { return chain(ctx, n, 2, 0) })
	RegisterOrchestrator(reg, "FParent", func(ctx *orchestration.Context, n int) (int, error) {
		a, b := child.CallSub(ctx, n), child.CallSub(ctx, n+1)
		if err := ctx.WhenAll(a, b).Await(nil); err != nil {
			return 0, err
		}
		x, _ := a.Await()
		y, _ := b.Await()
		return x + y, nil
	})
	RegisterOrchestrator(reg, "FEternal", func(ctx *orchestration.Context, n int) (int, error) {
		if ctx.Generation() == 3 {
			return n, nil
		}
		v, err := inc.Call(ctx, n).Await()
		if err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(v)
	})
	RegisterOrchestrator(reg, "FAdder", func(ctx *orchestration.Context, n int) (int, error) {
		if n >= 3 {
			return n, nil
		}
		d, err := orchestration.WaitForEvent[int](ctx, "Add").Await()
		if err != nil {
			return 0, err
		}
		return 0, ctx.ContinueAsNew(n + d)
	})
	return reg
}

// quietLogger keeps the fault tests' output to errors: the warnings of
// every injected failure would drown it.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// runFaultWorkload starts perKind instances of every fault kind (raising
// the events the approvals and adders wait for, each once), waits until
// every one has ended, and checks each history.
func runFaultWorkload(t *testing.T, c *Client, perKind int, during func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	type job struct {
		id, kind string
		n        int
	}
	var jobs []job
	for _, k := range faultKinds {
		for n := range perKind {
			jobs = append(jobs, job{id: fmt.Sprintf("%s-%04d", k.name, n), kind: k.name, n: n})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	var g errgroup.Group
	g.SetLimit(64)
	for _, j := range jobs {
		g.Go(func() error {
			input := j.n
			if j.kind == "FAdder" {
				input = 0 // it adds the three events it is sent
			}
			if _, err := c.Start(ctx, j.kind, input, WithInstanceID(j.id)); err != nil {
				return fmt.Errorf("start %s: %w", j.id, err)
			}
			switch {
			case j.kind == "FApproval" && j.n%2 == 0:
				// A stalled append may delay the event past the timeout.
				if err := c.RaiseEvent(ctx, j.id, "Approval", true); err != nil && !errors.Is(err, ErrInstanceNotRunning) {
					return err
				}
			case j.kind == "FAdder":
				for range 3 { // back to back: some land in one episode
					if err := c.RaiseEvent(ctx, j.id, "Add", 1); err != nil {
						h, _ := c.History(ctx, j.id)
						var desc []string
						for _, ev := range h {
							desc = append(desc, fmt.Sprintf("%s %s %v", ev.Kind, ev.RequestID, ev.RequestIDs))
						}
						return fmt.Errorf("raise on %s: %w; history %q", j.id, err, desc)
					}
				}
			}
			return nil
		})
	}
	if during != nil {
		during()
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		g.Go(func() error {
			st, err := c.Wait(ctx, j.id)
			if err != nil {
				return fmt.Errorf("%s never ended: %w", j.id, err)
			}
			want := ""
			for _, k := range faultKinds {
				if k.name == j.kind && k.want != nil {
					want = k.want(j.n)
				}
			}
			if j.kind == "FApproval" {
				if want, err = approvalWant(ctx, c, j.id); err != nil {
					return err
				}
			}
			if st.RuntimeStatus != orchestration.StatusCompleted || string(st.Output) != want {
				return fmt.Errorf("%s is %s with output %s (failure %v), want Completed with %s", j.id, st.RuntimeStatus, st.Output, st.Failure, want)
			}
			return checkHistory(ctx, c, j.id)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// approvalWant is the output of an approval: approved if the event came
// before the timeout fired.
func approvalWant(ctx context.Context, c *Client, id string) (string, error) {
	h, err := c.History(ctx, id)
	if err != nil {
		return "", err
	}
	for _, ev := range h {
		switch ev.Kind {
		case orchestration.EventRaised:
			return `"approved"`, nil
		case orchestration.TimerFired:
			return `"timed out"`, nil
		}
	}
	return "", fmt.Errorf("%s ended with neither its event nor its timeout", id)
}

// checkHistory checks that an instance's current generation has one start
// and one completion, no decision twice, and exactly one outcome for every
// activity and sub-orchestration it scheduled.
func checkHistory(ctx context.Context, c *Client, id string) error {
	h, err := c.History(ctx, id)
	if err != nil {
		return err
	}
	starts, completions := 0, 0
	decided := map[int32]orchestration.EventKind{}
	outcomes := map[int32]int{}
	for _, ev := range h {
		switch {
		case ev.Kind == orchestration.ExecutionStarted:
			starts++
		case ev.Kind == orchestration.ExecutionCompleted:
			completions++
		case ev.Kind == orchestration.TaskScheduled || ev.Kind == orchestration.SubOrchestrationInstanceCreated || ev.Kind == orchestration.TimerCreated:
			if _, twice := decided[ev.EventID]; twice {
				return fmt.Errorf("%s: decision #%d recorded twice", id, ev.EventID)
			}
			decided[ev.EventID] = ev.Kind
		case ev.Kind.IsOutcome():
			outcomes[ev.EventID]++
		}
	}
	if starts != 1 || completions != 1 {
		return fmt.Errorf("%s: %d starts and %d completions in its history", id, starts, completions)
	}
	for seq, kind := range decided {
		if kind != orchestration.TimerCreated && outcomes[seq] != 1 {
			return fmt.Errorf("%s: %s #%d has %d outcomes", id, kind, seq, outcomes[seq])
		}
		if outcomes[seq] > 1 {
			return fmt.Errorf("%s: timer #%d fired %d times", id, seq, outcomes[seq])
		}
	}
	return nil
}

// openFaulty opens an engine on a Pebble store in dir wrapped by store.
func openFaulty(t *testing.T, dir string, store *faultyStore, seams seams) (*Engine, func()) {
	t.Helper()
	inner, err := pebble.Open(pebble.Config{Dir: filepath.Join(dir, "events"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	store.Store = inner
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, Config{Dir: dir, Registry: faultRegistry(), Logger: quietLogger(), Store: store,
		ShutdownTimeout: 10 * time.Second, seams: seams})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		store.outage.Store(false)
		begin := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		// Its own timeout and the cluster's, and no more.
		if took := time.Since(begin); took > 10*time.Second+5*time.Second {
			t.Errorf("Stop took %v", took)
		}
		if err := inner.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	}
	return e, stop
}

// checkNothingLeft checks invariant 6 and that nothing became a dead letter.
func checkNothingLeft(t *testing.T, e *Engine) {
	t.Helper()
	if s := e.Stranded(); len(s) > 0 {
		t.Errorf("stranded instances: %v", s)
	}
	dead, err := e.Client().DeadLetters(context.Background(), 10)
	if err != nil || len(dead) > 0 {
		t.Errorf("dead letters: %+v (%v)", dead, err)
	}
}

// TestFaultInjection runs every pattern through a store that fails 3% of
// appends (half lost before the write, half after), stalls 0.6% past the
// cluster's request timeout, and a bus that loses 2% of acknowledgements,
// repeats 2% of deliveries and drops 1% of timer schedules. Every instance
// must end with its right output and a clean history, with no help.
func TestFaultInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection test runs 2,800 instances through injected failures; run without -short")
	}
	var lostAcks, repeated atomic.Int64
	store := &faultyStore{rate: 0.03}
	bus := &lossyBus{rate: 0.01}
	e, stop := openFaulty(t, t.TempDir(), store, seams{
		handler: faultyHandler(0.02, &lostAcks, &repeated),
		bus:     func(b actors.Bus) actors.Bus { bus.Bus = b; return bus },
	})
	defer stop()
	begin := time.Now()
	runFaultWorkload(t, e.Client(), 400, nil)
	checkNothingLeft(t, e)
	t.Logf("%d instances completed in %v through %d appends not written, %d written with the reply lost, %d stalled; %d acks lost, %d deliveries repeated, %d schedules lost",
		400*len(faultKinds), time.Since(begin).Round(time.Millisecond), store.notWritten.Load(), store.replyLost.Load(), store.stalled.Load(),
		lostAcks.Load(), repeated.Load(), bus.dropped.Load())
	if store.notWritten.Load() == 0 || store.replyLost.Load() == 0 || lostAcks.Load() == 0 || bus.dropped.Load() == 0 {
		t.Fatal("a kind of fault was never injected: the test proved less than it claims")
	}
}

// TestStoreOutage: the store goes away for 16 seconds while instances wait
// on timers and activities (long enough that the bus would once have given
// up on the fired timers), then comes back. Everything finishes, nothing is
// a dead letter, no instance is stranded.
func TestStoreOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("the outage test keeps the store away for 16 seconds; run without -short")
	}
	store := &faultyStore{}
	e, stop := openFaulty(t, t.TempDir(), store, seams{})
	defer stop()
	runFaultWorkload(t, e.Client(), 20, func() {
		time.Sleep(200 * time.Millisecond) // the outage begins while they run
		store.outage.Store(true)
		time.Sleep(16 * time.Second)
		store.outage.Store(false)
	})
	checkNothingLeft(t, e)
}
