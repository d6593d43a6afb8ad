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

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// open opens an index of s kept in memory.
func open(t *testing.T, s eventstore.Store) *index.Index { return openAt(t, s, "") }

// openAt opens an index of s kept in dir; it is closed when the test ends.
func openAt(t *testing.T, s eventstore.Store, dir string) *index.Index {
	t.Helper()
	x, err := index.Open(context.Background(), index.Config{Store: s, Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	return x
}

// ids returns the IDs of a page's instances.
func ids(p index.Page) []string {
	var out []string
	for _, in := range p.Instances {
		out = append(out, in.ID)
	}
	return out
}

// list returns the page q selects, failing the test on an error.
func list(t *testing.T, x *index.Index, q index.Query) index.Page {
	t.Helper()
	p, err := x.List(q)
	if err != nil {
		t.Fatal(err)
	}
	return p
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
	if got := ids(list(t, x, index.Query{Statuses: []orchestration.Status{orchestration.StatusSuspended}})); len(got) != 1 || got[0] != "paused" {
		t.Fatalf("the suspended ones: %v", got)
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
	if n := len(list(t, x, index.Query{}).Instances); n != 1 {
		t.Fatalf("%d instances indexed, want 1", n)
	}
}

// TestWakeReasons: every running instance has a reason to run again, due
// ones are found in order of their due time, and an instance with no reason
// is reported as stranded.
func TestWakeReasons(t *testing.T) {
	s := memory.New(memory.Config{})
	x := open(t, s)
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	started := func(id string) {
		appendEpisode(t, s, id, H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "X"})
	}
	// Waits for a timer in 3 hours and an event.
	started("approval")
	appendEpisode(t, s, "approval", H{Kind: orchestration.TimerCreated, FireAt: t0.Add(3 * time.Hour)},
		H{Kind: orchestration.OrchestratorCompleted, FireAt: t0.Add(3 * time.Hour), AwaitedEvents: []string{"Approval"}})
	// Waits for a timer in 1 hour.
	started("monitor")
	appendEpisode(t, s, "monitor", H{Kind: orchestration.OrchestratorCompleted, FireAt: t0.Add(time.Hour)})
	// Scheduled to start in 2 hours.
	appendEpisode(t, s, "later", H{Kind: orchestration.ExecutionStarted, Name: "X", FireAt: t0.Add(2 * time.Hour)})
	// Waits for an activity only.
	started("chain")
	appendEpisode(t, s, "chain", H{Kind: orchestration.TaskScheduled, Name: "A"}, H{Kind: orchestration.OrchestratorCompleted})
	// Continued as new, its first episode not recorded yet: runnable now.
	started("loop")
	appendEpisode(t, s, "loop", H{Kind: orchestration.OrchestratorCompleted, AwaitedEvents: []string{"go"}})
	appendEpisode(t, s, "loop", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusContinuedAsNew})
	appendEpisode(t, s, "loop", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "X", Generation: 1})
	// Recorded an episode that waits for nothing: a bug the index reveals.
	started("lost")
	res := appendEpisode(t, s, "lost", H{Kind: orchestration.OrchestratorCompleted})
	if err := x.WaitFor(ctx(t), res.Position); err != nil {
		t.Fatal(err)
	}
	loop, _ := x.Get("loop")
	for _, c := range []struct {
		at   time.Time
		want []string
	}{
		{t0, []string{"loop"}},
		{t0.Add(time.Hour + 1), []string{"loop", "monitor"}},
		{t0.Add(4 * time.Hour), []string{"loop", "monitor", "later", "approval"}},
	} {
		if loop.LastUpdated.After(c.at) {
			c.at = loop.LastUpdated.Add(time.Nanosecond)
		}
		if got := x.Overdue(c.at, 10); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Fatalf("overdue before %s: %v, want %v", c.at, got, c.want)
		}
	}
	if got := x.Overdue(t0.Add(4*time.Hour), 2); len(got) != 2 {
		t.Fatalf("limit 2 gave %v", got)
	}
	stranded := x.Stranded()
	if len(stranded) != 1 || stranded[0] != "lost" {
		t.Fatalf("stranded: %v", stranded)
	}
	a, _ := x.Get("approval")
	if got := a.WaitsFor(); !strings.Contains(got, "events Approval") || !strings.Contains(got, "timer at 2027-01-01T03:00:00Z") {
		t.Fatalf("approval waits for %q", got)
	}

	// The timer fires and the approval comes: not due any more.
	res = appendEpisode(t, s, "approval", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.TimerFired},
		H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted}, H{Kind: orchestration.OrchestratorCompleted})
	if err := x.WaitFor(ctx(t), res.Position); err != nil {
		t.Fatal(err)
	}
	if got := x.Overdue(t0.Add(4*time.Hour), 10); strings.Contains(strings.Join(got, " "), "approval") {
		t.Fatalf("a completed instance is still due: %v", got)
	}
}

// TestCorruptRecord: a record that cannot be decoded fails its instance in
// the index, with the reason, and the index goes on with the others.
func TestCorruptRecord(t *testing.T) {
	s := memory.New(memory.Config{})
	appendEpisode(t, s, "bad", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "X"})
	if _, err := s.Append(context.Background(), history.StreamName("bad"), eventstore.Any,
		eventstore.EventData{ID: uuid.New(), Type: history.EpisodeType, Data: []byte{0xff, 0xff, 0xff}}); err != nil {
		t.Fatal(err)
	}
	x := open(t, s)
	ended := x.Ended("bad")
	res := appendEpisode(t, s, "good", H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: "X"})
	if err := x.WaitFor(ctx(t), res.Position); err != nil {
		t.Fatalf("the index stopped at the corrupt record: %v", err)
	}
	bad, _ := x.Get("bad")
	if bad.Status != orchestration.StatusFailed || bad.Failure == nil || !strings.Contains(bad.Failure.Message, "corrupt") {
		t.Fatalf("the instance with a corrupt record: %+v", bad)
	}
	select {
	case <-ended:
	default:
		t.Fatal("waiting for the failed instance does not end")
	}
	if good, ok := x.Get("good"); !ok || good.Status != orchestration.StatusRunning {
		t.Fatalf("the next instance: %+v", good)
	}
}

// TestStopped: Stopped is closed when the index stops following the store.
func TestStopped(t *testing.T) {
	x, err := index.Open(context.Background(), index.Config{Store: memory.New(memory.Config{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-x.Stopped():
		t.Fatal("stopped while it follows")
	default:
	}
	x.Close()
	<-x.Stopped()
}
