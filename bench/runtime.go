package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/internal/storeload"
	"github.com/durableactor/durable/orchestration"
)

// engineFor opens an engine with the bench's orchestrations in a new
// directory for the named scenario, on the embedded defaults or, with
// -backend memory, on an in-memory event store.
func engineFor(ctx context.Context, cfg config, name string, tweak func(*durable.Config)) (*durable.Engine, func(), error) {
	dir, removeDir, err := scenarioDir(cfg, name)
	if err != nil {
		return nil, nil, err
	}
	reg := durable.NewRegistry()
	echo := durable.RegisterActivity(reg, "Echo", func(_ context.Context, n int) (int, error) { return n + 1, nil })
	durable.RegisterOrchestrator(reg, "Chain3", func(ctx *orchestration.Context, n int) (int, error) {
		for range 3 {
			var err error
			if n, err = echo.Call(ctx, n).Await(); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	durable.RegisterOrchestrator(reg, "FanOut", func(ctx *orchestration.Context, width int) (int, error) {
		tasks := make([]orchestration.Awaitable, width)
		for i := range width {
			tasks[i] = echo.Call(ctx, i)
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, t := range tasks {
			v, _ := t.(orchestration.Future[int]).Await()
			sum += v
		}
		return sum, nil
	})
	durable.RegisterOrchestrator(reg, "Parked", func(ctx *orchestration.Context, n int) (string, error) {
		if n%2 == 0 {
			return "timer", orchestration.Sleep(ctx, 72*time.Hour)
		}
		return orchestration.WaitForEvent[string](ctx, "Approval").Await()
	})
	dcfg := durable.Config{Dir: dir, Registry: reg, Logger: cfg.log}
	// The engine does not close a store it was given.
	closeStore := func() {}
	if cfg.backend == "memory" {
		s := memory.New(memory.Config{})
		dcfg.Store, closeStore = s, func() { s.Close() }
	}
	if tweak != nil {
		tweak(&dcfg)
	}
	e, err := durable.Open(ctx, dcfg)
	if err == nil {
		if err = e.Start(ctx); err != nil {
			e.Stop(context.Background())
		}
	}
	if err != nil {
		closeStore()
		removeDir()
		return nil, nil, err
	}
	return e, func() {
		e.Stop(context.Background())
		closeStore()
		removeDir()
	}, nil
}

// load starts orchestrations from inflight goroutines for the duration
// (each at least one, however short the duration) and waits for each to
// complete, recording start-to-completion latency.
func load(ctx context.Context, c *durable.Client, inflight int, duration time.Duration, name string, input func(i int) any, check func(i int, st *durable.Status) error) ([]time.Duration, time.Duration, error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		next      atomic.Int64
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := true; first || time.Now().Before(deadline); first = false {
				i := int(next.Add(1))
				began := time.Now()
				id, err := c.Start(ctx, name, input(i))
				if err == nil {
					var st *durable.Status
					if st, err = c.Wait(ctx, id); err == nil {
						err = check(i, st)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				latencies = append(latencies, time.Since(began))
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return latencies, time.Since(start), firstErr
}

func runChain(ctx context.Context, cfg config) ([]result, error) {
	e, closeEngine, err := engineFor(ctx, cfg, "chain", nil)
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	inflight := orDefault(cfg.inflight, 100)
	lat, elapsed, err := load(ctx, e.Client(), inflight, cfg.duration, "Chain3",
		func(i int) any { return i },
		func(i int, st *durable.Status) error {
			var out int
			if err := st.DecodeOutput(&out); err != nil || st.RuntimeStatus != orchestration.StatusCompleted || out != i+3 {
				return fmt.Errorf("chain %d ended %s with %s (%v)", i, st.RuntimeStatus, st.Output, st.Failure)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	slices.Sort(lat)
	n := float64(len(lat))
	return []result{{
		Scenario: "chain",
		Params:   map[string]any{"backend": cfg.backend, "activities": 3, "inflight": inflight},
		Metrics: map[string]float64{
			"orchestrations_per_sec": n / elapsed.Seconds(),
			"activities_per_sec":     3 * n / elapsed.Seconds(),
			"p50_ms":                 ms(storeload.Percentile(lat, 50)),
			"p99_ms":                 ms(storeload.Percentile(lat, 99)),
		},
	}}, nil
}

func runFanOut(ctx context.Context, cfg config) ([]result, error) {
	e, closeEngine, err := engineFor(ctx, cfg, "fanout", nil)
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	width := orDefault(cfg.width, 100)
	inflight := orDefault(cfg.inflight, 20)
	want := width * (width + 1) / 2
	lat, elapsed, err := load(ctx, e.Client(), inflight, cfg.duration, "FanOut",
		func(int) any { return width },
		func(i int, st *durable.Status) error {
			var out int
			if err := st.DecodeOutput(&out); err != nil || st.RuntimeStatus != orchestration.StatusCompleted || out != want {
				return fmt.Errorf("fan-out %d ended %s with %s (%v)", i, st.RuntimeStatus, st.Output, st.Failure)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	slices.Sort(lat)
	n := float64(len(lat))
	return []result{{
		Scenario: "fanout",
		Params:   map[string]any{"backend": cfg.backend, "width": width, "inflight": inflight},
		Metrics: map[string]float64{
			"orchestrations_per_sec": n / elapsed.Seconds(),
			"activities_per_sec":     float64(width) * n / elapsed.Seconds(),
			"p50_ms":                 ms(storeload.Percentile(lat, 50)),
			"p99_ms":                 ms(storeload.Percentile(lat, 99)),
		},
	}}, nil
}

// runParked starts many instances that wait on a 72-hour timer or an
// event, lets them passivate, and reports the memory they hold.
func runParked(ctx context.Context, cfg config) ([]result, error) {
	instances := orDefault(cfg.instances, 100_000)
	e, closeEngine, err := engineFor(ctx, cfg, "parked", func(c *durable.Config) { c.IdleTimeout = time.Second })
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	c := e.Client()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= instances; i = int(next.Add(1)) {
				if _, err := c.Start(ctx, "Parked", i, durable.WithInstanceID(fmt.Sprintf("parked-%d", i))); err != nil {
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
	started := time.Since(start)
	// Every instance must be running (waiting), none done.
	for _, i := range []int{1, 2, instances / 2, instances} {
		st, err := c.Status(ctx, fmt.Sprintf("parked-%d", i))
		if err != nil {
			return nil, err
		}
		if st.RuntimeStatus != orchestration.StatusRunning {
			return nil, fmt.Errorf("parked instance %d is %s", i, st.RuntimeStatus)
		}
	}
	// Let the grains passivate, then measure what stays.
	for deadline := time.Now().Add(time.Minute); e.ActiveInstances() > 0; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d instances still active a minute after they were parked", e.ActiveInstances())
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	debug.FreeOSMemory()
	metrics := map[string]float64{"starts_per_sec": float64(instances) / started.Seconds()}
	if rss, ok := rssMiB(); ok {
		metrics["rss_mib"] = rss
	}
	return []result{{
		Scenario: "parked",
		Params:   map[string]any{"backend": cfg.backend, "instances": instances},
		Metrics:  metrics,
	}}, nil
}

// runSoak runs chain for the soak duration and samples the resident
// memory every second: what it holds after a sixth of the run (20 s of
// the default 120 s) must still be what it holds at the end, within 10%.
func runSoak(ctx context.Context, cfg config) ([]result, error) {
	if _, ok := rssMiB(); !ok {
		return nil, fmt.Errorf("this platform cannot tell the resident memory")
	}
	e, closeEngine, err := engineFor(ctx, cfg, "soak", nil)
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	inflight := orDefault(cfg.inflight, 100)
	early := cfg.soak / 6
	var samples []float64 // one a second; early and end are the medians of their last five
	var earlyRSS float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		began := time.Now()
		tick := time.NewTicker(min(time.Second, max(cfg.soak/12, time.Millisecond)))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rss, _ := rssMiB()
			samples = append(samples, rss)
			if len(samples)%10 == 0 {
				fmt.Fprintf(cfg.stderr, "bench: soak at %s: %.0f MiB resident\n", time.Since(began).Round(time.Second), rss)
			}
			if earlyRSS == 0 && time.Since(began) >= early {
				earlyRSS = median(samples[max(0, len(samples)-5):])
			}
		}
	}()
	lat, elapsed, err := load(ctx, e.Client(), inflight, cfg.soak, "Chain3",
		func(i int) any { return i },
		func(i int, st *durable.Status) error {
			var out int
			if err := st.DecodeOutput(&out); err != nil || st.RuntimeStatus != orchestration.StatusCompleted || out != i+3 {
				return fmt.Errorf("chain %d ended %s with %s (%v)", i, st.RuntimeStatus, st.Output, st.Failure)
			}
			return nil
		})
	close(stop)
	<-sampled
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 || earlyRSS == 0 {
		rss, _ := rssMiB()
		samples, earlyRSS = append(samples, rss), rss
	}
	endRSS := median(samples[max(0, len(samples)-5):])
	growth := 100 * (endRSS - earlyRSS) / earlyRSS
	if cfg.soak >= time.Minute && growth > 10 {
		return nil, fmt.Errorf("resident memory grew %.1f%% from %.0f MiB after %s to %.0f MiB at the end", growth, earlyRSS, early, endRSS)
	}
	return []result{{
		Scenario: "soak",
		Params:   map[string]any{"backend": cfg.backend, "inflight": inflight, "seconds": int(cfg.soak.Seconds())},
		Metrics: map[string]float64{
			"orchestrations_per_sec": float64(len(lat)) / elapsed.Seconds(),
			"rss_early_mib":          earlyRSS,
			"rss_end_mib":            endRSS,
			"growth_pct":             max(growth, 0.01),
		},
	}}, nil
}
