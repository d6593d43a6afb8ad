package durable_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// manageRegistry has Echo (returns its input), Fail (fails with its input)
// and Waiter (waits for the event "go" and returns its payload).
func manageRegistry() *durable.Registry {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Echo", func(ctx *orchestration.Context, in string) (string, error) {
		ctx.SetCustomStatus("echoing " + in)
		return in, nil
	})
	durable.RegisterOrchestrator(reg, "Fail", func(ctx *orchestration.Context, in string) (string, error) {
		return "", errors.New(in)
	})
	durable.RegisterOrchestrator(reg, "Waiter", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.WaitForEvent[string](ctx, "go").Await()
	})
	return reg
}

func listIDs(t *testing.T, c *durable.Client, q durable.Query) []string {
	t.Helper()
	var ids []string
	for {
		page, err := c.List(ctxFor(t, 10*time.Second), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range page.Instances {
			ids = append(ids, st.InstanceID)
		}
		if page.ContinuationToken == "" {
			return ids
		}
		q.ContinuationToken = page.ContinuationToken
	}
}

// TestListInstances: List filters by status, name, ID prefix, creation time
// and custom status, pages with tokens, and fills in payloads on request.
func TestListInstances(t *testing.T) {
	c := openEngine(t, manageRegistry(), "").Client()
	ctx := ctxFor(t, 60*time.Second)
	var echoes, fails, waiters []string
	for i := range 30 {
		id := fmt.Sprintf("echo-%02d", i)
		if _, err := c.Start(ctx, "Echo", strings.Repeat("e", i*40), durable.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		echoes = append(echoes, id)
	}
	mid := time.Now()
	for i := range 10 {
		id := fmt.Sprintf("fail-%02d", i)
		if _, err := c.Start(ctx, "Fail", "broken", durable.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		fails = append(fails, id)
		id = fmt.Sprintf("wait-%02d", i)
		if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		waiters = append(waiters, id)
	}
	for _, id := range append(slices.Clone(echoes), fails...) {
		if _, err := c.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	running := []orchestration.Status{orchestration.StatusRunning}
	for _, q := range []struct {
		name string
		q    durable.Query
		want []string
	}{
		{"completed", durable.Query{RuntimeStatus: []orchestration.Status{orchestration.StatusCompleted}, PageSize: 7}, echoes},
		{"failed", durable.Query{RuntimeStatus: []orchestration.Status{orchestration.StatusFailed}}, fails},
		{"running, by name", durable.Query{RuntimeStatus: running, Name: "waiter", PageSize: 3}, waiters},
		{"ID prefix", durable.Query{InstanceIDPrefix: "wait-0", PageSize: 4}, waiters},
		{"created before", durable.Query{CreatedTo: mid, PageSize: 11}, echoes},
		// Custom statuses over 512 bytes (echo-13 on) are not searched.
		{"custom status", durable.Query{CustomStatus: "echoing eeeeeeeeee"}, echoes[1:13]},
	} {
		if got := listIDs(t, c, q.q); !slices.Equal(got, q.want) {
			t.Errorf("%s: %v, want %v", q.name, got, q.want)
		}
	}
	page, err := c.List(ctx, durable.Query{InstanceIDPrefix: "echo-29", FetchInputs: true})
	if err != nil {
		t.Fatal(err)
	}
	var in, out string
	if len(page.Instances) != 1 || page.Instances[0].DecodeInput(&in) != nil || len(in) != 29*40 ||
		page.Instances[0].DecodeOutput(&out) != nil || out != in || page.Instances[0].CompletedAt.IsZero() {
		t.Fatalf("with inputs: %+v", page.Instances)
	}
	page, _ = c.List(ctx, durable.Query{InstanceIDPrefix: "echo-29"})
	if st := page.Instances[0]; st.Input != nil || st.DecodeOutput(&out) != nil || out != in || st.InputSize != 29*40+2 {
		t.Fatalf("without inputs: %+v", st)
	}
	for _, q := range []durable.Query{
		{ContinuationToken: "garbage!"},
		{PageSize: durable.MaxPageSize + 1},
		{CreatedFrom: mid, CreatedTo: mid.Add(-time.Hour)},
	} {
		if _, err := c.List(ctx, q); !errors.Is(err, durable.ErrBadQuery) {
			t.Errorf("query %+v: %v", q, err)
		}
	}
}

// TestPurge: a purged instance is gone from status, history and lists; a
// running one cannot be purged and goes on; the ID can be started again,
// with a history of its new run alone.
func TestPurge(t *testing.T) {
	c := openEngine(t, manageRegistry(), "").Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Echo", "one", durable.WithInstanceID("p")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, "p", new(string))
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("w")); err != nil {
		t.Fatal(err)
	}
	if err := c.Purge(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx, "p"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("status after purge: %v", err)
	}
	if h, err := c.History(ctx, "p"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("history after purge: %v %v", h, err)
	}
	if ids := listIDs(t, c, durable.Query{}); !slices.Equal(ids, []string{"w"}) {
		t.Fatalf("listed after purge: %v", ids)
	}
	if err := c.Purge(ctx, "p"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("purging again: %v", err)
	}
	if err := c.Purge(ctx, "nobody"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("purging an unknown instance: %v", err)
	}
	if err := c.Purge(ctx, "w"); !errors.Is(err, durable.ErrInstanceRunning) {
		t.Fatalf("purging a running instance: %v", err)
	}
	if err := c.Purge(ctx, "bad/id"); !errors.Is(err, durable.ErrInvalidInstanceID) {
		t.Fatalf("purging a bad ID: %v", err)
	}
	if err := c.RaiseEvent(ctx, "w", "go", "still here"); err != nil {
		t.Fatal(err)
	}
	var got string
	waitOutput(t, c, "w", &got)
	if got != "still here" {
		t.Fatalf("the instance a purge refused returned %q", got)
	}
	// The purged ID starts again, from nothing.
	if _, err := c.Start(ctx, "Echo", "two", durable.WithInstanceID("p")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, "p", &got)
	h := mustHistory(t, c, "p")
	if got != "two" || h[0].Kind != orchestration.OrchestratorStarted || h[1].Kind != orchestration.ExecutionStarted || h[1].Generation != 0 {
		t.Fatalf("restarted after a purge: %q, history %v", got, kinds(h))
	}
}

// TestPurgeMany purges the ended instances of a time range and status,
// counts them, leaves the others, and purges nothing more when run again.
func TestPurgeMany(t *testing.T) {
	c := openEngine(t, manageRegistry(), "").Client()
	ctx := ctxFor(t, 120*time.Second)
	start := func(name, prefix string, n int) {
		for i := range n {
			if _, err := c.Start(ctx, name, "x", durable.WithInstanceID(fmt.Sprintf("%s%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	start("Echo", "old-ok-", 150)
	start("Fail", "old-bad-", 50)
	start("Waiter", "old-running-", 20)
	for _, id := range listIDs(t, c, durable.Query{InstanceIDPrefix: "old-"}) {
		if !strings.HasPrefix(id, "old-running-") {
			c.Wait(ctx, id)
		}
	}
	cut := time.Now()
	start("Echo", "new-", 30)
	c.Wait(ctx, "new-029")
	if _, err := c.PurgeMany(ctx, durable.PurgeFilter{RuntimeStatus: []orchestration.Status{orchestration.StatusRunning}}); !errors.Is(err, durable.ErrBadQuery) {
		t.Fatalf("purging running instances: %v", err)
	}
	n, err := c.PurgeMany(ctx, durable.PurgeFilter{CreatedTo: cut, RuntimeStatus: []orchestration.Status{orchestration.StatusCompleted}})
	if err != nil || n != 150 {
		t.Fatalf("purged %d completed, %v", n, err)
	}
	n, err = c.PurgeMany(ctx, durable.PurgeFilter{CreatedTo: cut})
	if err != nil || n != 50 {
		t.Fatalf("purged %d ended, %v", n, err)
	}
	if n, err = c.PurgeMany(ctx, durable.PurgeFilter{CreatedTo: cut}); err != nil || n != 0 {
		t.Fatalf("run again, purged %d, %v", n, err)
	}
	left := listIDs(t, c, durable.Query{PageSize: 1000})
	if len(left) != 50 || !strings.HasPrefix(left[0], "old-running-") || !strings.HasPrefix(left[49], "new-") {
		t.Fatalf("left %d: %v", len(left), left)
	}
}

// truncationFailures fails every TruncateBefore while fail is set.
type truncationFailures struct {
	*hookStore
	fail      atomic.Bool
	truncated atomic.Int32
}

func (s *truncationFailures) TruncateBefore(ctx context.Context, stream string, revision uint64) error {
	if s.fail.Load() {
		return errors.New("injected: the store cannot truncate now")
	}
	s.truncated.Add(1)
	return s.hookStore.TruncateBefore(ctx, stream, revision)
}

// TestPurgeHalfway: a purge whose truncation the store keeps failing is
// already a purge (the instance reads as gone), and an engine that stops
// before it is done finishes it after a restart, by recovery alone.
func TestPurgeHalfway(t *testing.T) {
	dir := t.TempDir()
	mem := memory.New(memory.Config{})
	store := &truncationFailures{hookStore: &hookStore{Store: mem}}
	reg := manageRegistry()
	e := openAt(t, reg, dir, func(cfg *durable.Config) {
		cfg.Store = store
		cfg.ShutdownTimeout = time.Second // the truncation is still being retried
	})
	c := e.Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Echo", "x", durable.WithInstanceID("half")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, "half", new(string))
	store.fail.Store(true)
	if err := c.Purge(ctx, "half"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx, "half"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("status of a purge not yet truncated: %v", err)
	}
	if _, err := c.History(ctx, "half"); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("history of a purge not yet truncated: %v", err)
	}
	stop(t, e)
	if n := streamLength(t, mem, "half"); n < 2 {
		t.Fatalf("the stream holds %d records: the truncation happened after all", n)
	}
	store.fail.Store(false)
	e = openAt(t, reg, dir, func(cfg *durable.Config) { cfg.Store = store })
	defer stop(t, e)
	eventually(t, func() bool { return streamLength(t, mem, "half") == 1 })
}

// streamLength counts the records of an instance's stream.
func streamLength(t *testing.T, s eventstore.Store, id string) int {
	n := 0
	for _, err := range s.ReadStream(context.Background(), history.StreamName(id), eventstore.ReadStreamOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestRestart starts an ended instance over with the same input, under
// its ID or a new one, and refuses to restart a running one in place.
func TestRestart(t *testing.T) {
	c := openEngine(t, manageRegistry(), "").Client()
	ctx := ctxFor(t, 60*time.Second)
	if _, err := c.Start(ctx, "Fail", "bad input", durable.WithInstanceID("r"), durable.WithVersion("v2")); err != nil {
		t.Fatal(err)
	}
	first, _ := c.Wait(ctx, "r")
	id, err := c.Restart(ctx, "r", durable.RestartOptions{})
	if err != nil || id != "r" {
		t.Fatalf("restart: %q %v", id, err)
	}
	again, _ := c.Wait(ctx, "r")
	if again.RuntimeStatus != orchestration.StatusFailed || again.Failure.Message != "bad input" || again.Version != "v2" ||
		!again.CreatedAt.After(first.CreatedAt) {
		t.Fatalf("restarted in place: %+v", again)
	}
	newID, err := c.Restart(ctx, "r", durable.RestartOptions{NewInstanceID: true})
	if err != nil || newID == "r" {
		t.Fatalf("restart under a new ID: %q %v", newID, err)
	}
	if st, _ := c.Wait(ctx, newID); st.Failure.Message != "bad input" {
		t.Fatalf("the new instance: %+v", st)
	}
	if _, err := c.Start(ctx, "Waiter", nil, durable.WithInstanceID("live")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restart(ctx, "live", durable.RestartOptions{}); !errors.Is(err, durable.ErrInstanceExists) {
		t.Fatalf("restarting a running instance in place: %v", err)
	}
	if _, err := c.Restart(ctx, "nobody", durable.RestartOptions{}); !errors.Is(err, durable.ErrInstanceNotFound) {
		t.Fatalf("restarting an unknown instance: %v", err)
	}
}
