package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/internal/storeload"
	"github.com/durableactor/durable/orchestration"
)

// entityEngine opens an engine with the bench's entities: "tally", a
// counter, and "CallTally", an orchestration that calls it once and returns
// how long the call took between its episodes, in microseconds.
func entityEngine(ctx context.Context, cfg config, name string, tweak func(*durable.Config)) (*durable.Engine, durable.EntityRef, func(), error) {
	var tally durable.EntityRef
	e, closeEngine, err := engineFor(ctx, cfg, name, func(c *durable.Config) {
		tally = durable.RegisterEntity(c.Registry, "tally", entities.Ops[int]{
			"add": entities.Update(func(_ *entities.Context, n *int, d int) error { *n += d; return nil }),
			"get": entities.Do(func(_ *entities.Context, n *int, _ struct{}) (int, error) { return *n, nil }),
		})
		durable.RegisterOrchestrator(c.Registry, "CallTally", func(ctx *orchestration.Context, key string) (int64, error) {
			began := ctx.Now()
			if err := ctx.CallEntity(tally.ID(key), "add", 1).Await(nil); err != nil {
				return 0, err
			}
			return ctx.Now().Sub(began).Microseconds(), nil
		})
		if tweak != nil {
			tweak(c)
		}
	})
	return e, tally, closeEngine, err
}

// signalLoad sends add-1 signals from clients goroutines for the duration
// (each at least one), to the entity keys pick chooses, and returns how
// many were acknowledged and how long it took.
func signalLoad(ctx context.Context, c *durable.Client, tally durable.EntityRef, clients int, duration time.Duration, pick func(r *rand.Rand) string) (int64, time.Duration, error) {
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	deadline := time.Now().Add(duration)
	start := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for first := true; first || time.Now().Before(deadline); first = false {
				if err := c.SignalEntity(ctx, tally.ID(pick(r)), "add", 1); err != nil {
					errs <- err
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return sent.Load(), time.Since(start), <-errs
}

// sumOf reads the tallies of keys from their streams and adds them up.
func sumOf(ctx context.Context, c *durable.Client, tally durable.EntityRef, keys int) (int64, error) {
	var sum int64
	for k := range keys {
		var n int
		if _, err := c.EntityState(ctx, tally.ID(fmt.Sprint(k)), &n); err != nil {
			return 0, err
		}
		sum += int64(n)
	}
	return sum, nil
}

func runEntitySignal(ctx context.Context, cfg config) ([]result, error) {
	e, tally, closeEngine, err := entityEngine(ctx, cfg, "entity-signal", nil)
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	keys, clients := orDefault(cfg.entities, 1000), orDefault(cfg.clients, 100)
	c := e.Client()
	sent, elapsed, err := signalLoad(ctx, c, tally, clients, cfg.duration, func(r *rand.Rand) string { return fmt.Sprint(r.IntN(keys)) })
	if err != nil {
		return nil, err
	}
	if sum, err := sumOf(ctx, c, tally, keys); err != nil || sum != sent {
		return nil, fmt.Errorf("the tallies add up to %d after %d acknowledged signals (%v)", sum, sent, err)
	}
	return []result{{
		Scenario: "entity-signal",
		Params:   map[string]any{"backend": cfg.backend, "entities": keys, "clients": clients},
		Metrics:  map[string]float64{"ops_per_sec": float64(sent) / elapsed.Seconds()},
	}}, nil
}

func runEntityHot(ctx context.Context, cfg config) ([]result, error) {
	e, tally, closeEngine, err := entityEngine(ctx, cfg, "entity-hot", nil)
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	clients := orDefault(cfg.clients, 100)
	c := e.Client()
	sent, elapsed, err := signalLoad(ctx, c, tally, clients, cfg.duration, func(*rand.Rand) string { return "0" })
	if err != nil {
		return nil, err
	}
	var got int
	if err := c.CallEntity(ctx, tally.ID("0"), "get", nil, &got); err != nil || int64(got) != sent {
		return nil, fmt.Errorf("the hot tally is %d after %d acknowledged signals (%v)", got, sent, err)
	}
	return []result{{
		Scenario: "entity-hot",
		Params:   map[string]any{"backend": cfg.backend, "clients": clients},
		Metrics:  map[string]float64{"ops_per_sec": float64(sent) / elapsed.Seconds()},
	}}, nil
}

func runEntityCall(ctx context.Context, cfg config) ([]result, error) {
	e, tally, closeEngine, err := entityEngine(ctx, cfg, "entity-call", nil)
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	inflight := orDefault(cfg.inflight, 20)
	const keys = 1000
	var mu sync.Mutex
	var calls []time.Duration
	c := e.Client()
	var next atomic.Int64
	_, elapsed, err := load(ctx, c, inflight, cfg.duration, "CallTally",
		func(i int) any { return fmt.Sprint(int(next.Add(1)) % keys) },
		func(i int, st *durable.Status) error {
			var us int64
			if err := st.DecodeOutput(&us); err != nil || st.RuntimeStatus != orchestration.StatusCompleted {
				return fmt.Errorf("call %d ended %s with %s (%v)", i, st.RuntimeStatus, st.Output, st.Failure)
			}
			mu.Lock()
			calls = append(calls, time.Duration(us)*time.Microsecond)
			mu.Unlock()
			return nil
		})
	if err != nil {
		return nil, err
	}
	if sum, err := sumOf(ctx, c, tally, keys); err != nil || sum != int64(len(calls)) {
		return nil, fmt.Errorf("the tallies add up to %d after %d calls (%v)", sum, len(calls), err)
	}
	slices.Sort(calls)
	return []result{{
		Scenario: "entity-call",
		Params:   map[string]any{"backend": cfg.backend, "inflight": inflight},
		Metrics: map[string]float64{
			"ops_per_sec": float64(len(calls)) / elapsed.Seconds(),
			"p50_ms":      ms(storeload.Percentile(calls, 50)),
			"p99_ms":      ms(storeload.Percentile(calls, 99)),
		},
	}}, nil
}

func runEntityParked(ctx context.Context, cfg config) ([]result, error) {
	n := orDefault(cfg.instances, 100_000)
	e, tally, closeEngine, err := entityEngine(ctx, cfg, "entity-parked", func(c *durable.Config) { c.IdleTimeout = time.Second })
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	c := e.Client()
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := next.Add(1) - 1; k < int64(n); k = next.Add(1) - 1 {
				if err := c.SignalEntity(ctx, tally.ID(fmt.Sprint(k)), "add", 1); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	sent := int64(n)
	started := time.Since(start)
	for _, k := range []int64{0, sent / 2, sent - 1} {
		var v int
		if has, err := c.EntityState(ctx, tally.ID(fmt.Sprint(k)), &v); err != nil || !has || v != 1 {
			return nil, fmt.Errorf("entity %d holds %d (%v, %v)", k, v, has, err)
		}
	}
	for deadline := time.Now().Add(time.Minute); e.ActiveEntities() > 0; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d entities still active a minute after their signal", e.ActiveEntities())
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	debug.FreeOSMemory()
	metrics := map[string]float64{"ops_per_sec": float64(sent) / started.Seconds()}
	if rss, ok := rssMiB(); ok {
		metrics["rss_mib"] = rss
	}
	return []result{{
		Scenario: "entity-parked",
		Params:   map[string]any{"backend": cfg.backend, "instances": sent},
		Metrics:  metrics,
	}}, nil
}
