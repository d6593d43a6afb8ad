package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/httpapi"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/storeload"
	"github.com/durableactor/durable/orchestration"
)

// A dataset is a data directory holding many instances, built once per
// run and shared by the reopen, list and purge scenarios (purge last, as
// it deletes). Instance i ("inst-0000042") waits for an event when i is a
// multiple of 10 (Running), fails when a multiple of 7, and completes
// otherwise.
type dataset struct {
	dir       string
	remove    func()
	store     eventstore.Store // the memory backend's store, kept across opens
	instances int
	// built is how long building it took, index included.
	built time.Duration
	// purged is set once the purge scenario has deleted some of it.
	purged bool
}

var (
	datasetMu sync.Mutex
	datasets  = map[string]*dataset{}
)

// removeDatasets deletes the run's datasets.
func removeDatasets() {
	datasetMu.Lock()
	defer datasetMu.Unlock()
	for k, d := range datasets {
		if d.store != nil {
			d.store.Close()
		}
		d.remove()
		delete(datasets, k)
	}
}

func instanceID(i int) string { return fmt.Sprintf("inst-%07d", i) }

func datasetRegistry() *durable.Registry {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Done", func(ctx *orchestration.Context, n int) (int, error) {
		switch {
		case n%10 == 0:
			return orchestration.WaitForEvent[int](ctx, "go").Await()
		case n%7 == 0:
			return 0, errors.New("seven")
		}
		return n, nil
	})
	return reg
}

// datasetFor returns the run's dataset of cfg.instances instances, building
// it through the engine the first time.
func datasetFor(ctx context.Context, cfg config, purge bool) (*dataset, error) {
	n := orDefault(cfg.instances, 1_000_000)
	key := fmt.Sprint(cfg.backend, n)
	datasetMu.Lock()
	defer datasetMu.Unlock()
	if d, ok := datasets[key]; ok && !d.purged {
		d.purged = purge
		return d, nil
	}
	dir, remove, err := scenarioDir(cfg, "dataset")
	if err != nil {
		return nil, err
	}
	d := &dataset{dir: dir, remove: remove, instances: n, purged: purge}
	if cfg.backend == "memory" {
		d.store = memory.New(memory.Config{})
	}
	fmt.Fprintf(cfg.stderr, "bench: building a data directory of %d instances\n", n)
	began := time.Now()
	e, err := d.open(ctx, cfg, time.Second) // passivate the ended instances soon
	if err != nil {
		return nil, err
	}
	c := e.Client()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				if _, err := c.Start(ctx, "Done", i, durable.WithInstanceID(instanceID(i))); err != nil {
					errs <- err
					return
				}
				if i%100_000 == 0 {
					fmt.Fprintf(cfg.stderr, "bench: %d instances started\n", i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		e.Stop(ctx)
		return nil, err
	}
	// Each start was recorded with its first episode, which ended the
	// instance or left it waiting: the data is complete.
	if err := e.Stop(ctx); err != nil {
		return nil, err
	}
	d.built = time.Since(began)
	datasets[key] = d
	return d, nil
}

// open opens and starts an engine on the dataset (idle: its grains' idle
// timeout, the default when zero).
func (d *dataset) open(ctx context.Context, cfg config, idle time.Duration) (*durable.Engine, error) {
	e, err := durable.Open(ctx, durable.Config{Dir: d.dir, Registry: datasetRegistry(), Logger: cfg.log, Store: d.store, IdleTimeout: idle})
	if err != nil {
		return nil, err
	}
	if err := e.Start(ctx); err != nil {
		e.Stop(context.Background())
		return nil, err
	}
	return e, nil
}

// runReopen measures Open+Start of a data directory holding many
// instances: the index reads only what the log holds after its checkpoint.
// It also rebuilds the index from the whole log, for comparison.
func runReopen(ctx context.Context, cfg config) ([]result, error) {
	d, err := datasetFor(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	var opens []time.Duration
	var rssAfter []float64 // resident memory once open
	for range 3 {
		began := time.Now()
		e, err := d.open(ctx, cfg, 0)
		if err != nil {
			return nil, err
		}
		opens = append(opens, time.Since(began))
		runtime.GC()
		debug.FreeOSMemory()
		if rss, ok := rssMiB(); ok {
			rssAfter = append(rssAfter, rss)
		}
		st, err := e.Client().Status(ctx, instanceID(d.instances))
		if err == nil && st.Name != "Done" {
			err = fmt.Errorf("the reopened engine knows instance %d as %+v", d.instances, st)
		}
		if stopErr := e.Stop(ctx); err == nil {
			err = stopErr
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(opens)
	metrics := map[string]float64{"ms": ms(storeload.Percentile(opens, 50)), "build_s": d.built.Seconds()}
	if len(rssAfter) > 0 {
		metrics["open_rss_mib"] = median(rssAfter)
	}
	if d.store == nil {
		// Rebuilding the index from the whole log, for comparison (the
		// engine is stopped, as Rebuild requires).
		store, err := pebble.Open(pebble.Config{Dir: filepath.Join(d.dir, "events"), Logger: cfg.log})
		if err != nil {
			return nil, err
		}
		began := time.Now()
		err = index.Rebuild(ctx, index.Config{Store: store, Dir: filepath.Join(d.dir, "index"), Logger: cfg.log})
		store.Close()
		if err != nil {
			return nil, err
		}
		metrics["rebuild_ms"] = ms(time.Since(began))
	}
	return []result{{Scenario: "reopen", Params: map[string]any{"backend": cfg.backend, "instances": d.instances}, Metrics: metrics}}, nil
}

// runList reads pages of 100 from the dataset's index with the filters a
// user would use, each from a random point of its ordering, and checks
// every page.
func runList(ctx context.Context, cfg config) ([]result, error) {
	d, err := datasetFor(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	e, err := d.open(ctx, cfg, 0)
	if err != nil {
		return nil, err
	}
	defer e.Stop(ctx)
	c := e.Client()
	first, err := c.Status(ctx, instanceID(1))
	if err != nil {
		return nil, err
	}
	last, err := c.Status(ctx, instanceID(d.instances))
	if err != nil {
		return nil, err
	}
	span := last.CreatedAt.Sub(first.CreatedAt)
	r := rand.New(rand.NewPCG(1, 2))
	running := []orchestration.Status{orchestration.StatusRunning}
	completed := []orchestration.Status{orchestration.StatusCompleted}
	var latencies []time.Duration
	deadline := time.Now().Add(cfg.duration)
	for n := 0; n < 40 || time.Now().Before(deadline); n++ {
		from := first.CreatedAt.Add(time.Duration(r.Int64N(int64(span/2) + 1)))
		var q durable.Query
		switch n % 4 {
		case 0:
			q = durable.Query{CreatedFrom: from}
		case 1:
			q = durable.Query{RuntimeStatus: running, CreatedFrom: from}
		case 2:
			q = durable.Query{RuntimeStatus: completed, Name: "Done", CreatedFrom: from}
		case 3:
			q = durable.Query{InstanceIDPrefix: instanceID(r.IntN(d.instances/2 + 1))[:min(10, len(instanceID(0))-1)]}
		}
		q.PageSize = 100
		began := time.Now()
		page, err := c.List(ctx, q)
		latencies = append(latencies, time.Since(began))
		if err != nil {
			return nil, err
		}
		if err := checkPage(q, page, d.instances); err != nil {
			return nil, err
		}
	}
	slices.Sort(latencies)
	return []result{{
		Scenario: "list",
		Params:   map[string]any{"backend": cfg.backend, "instances": d.instances, "page": 100},
		Metrics:  map[string]float64{"p50_ms": ms(storeload.Percentile(latencies, 50)), "p99_ms": ms(storeload.Percentile(latencies, 99))},
	}}, nil
}

// checkPage checks that a page holds what its query selects.
func checkPage(q durable.Query, page *durable.InstancePage, instances int) error {
	if len(page.Instances) == 0 && instances >= 1000 {
		return fmt.Errorf("an empty page for %+v", q)
	}
	for _, st := range page.Instances {
		var i int
		fmt.Sscanf(st.InstanceID, "inst-%d", &i)
		want := orchestration.StatusCompleted
		switch {
		case i%10 == 0:
			want = orchestration.StatusRunning
		case i%7 == 0:
			want = orchestration.StatusFailed
		}
		switch {
		case st.RuntimeStatus != want:
			return fmt.Errorf("instance %s is %s, want %s", st.InstanceID, st.RuntimeStatus, want)
		case len(q.RuntimeStatus) > 0 && !slices.Contains(q.RuntimeStatus, st.RuntimeStatus),
			st.CreatedAt.Before(q.CreatedFrom), !strings.HasPrefix(st.InstanceID, q.InstanceIDPrefix):
			return fmt.Errorf("instance %s (%s, created %s) is not selected by %+v", st.InstanceID, st.RuntimeStatus, st.CreatedAt, q)
		}
	}
	return nil
}

// runPurge purges the completed instances of the dataset's first tenth
// and checks that exactly those are gone.
func runPurge(ctx context.Context, cfg config) ([]result, error) {
	d, err := datasetFor(ctx, cfg, true)
	if err != nil {
		return nil, err
	}
	e, err := d.open(ctx, cfg, 0)
	if err != nil {
		return nil, err
	}
	defer e.Stop(ctx)
	c := e.Client()
	cut, err := c.Status(ctx, instanceID(max(1, d.instances/10)))
	if err != nil {
		return nil, err
	}
	completed := []orchestration.Status{orchestration.StatusCompleted}
	count := func() (int, error) {
		n := 0
		q := durable.Query{RuntimeStatus: completed, CreatedTo: cut.CreatedAt, PageSize: durable.MaxPageSize}
		for {
			page, err := c.List(ctx, q)
			if err != nil {
				return 0, err
			}
			n += len(page.Instances)
			if q.ContinuationToken = page.ContinuationToken; q.ContinuationToken == "" {
				return n, nil
			}
		}
	}
	want, err := count()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	purged, err := c.PurgeMany(ctx, durable.PurgeFilter{CreatedTo: cut.CreatedAt, RuntimeStatus: completed})
	took := time.Since(began)
	if err != nil {
		return nil, err
	}
	left, err := count()
	switch {
	case err != nil:
		return nil, err
	case purged != want || left != 0:
		return nil, fmt.Errorf("purged %d of %d completed instances; %d are left", purged, want, left)
	}
	return []result{{
		Scenario: "purge",
		Params:   map[string]any{"backend": cfg.backend, "instances": d.instances, "purged": purged},
		Metrics:  map[string]float64{"ops_per_sec": float64(purged) / took.Seconds()},
	}}, nil
}

// runHTTPStart starts orchestrations through the HTTP API and, in
// alternating rounds, through Client.Start, and reports both rates and the
// API's overhead.
func runHTTPStart(ctx context.Context, cfg config) ([]result, error) {
	clients := orDefault(cfg.clients, 64)
	// The instances park; a short idle timeout passivates them, so that
	// the later rounds do not carry more active grains than the first.
	e, closeEngine, err := engineFor(ctx, cfg, "http-start", func(c *durable.Config) { c.IdleTimeout = time.Second })
	if err != nil {
		return nil, err
	}
	defer closeEngine()
	c := e.Client()
	h, err := httpapi.New(httpapi.Config{Client: c, Logger: cfg.log})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: time.Minute}
	url := srv.URL + httpapi.DefaultBasePath + "/orchestrators/Parked"
	var lastID atomic.Value
	viaHTTP := func() error {
		resp, err := hc.Post(url, "application/json", strings.NewReader("1"))
		if err != nil {
			return err
		}
		// Read to the end, so the connection is kept for the next request.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("the API answered %s", resp.Status)
		}
		lastID.Store(strings.TrimPrefix(resp.Header.Get("Location"), srv.URL+httpapi.DefaultBasePath+"/instances/"))
		return nil
	}
	viaClient := func() error {
		_, err := c.Start(ctx, "Parked", 1)
		return err
	}
	round := max(cfg.duration/4, time.Millisecond)
	var httpRates, clientRates []float64
	var httpLatencies []time.Duration
	// Rounds in the order client, API, API, client, so that neither way
	// runs only on a fuller engine.
	for _, api := range []bool{false, true, true, false} {
		if !api {
			rate, _, err := startLoad(clients, round, viaClient)
			if err != nil {
				return nil, err
			}
			clientRates = append(clientRates, rate)
			continue
		}
		rate, lat, err := startLoad(clients, round, viaHTTP)
		if err != nil {
			return nil, err
		}
		httpRates = append(httpRates, rate)
		httpLatencies = append(httpLatencies, lat...)
	}
	// An instance the API started exists and runs.
	if st, err := c.Status(ctx, lastID.Load().(string)); err != nil || st.RuntimeStatus != orchestration.StatusRunning {
		return nil, fmt.Errorf("an instance started through the API: %+v, %v", st, err)
	}
	httpRate, clientRate := mean(httpRates), mean(clientRates)
	slices.Sort(httpLatencies)
	return []result{{
		Scenario: "http-start",
		Params:   map[string]any{"backend": cfg.backend, "clients": clients},
		Metrics: map[string]float64{
			"ops_per_sec": httpRate, "client_ops_per_sec": clientRate,
			"overhead_pct": max(0.01, 100*(clientRate-httpRate)/clientRate),
			"p50_ms":       ms(storeload.Percentile(httpLatencies, 50)),
		},
	}}, nil
}

// startLoad runs start from clients goroutines for d (each at least once)
// and returns the rate and the latencies.
func startLoad(clients int, d time.Duration, start func() error) (float64, []time.Duration, error) {
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	began := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := true; first || time.Now().Before(deadline); first = false {
				t := time.Now()
				err := start()
				mu.Lock()
				latencies = append(latencies, time.Since(t))
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(len(latencies)) / time.Since(began).Seconds(), latencies, firstErr
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// mean of the rounds' rates (two of each way).
func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// runOpen measures Open+Start of an engine on an empty directory, and its
// Stop, the price a service pays at every deploy and a test at every run.
func runOpen(ctx context.Context, cfg config) ([]result, error) {
	var opens, stops []time.Duration
	deadline := time.Now().Add(cfg.duration)
	for n := 0; n < 5 || time.Now().Before(deadline); n++ {
		dir, remove, err := scenarioDir(cfg, "open")
		if err != nil {
			return nil, err
		}
		dcfg := durable.Config{Dir: dir, Registry: datasetRegistry(), Logger: cfg.log}
		if cfg.backend == "memory" {
			dcfg.Store = memory.New(memory.Config{})
		}
		began := time.Now()
		e, err := durable.Open(ctx, dcfg)
		if err == nil {
			err = e.Start(ctx)
		}
		opened := time.Since(began)
		if err == nil {
			// It must serve: a start, recorded, ended.
			var st *durable.Status
			if _, err = e.Client().Start(ctx, "Done", 1, durable.WithInstanceID("first")); err == nil {
				st, err = e.Client().Wait(ctx, "first")
			}
			if err == nil && st.RuntimeStatus != orchestration.StatusCompleted {
				err = fmt.Errorf("the first instance is %s", st.RuntimeStatus)
			}
		}
		began = time.Now()
		if e != nil {
			if stopErr := e.Stop(ctx); err == nil {
				err = stopErr
			}
		}
		stopped := time.Since(began)
		if dcfg.Store != nil {
			dcfg.Store.Close()
		}
		remove()
		if err != nil {
			return nil, err
		}
		opens, stops = append(opens, opened), append(stops, stopped)
	}
	slices.Sort(opens)
	slices.Sort(stops)
	return []result{{
		Scenario: "open",
		Params:   map[string]any{"backend": cfg.backend, "runs": len(opens)},
		Metrics:  map[string]float64{"ms": ms(storeload.Percentile(opens, 50)), "stop_ms": ms(storeload.Percentile(stops, 50))},
	}}, nil
}
