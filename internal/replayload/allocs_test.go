package replayload

import (
	"testing"

	"github.com/durableactor/durable/internal/racedetector"
)

// Allocation budgets of the hot paths, per chain step: a replay of stored
// episodes, and a live episode without and with encoding it. Most of what
// remains is the orchestrator's own (its Task, JSON results).
const (
	replayAllocsPerStep  = 4.25
	episodeAllocs        = 6
	encodedEpisodeAllocs = 6
)

func TestAllocations(t *testing.T) {
	if testing.Short() || racedetector.Enabled {
		t.Skip("measures allocations")
	}
	const n = 200
	recs, _, err := Record(n)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReplayer()
	if err := r.Replay(recs, n); err != nil { // sizes the replayer's buffers
		t.Fatal(err)
	}
	perReplay := testing.AllocsPerRun(10, func() {
		if err := r.Replay(recs, n); err != nil {
			t.Fatal(err)
		}
	})
	if got := perReplay / n; got > replayAllocsPerStep {
		t.Errorf("a replay allocates %.2f times per step, over the budget of %.2f", got, replayAllocsPerStep)
	}
	l, err := NewLive(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	step := func() {
		if err := l.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if got := testing.AllocsPerRun(100, step); got > episodeAllocs {
		t.Errorf("an episode allocates %.0f times, over the budget of %d", got, episodeAllocs)
	}
	l.Encode = true
	step() // sizes the encoding buffer
	if got := testing.AllocsPerRun(100, step); got > encodedEpisodeAllocs {
		t.Errorf("an encoded episode allocates %.0f times, over the budget of %d", got, encodedEpisodeAllocs)
	}
}
