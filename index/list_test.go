package index_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// tick is a store clock that advances a millisecond per event, so
// creation times are distinct and known.
type tick struct{ n atomic.Int64 }

var t0 = time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)

func (c *tick) now() time.Time { return t0.Add(time.Duration(c.n.Add(1)) * time.Millisecond) }

// fill starts n instances "i000".. of orchestrators A and B (alternating),
// ending every third as Completed and every fifth as Failed, with a
// custom status naming its tens, and returns the last position.
func fill(t *testing.T, s eventstore.Store, from, n int) uint64 {
	t.Helper()
	var last uint64
	for i := from; i < from+n; i++ {
		id, name := fmt.Sprintf("i%03d", i), "A"
		if i%2 == 1 {
			name = "B"
		}
		last = appendEpisode(t, s, id, H{Kind: orchestration.OrchestratorStarted}, H{Kind: orchestration.ExecutionStarted, Name: name},
			H{Kind: orchestration.OrchestratorCompleted, AwaitedEvents: []string{"go"}, CustomStatus: fmt.Appendf(nil, `"tens %d"`, i/10)}).Position
		switch {
		case i%3 == 0:
			last = appendEpisode(t, s, id, H{Kind: orchestration.OrchestratorStarted},
				H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted}, H{Kind: orchestration.OrchestratorCompleted}).Position
		case i%5 == 0:
			last = appendEpisode(t, s, id, H{Kind: orchestration.OrchestratorStarted},
				H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusFailed}, H{Kind: orchestration.OrchestratorCompleted}).Position
		}
	}
	return last
}

// all pages through q with pages of size, returning every ID.
func all(t *testing.T, x *index.Index, q index.Query, size int) []string {
	t.Helper()
	q.Limit = size
	var out []string
	for {
		p := list(t, x, q)
		if len(p.Instances) > size {
			t.Fatalf("a page of %d holds %d", size, len(p.Instances))
		}
		out = append(out, ids(p)...)
		if p.Next == "" {
			return out
		}
		q.Token = p.Next
	}
}

// want returns the IDs in [0, n) that keep accepts, in order.
func want(n int, keep func(i int) bool) []string {
	var out []string
	for i := range n {
		if keep(i) {
			out = append(out, fmt.Sprintf("i%03d", i))
		}
	}
	return out
}

func status(i int) orchestration.Status {
	switch {
	case i%3 == 0:
		return orchestration.StatusCompleted
	case i%5 == 0:
		return orchestration.StatusFailed
	}
	return orchestration.StatusRunning
}

// TestList: every filter, alone and together, pages through exactly the
// instances it selects, in order of creation, whatever the page size.
func TestList(t *testing.T) {
	var clock tick
	s := memory.New(memory.Config{Clock: clock.now})
	x := open(t, s)
	const n = 250
	if err := x.WaitFor(ctx(t), fill(t, s, 0, n)); err != nil {
		t.Fatal(err)
	}
	// Instance i is created at the time of its first event; find the
	// creation time of i100 to filter by.
	i100, _ := x.Get("i100")
	i200, _ := x.Get("i200")
	failedOrCompleted := []orchestration.Status{orchestration.StatusFailed, orchestration.StatusCompleted}
	for _, c := range []struct {
		name string
		q    index.Query
		keep func(i int) bool
	}{
		{"all", index.Query{}, func(int) bool { return true }},
		{"one status", index.Query{Statuses: []orchestration.Status{orchestration.StatusRunning}},
			func(i int) bool { return status(i) == orchestration.StatusRunning }},
		{"two statuses", index.Query{Statuses: failedOrCompleted},
			func(i int) bool { return status(i) != orchestration.StatusRunning }},
		{"name", index.Query{Name: "b"}, func(i int) bool { return i%2 == 1 }},
		{"name and statuses", index.Query{Name: "A", Statuses: failedOrCompleted},
			func(i int) bool { return i%2 == 0 && status(i) != orchestration.StatusRunning }},
		{"created range", index.Query{CreatedFrom: i100.Created, CreatedTo: i200.Created},
			func(i int) bool { return i >= 100 && i < 200 }},
		{"status and created range", index.Query{Statuses: []orchestration.Status{orchestration.StatusFailed}, CreatedFrom: i100.Created},
			func(i int) bool { return i >= 100 && status(i) == orchestration.StatusFailed }},
		{"ID prefix", index.Query{IDPrefix: "i1"}, func(i int) bool { return i >= 100 && i < 200 }},
		{"ID prefix and name", index.Query{IDPrefix: "i2", Name: "A"}, func(i int) bool { return i >= 200 && i%2 == 0 }},
		{"custom status", index.Query{CustomStatus: "tens 7\""}, func(i int) bool { return i/10 == 7 }},
		{"nothing", index.Query{Name: "C"}, func(int) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := want(n, c.keep)
			for _, size := range []int{1, 7, 100, 1000} {
				if got := all(t, x, c.q, size); !slices.Equal(got, w) {
					t.Fatalf("pages of %d: %d instances %v, want %d %v", size, len(got), got, len(w), w)
				}
			}
		})
	}
	first := list(t, x, index.Query{Limit: 1})
	if in := first.Instances[0]; in.Name != "A" || in.Status != orchestration.StatusCompleted || string(in.CustomStatus) != `"tens 0"` {
		t.Fatalf("the first instance: %+v", in)
	}
}

// TestListTokensSurviveWrites: a token stays valid while instances are
// created, end and are purged; the pages after it hold every instance
// that existed before and still matches, each once.
func TestListTokensSurviveWrites(t *testing.T) {
	var clock tick
	s := memory.New(memory.Config{Clock: clock.now})
	x := open(t, s)
	x.WaitFor(ctx(t), fill(t, s, 0, 100))
	running := index.Query{Statuses: []orchestration.Status{orchestration.StatusRunning}, Limit: 10}
	p := list(t, x, running)
	seen := ids(p)
	// Meanwhile: 50 more instances, i020 (running, not yet listed) ends,
	// i001 (listed) ends, i050 is purged.
	fill(t, s, 100, 50)
	appendEpisode(t, s, "i022", H{Kind: orchestration.OrchestratorStarted},
		H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted})
	appendEpisode(t, s, "i001", H{Kind: orchestration.OrchestratorStarted},
		H{Kind: orchestration.ExecutionCompleted, Status: orchestration.StatusCompleted})
	purged, err := s.Append(context.Background(), history.StreamName("i052"), eventstore.Any, eventstore.EventData{ID: uuid.New(), Type: history.PurgedType})
	if err != nil {
		t.Fatal(err)
	}
	x.WaitFor(ctx(t), purged.Position)
	running.Token = p.Next
	seen = append(seen, all(t, x, running, 10)...)
	w := want(150, func(i int) bool {
		return status(i) == orchestration.StatusRunning && i != 22 && i != 52
	})
	if !slices.Equal(seen, w) {
		t.Fatalf("listed %v\nwant %v", seen, w)
	}
	if _, ok := x.Get("i052"); ok {
		t.Fatal("a purged instance is still indexed")
	}
}

// TestListBadToken: a token that is not one, or that continues a query of
// other filters, is ErrBadToken.
func TestListBadToken(t *testing.T) {
	s := memory.New(memory.Config{})
	x := open(t, s)
	x.WaitFor(ctx(t), fill(t, s, 0, 5))
	byID := list(t, x, index.Query{IDPrefix: "i", Limit: 2})
	for _, q := range []index.Query{
		{Token: "not a token!"},
		{Token: "AA"},
		{Token: byID.Next}, // made for an ID-ordered query
	} {
		if _, err := x.List(q); !errors.Is(err, index.ErrBadToken) {
			t.Fatalf("token %q: %v", q.Token, err)
		}
	}
}

// countingStore counts the records ReadAll yields.
type countingStore struct {
	eventstore.Store
	read atomic.Int64
}

func (c *countingStore) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		for rec, err := range c.Store.ReadAll(ctx, opts) {
			c.read.Add(1)
			if !yield(rec, err) {
				return
			}
		}
	}
}

// TestReopen: an index kept on disk reopens from its checkpoint, reading
// only what the log holds after it, and knows what it knew.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	var clock tick
	s := &countingStore{Store: memory.New(memory.Config{Clock: clock.now})}
	x, err := index.Open(context.Background(), index.Config{Store: s, Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	x.WaitFor(ctx(t), fill(t, s, 0, 200))
	before := all(t, x, index.Query{}, 100)
	x.Close()
	// Written while it was closed.
	fill(t, s, 200, 10)
	s.read.Store(0)
	x = openAt(t, s, dir)
	if got := s.read.Load(); got > 30 {
		t.Fatalf("reopening read %d records; the 10 instances written since hold 14", got)
	}
	after := all(t, x, index.Query{}, 100)
	if len(after) != 210 || !slices.Equal(after[:200], before) {
		t.Fatalf("reopened with %d instances", len(after))
	}
	if in, _ := x.Get("i203"); in.Status != orchestration.StatusRunning || string(in.CustomStatus) != `"tens 20"` {
		t.Fatalf("an instance written while closed: %+v", in)
	}
}

// TestReopenOnAnotherStore: an index whose checkpoint is past the end of
// the store's log was made from another store; it is rebuilt.
func TestReopenOnAnotherStore(t *testing.T) {
	dir := t.TempDir()
	x := openAt(t, memory.New(memory.Config{}), dir)
	first := memory.New(memory.Config{})
	x.Close()
	x = openAt(t, first, dir)
	x.WaitFor(ctx(t), fill(t, first, 0, 20))
	x.Close()
	other := memory.New(memory.Config{})
	fill(t, other, 0, 3)
	x = openAt(t, other, dir)
	if got := all(t, x, index.Query{}, 100); len(got) != 3 {
		t.Fatalf("on another store the index lists %v", got)
	}
}
