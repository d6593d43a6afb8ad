package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/durableactor/durable/internal/replayload"
	"github.com/durableactor/durable/orchestration"
)

// maxReplayEvents is the longest history replay asks for: one generation
// of an orchestration holds at most DefaultMaxHistoryEvents, and a chain's
// history has a few events besides those of its steps.
const maxReplayEvents = orchestration.DefaultMaxHistoryEvents - 100

// runReplay rebuilds a long activity chain from its encoded history, as an
// instance's activation does, on one core (GOMAXPROCS=1 while it runs).
func runReplay(ctx context.Context, cfg config) ([]result, error) {
	want := orDefault(cfg.events, 10_000)
	if want > maxReplayEvents {
		fmt.Fprintf(cfg.stderr, "bench: replay: -events %d is over an orchestration's history limit of %d; replaying about %d events\n",
			want, orchestration.DefaultMaxHistoryEvents, maxReplayEvents)
		want = maxReplayEvents
	}
	n := replayload.StepsFor(want)
	recs, events, err := replayload.Record(n)
	if err != nil {
		return nil, err
	}
	r := replayload.NewReplayer()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var rounds int
	start := time.Now()
	for rounds == 0 || time.Since(start) < cfg.duration {
		if err := r.Replay(recs, n); err != nil {
			return nil, err
		}
		rounds++
	}
	elapsed := time.Since(start)
	return []result{{
		Scenario: "replay",
		Params:   map[string]any{"events": events, "cores": 1},
		Metrics: map[string]float64{
			"events_per_sec": float64(events*rounds) / elapsed.Seconds(),
			"ns_per_op":      float64(elapsed.Nanoseconds()) / float64(rounds),
		},
	}}, nil
}

// runEpisode steps a live chain instance: one activity result in, the next
// call out, including encoding the episode's events for the store.
func runEpisode(ctx context.Context, cfg config) ([]result, error) {
	const steps = 10_000
	var episodes int
	var elapsed time.Duration
	var allocs uint64
	for episodes == 0 || elapsed < cfg.duration {
		l, err := replayload.NewLive(steps)
		if err != nil {
			return nil, err
		}
		l.Encode = true
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range steps - 1 {
			if err := l.Step(); err != nil {
				l.Close()
				return nil, err
			}
		}
		elapsed += time.Since(start)
		runtime.ReadMemStats(&after)
		allocs += after.Mallocs - before.Mallocs
		episodes += steps - 1
		l.Close()
	}
	return []result{{
		Scenario: "episode",
		Params:   map[string]any{"encode": true},
		Metrics: map[string]float64{
			"ns_per_op":     float64(elapsed.Nanoseconds()) / float64(episodes),
			"allocs_per_op": float64(allocs) / float64(episodes),
		},
	}}, nil
}
