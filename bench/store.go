package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/internal/storeload"
)

// openStore opens a new, empty store of the configured backend for the
// named scenario; close closes it and removes its files.
func openStore(cfg config, name string) (eventstore.Store, func(), error) {
	if cfg.backend == "memory" {
		s := memory.New(memory.Config{})
		return s, func() { s.Close() }, nil
	}
	dir, removeDir, err := scenarioDir(cfg, name)
	if err != nil {
		return nil, nil, err
	}
	s, err := pebble.Open(pebble.Config{Dir: dir, Logger: cfg.log})
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	return s, func() {
		s.Close()
		removeDir()
	}, nil
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func runStoreAppend(ctx context.Context, cfg config) ([]result, error) {
	type shape struct{ writers, perAppend int }
	shapes := []shape{{1, 1}, {64, 1}, {8, 10}}
	if cfg.writers > 0 || cfg.eventsPerAppend > 0 {
		shapes = []shape{{orDefault(cfg.writers, 1), orDefault(cfg.eventsPerAppend, 1)}}
	}
	var out []result
	for _, sh := range shapes {
		s, closeStore, err := openStore(cfg, "store-append")
		if err != nil {
			return nil, err
		}
		// Rounds of a fixed size until the duration is used up; the
		// percentiles are of every append of every round, like the rate.
		round := 2000 * sh.writers * sh.perAppend
		var events int
		var elapsed time.Duration
		var latencies []time.Duration
		for start := time.Now(); events == 0 || time.Since(start) < cfg.duration; {
			res, err := storeload.Append(ctx, s, sh.writers, sh.perAppend, round)
			if err != nil {
				closeStore()
				return nil, err
			}
			events += res.Events
			elapsed += res.Elapsed
			latencies = append(latencies, res.Latencies...)
		}
		closeStore()
		slices.Sort(latencies)
		out = append(out, result{
			Scenario: "store-append",
			Params:   map[string]any{"backend": cfg.backend, "writers": sh.writers, "events_per_append": sh.perAppend},
			Metrics: map[string]float64{
				"events_per_sec": float64(events) / elapsed.Seconds(),
				"p50_ms":         ms(storeload.Percentile(latencies, 50)),
				"p99_ms":         ms(storeload.Percentile(latencies, 99)),
			},
		})
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runStoreRead(ctx context.Context, cfg config) ([]result, error) {
	n := orDefault(cfg.events, 100_000)
	s, closeStore, err := openStore(cfg, "store-read")
	if err != nil {
		return nil, err
	}
	defer closeStore()
	stream, err := storeload.FillStream(ctx, s, n)
	if err != nil {
		return nil, err
	}
	var events int
	var elapsed time.Duration
	for start := time.Now(); events == 0 || time.Since(start) < cfg.duration; {
		res, err := storeload.ReadStream(ctx, s, stream, n)
		if err != nil {
			return nil, err
		}
		events += res.Events
		elapsed += res.Elapsed
	}
	return []result{{
		Scenario: "store-read",
		Params:   map[string]any{"backend": cfg.backend, "events": n},
		Metrics:  map[string]float64{"events_per_sec": float64(events) / elapsed.Seconds()},
	}}, nil
}

func runStoreCatchUp(ctx context.Context, cfg config) ([]result, error) {
	n := orDefault(cfg.events, 100_000)
	s, closeStore, err := openStore(cfg, "store-catchup")
	if err != nil {
		return nil, err
	}
	defer closeStore()
	filter, err := storeload.FillAll(ctx, s, n)
	if err != nil {
		return nil, err
	}
	var events int
	var elapsed time.Duration
	for start := time.Now(); events == 0 || time.Since(start) < cfg.duration; {
		res, err := storeload.CatchUp(ctx, s, filter, n)
		if err != nil {
			return nil, err
		}
		events += res.Events
		elapsed += res.Elapsed
	}
	if events == 0 {
		return nil, fmt.Errorf("caught up on no events")
	}
	return []result{{
		Scenario: "store-catchup",
		Params:   map[string]any{"backend": cfg.backend, "events": n},
		Metrics:  map[string]float64{"events_per_sec": float64(events) / elapsed.Seconds()},
	}}, nil
}
