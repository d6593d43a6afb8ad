// Package replayload is the workload of the replay benchmarks, shared by
// `go test -bench` and the bench program: a long activity chain, its history
// encoded as the event store holds it, a full replay from those bytes, and
// incremental episodes on a live instance. Each function checks its result,
// so a fast wrong answer is an error.
package replayload

import (
	"fmt"
	"strconv"
	"time"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// Chain is the benchmarked orchestrator: it calls the activity "Add" with
// 0, 1, ... n-1 in sequence and returns the sum of the results.
const Chain = "Chain"

// Registry returns a registry with the Chain orchestrator.
func Registry() *orchestration.Registry {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, Chain, func(ctx *orchestration.Context, n int) (int, error) {
		sum := 0
		for k := range n {
			var r int
			if err := ctx.CallActivity("Add", k).Await(&r); err != nil {
				return 0, err
			}
			sum += r
		}
		return sum, nil
	})
	return reg
}

// eventsPerStep is the history a chain step adds: OrchestratorStarted,
// TaskCompleted, TaskScheduled, OrchestratorCompleted.
const eventsPerStep = 4

// StepsFor returns the chain length whose history has about events events.
func StepsFor(events int) int { return max(1, events/eventsPerStep) }

// activityResult is what "Add" returns for input k.
func activityResult(k int32) []byte { return strconv.AppendInt(nil, int64(k)*2, 10) }

// Expected is the output of a chain of n steps.
func Expected(n int) int { return n * (n - 1) }

// Record runs a chain of n steps to completion episode by episode and
// returns its history encoded as the runtime stores it, one record per
// episode, and the number of history events in it.
func Record(n int) (recs []eventstore.RecordedEvent, events int, err error) {
	reg := Registry()
	inst := orchestration.NewInstance(reg, orchestration.Options{})
	defer inst.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ep, err := inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: Chain, InstanceID: "bench", Input: strconv.AppendInt(nil, int64(n), 10)})
	if err != nil {
		return nil, 0, err
	}
	// Each episode is one stored record, as the runtime appends it.
	episodes := [][]orchestration.HistoryEvent{ep.Events}
	for inst.Status() == orchestration.StatusRunning {
		p := inst.Pending()
		if len(p) != 1 {
			return nil, 0, fmt.Errorf("replayload: chain has %d pending decisions", len(p))
		}
		now = now.Add(time.Millisecond)
		ep, err = inst.Step(now, orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: p[0].EventID, Result: activityResult(p[0].EventID)})
		if err != nil {
			return nil, 0, err
		}
		episodes = append(episodes, ep.Events)
	}
	if err := checkOutput(inst, n); err != nil {
		return nil, 0, err
	}
	recs = make([]eventstore.RecordedEvent, len(episodes))
	for k, ev := range episodes {
		recs[k] = eventstore.RecordedEvent{Stream: "orchestration-bench", Revision: uint64(k), Type: history.EpisodeType, Data: history.AppendEpisode(nil, ev)}
		events += len(ev)
	}
	return recs, events, nil
}

func checkOutput(inst *orchestration.Instance, n int) error {
	out, failure := inst.Output()
	if inst.Status() != orchestration.StatusCompleted {
		return fmt.Errorf("replayload: chain is %s (%v)", inst.Status(), failure)
	}
	if got, want := string(out), strconv.Itoa(Expected(n)); got != want {
		return fmt.Errorf("replayload: chain returned %s, want %s", got, want)
	}
	return nil
}

// Replayer rebuilds a chain instance from its stored events, reusing its
// buffers between runs as a runtime would between activations.
type Replayer struct {
	reg    *orchestration.Registry
	events []orchestration.HistoryEvent
}

// NewReplayer returns a Replayer for chains.
func NewReplayer() *Replayer { return &Replayer{reg: Registry()} }

// Replay decodes recs, replays them and checks that the instance completed
// with the output of a chain of n steps.
func (r *Replayer) Replay(recs []eventstore.RecordedEvent, n int) error {
	var d history.Decoder
	events, err := d.DecodeRecorded(r.events[:0], recs)
	if err != nil {
		return err
	}
	r.events = events
	inst := orchestration.NewInstance(r.reg, orchestration.Options{})
	defer inst.Close()
	ep, err := inst.Replay(events)
	if err != nil {
		return err
	}
	if len(ep.Events) != 0 {
		return fmt.Errorf("replayload: replay made %d new events", len(ep.Events))
	}
	return checkOutput(inst, n)
}

// Live is a chain instance kept live between episodes, the way the runtime
// keeps an active instance: each Step delivers the pending activity's result
// and takes the next call, with nothing replayed.
type Live struct {
	inst *orchestration.Instance
	now  time.Time
	last int32
	// Encode, when set, also encodes each episode's events for the store,
	// as the runtime must before it appends them.
	Encode bool
	buf    []byte
}

// NewLive starts a chain of n steps.
func NewLive(n int) (*Live, error) {
	l := &Live{inst: orchestration.NewInstance(Registry(), orchestration.Options{}), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := l.inst.Step(l.now, orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: Chain, InstanceID: "live", Input: strconv.AppendInt(nil, int64(n), 10)}); err != nil {
		return nil, err
	}
	return l, nil
}

// Step runs one episode: the result of the pending activity in, the next
// activity call out.
func (l *Live) Step() error {
	l.now = l.now.Add(time.Millisecond)
	seq := l.last
	ep, err := l.inst.Step(l.now, orchestration.HistoryEvent{Kind: orchestration.TaskCompleted, EventID: seq, Result: activityResult(seq)})
	if err != nil {
		return err
	}
	if len(ep.Events) != 4 || ep.Events[2].Kind != orchestration.TaskScheduled || ep.Events[2].EventID != seq+1 {
		return fmt.Errorf("replayload: episode %d decided %v", seq, ep.Events)
	}
	l.last = seq + 1
	if l.Encode {
		l.buf = history.AppendEpisode(l.buf[:0], ep.Events)
	}
	return nil
}

// Close ends the live instance.
func (l *Live) Close() { l.inst.Close() }
