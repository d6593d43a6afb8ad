package index_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

type H = orchestration.HistoryEvent

// appendEpisode appends one episode record, as the runtime does.
func appendEpisode(t *testing.T, s eventstore.Store, id string, events ...H) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), history.StreamName(id), eventstore.Any, history.EpisodeData(events, uuid.New()))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func open(t *testing.T, s eventstore.Store) *index.Index {
	t.Helper()
	x, err := index.Open(context.Background(), s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	return x
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestProjection(t *testing.T) {
	s := memory.New(memory.Config{})
	// Written before the index opens: caught up at Open.
	appendEpisode(t, s, "a",
		H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "Chain", Input: []byte(`"in"`)},
		H{Kind: orchestration.TaskScheduled, EventID: 0, Name: "Step"}, H{Kind: orchestration.OrchestratorCompleted, CustomStatus: []byte(`"1/2"`)})
	x := open(t, s)
	a, ok := x.Get("a")
	if !ok || a.Name != "Chain" || a.Status != orchestration.StatusRunning || a.PendingTasks != 1 ||
		string(a.Input) != `"in"` || string(a.CustomStatus) != `"1/2"` || a.CompletionRevision != index.NoRevision {
		t.Fatalf("after the first episode: %+v", a)
	}
	ended := x.Ended("a")
	// Written while it follows the store; read-your-writes through WaitFor.
	res := appendEpisode(t, s, "a",
		H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.TaskCompleted, EventID: 0},
		H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted, Result: []byte(`"done"`)},
		H{Kind: orchestration.OrchestratorCompleted})
	if err := x.WaitFor(ctx(t), res.Position); err != nil {
		t.Fatal(err)
	}
	a, _ = x.Get("a")
	if a.Status != orchestration.StatusCompleted || a.PendingTasks != 0 || string(a.Output) != `"done"` ||
		a.CompletionRevision != int64(res.Revision) || a.LastPosition != res.Position {
		t.Fatalf("after completion: %+v", a)
	}
	select {
	case <-ended:
	default:
		t.Fatal("Ended was not closed when the instance completed")
	}
	select {
	case <-x.Ended("a"):
	default:
		t.Fatal("Ended of a completed instance is not closed")
	}
}

func TestStatuses(t *testing.T) {
	s := memory.New(memory.Config{})
	x := open(t, s)
	at := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	// A start scheduled for later is Pending until an episode runs.
	appendEpisode(t, s, "later", H{Kind: orchestration.ExecutionStarted, Name: "X", FireAt: at})
	// Suspended, then resumed.
	appendEpisode(t, s, "paused", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "X"}, H{Kind: orchestration.OrchestratorCompleted})
	appendEpisode(t, s, "paused", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionSuspended}, H{Kind: orchestration.OrchestratorCompleted})
	// Continued as new: the new generation runs at once.
	appendEpisode(t, s, "loop", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "L"}, H{Kind: orchestration.OrchestratorCompleted})
	appendEpisode(t, s, "loop", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusContinuedAsNew}, H{Kind: orchestration.OrchestratorCompleted})
	res := appendEpisode(t, s, "loop", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "L", Generation: 1, Input: []byte(strings.Repeat("x", index.MaxInlinePayload+1))})
	if err := x.WaitFor(ctx(t), res.Position); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]orchestration.Status{
		"later": orchestration.StatusPending, "paused": orchestration.StatusSuspended, "loop": orchestration.StatusRunning,
	} {
		if in, _ := x.Get(id); in.Status != want {
			t.Fatalf("%s is %s, want %s", id, in.Status, want)
		}
	}
	loop, _ := x.Get("loop")
	if loop.Generation != 1 || loop.InlineInput() || loop.StartRevision != res.Revision {
		t.Fatalf("new generation: %+v", loop)
	}
	ids := x.Select(func(in *index.Instance) bool { return in.Status == orchestration.StatusSuspended })
	if len(ids) != 1 || ids[0] != "paused" {
		t.Fatalf("Select: %v", ids)
	}
	if _, ok := x.Get("nobody"); ok {
		t.Fatal("an unknown instance was found")
	}
}

// TestOtherStreams: events of other stream categories are not indexed.
func TestOtherStreams(t *testing.T) {
	s := memory.New(memory.Config{})
	x := open(t, s)
	if _, err := s.Append(context.Background(), "entity-counter@1", eventstore.Any, eventstore.EventData{Type: "Incremented"}); err != nil {
		t.Fatal(err)
	}
	res := appendEpisode(t, s, "o", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "X"})
	if err := x.WaitFor(ctx(t), res.Position); err != nil {
		t.Fatal(err)
	}
	if n := len(x.Select(func(*index.Instance) bool { return true })); n != 1 {
		t.Fatalf("%d instances indexed, want 1", n)
	}
}
