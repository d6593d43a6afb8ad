package durable_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// These tests write a stream exactly as a grain records it and then open an
// engine on it, as if the process had crashed after an append and before
// acting on it.

// recordEpisodes appends each episode to the instance's stream as one record
// per element, the way the grain appends them.
func recordEpisodes(t *testing.T, store eventstore.Store, id string, records ...[]orchestration.HistoryEvent) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	stream := "orchestration-" + id
	for _, events := range records {
		if _, err := store.Append(ctx, stream, eventstore.Any, history.EpisodeData(events, uuid.New())); err != nil {
			t.Fatal(err)
		}
	}
}

func openStore(t *testing.T, dir string) *pebble.Store {
	t.Helper()
	store, err := pebble.Open(pebble.Config{Dir: filepath.Join(dir, "events"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func startEvent(name, id string, input string) orchestration.HistoryEvent {
	return orchestration.HistoryEvent{Kind: orchestration.ExecutionStarted, Name: name, InstanceID: id, Input: []byte(input), RequestID: "start-" + id}
}

// firstEpisode runs the first episode of an instance started by es.
func firstEpisode(t *testing.T, reg *durable.Registry, now time.Time, es orchestration.HistoryEvent) orchestration.Episode {
	t.Helper()
	inst := orchestration.NewInstance(reg.Orchestrators(), orchestration.Options{Converter: reg.Converter()})
	defer inst.Close()
	ep, err := inst.Step(now, es)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// pingRegistry registers "Receiver", which returns the "ping" event it
// waits for, and sender, which sends that event to the instance "r".
func pingRegistry(sender func(ctx *orchestration.Context, n int) (string, error)) *durable.Registry {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Receiver", func(ctx *orchestration.Context, _ any) (string, error) {
		return orchestration.WaitForEvent[string](ctx, "ping").Await()
	})
	durable.RegisterOrchestrator(reg, "Sender", sender)
	return reg
}

// TestRecoveryResendsEventOfFinishedInstance: the sender's only episode
// sends an event and completes. A crash before the event reached the bus
// leaves a finished instance whose send nobody made; the restart must make
// it, or the receiver waits forever (invariant 6).
func TestRecoveryResendsEventOfFinishedInstance(t *testing.T) {
	reg := pingRegistry(func(ctx *orchestration.Context, _ int) (string, error) {
		return "sent", ctx.SendEvent("r", "ping", "hello")
	})
	dir := t.TempDir()
	store := openStore(t, dir)
	now := time.Now().UTC()
	rep := firstEpisode(t, reg, now, startEvent("Receiver", "r", "null"))
	sender := orchestration.NewInstance(reg.Orchestrators(), orchestration.Options{Converter: reg.Converter()})
	sep, err := sender.Step(now, startEvent("Sender", "s", "0"))
	if err != nil || sep.Status != orchestration.StatusCompleted || !containsKind(sep.Events, orchestration.EventSent) {
		t.Fatalf("sender's episode %v (%s): %v", kinds(sep.Events), sep.Status, err)
	}
	sender.Close()
	recordEpisodes(t, store, "r", rep.Events)
	recordEpisodes(t, store, "s", sep.Events)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	var out string
	waitOutput(t, openEngine(t, reg, dir).Client(), "r", &out)
	if out != "hello" {
		t.Fatalf("receiver got %q", out)
	}
}

// TestRecoveryResendsEventOfEndedGeneration: generation 0 sends an event
// and continues as new. A crash after the append and before the send must
// not lose the send, although the instance has moved on to generation 1.
func TestRecoveryResendsEventOfEndedGeneration(t *testing.T) {
	reg := pingRegistry(func(ctx *orchestration.Context, n int) (string, error) {
		if n == 0 {
			if err := ctx.SendEvent("r", "ping", "from generation 0"); err != nil {
				return "", err
			}
			return "", ctx.ContinueAsNew(1)
		}
		return "done", nil
	})
	dir := t.TempDir()
	store := openStore(t, dir)
	now := time.Now().UTC()
	rep := firstEpisode(t, reg, now, startEvent("Receiver", "r", "null"))
	sender := orchestration.NewInstance(reg.Orchestrators(), orchestration.Options{Converter: reg.Converter()})
	sep, err := sender.Step(now, startEvent("Sender", "s", "0"))
	if err != nil || !sep.ContinuedAsNew || !containsKind(sep.Events[:sep.NewGeneration], orchestration.EventSent) {
		t.Fatalf("sender's episode %v: %v", kinds(sep.Events), err)
	}
	sender.Close()
	recordEpisodes(t, store, "r", rep.Events)
	// The two records of a ContinueAsNew; the old one is not truncated yet.
	recordEpisodes(t, store, "s", sep.Events[:sep.NewGeneration], sep.Events[sep.NewGeneration:])
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	c := openEngine(t, reg, dir).Client()
	var out string
	waitOutput(t, c, "r", &out)
	if out != "from generation 0" {
		t.Fatalf("receiver got %q", out)
	}
	waitOutput(t, c, "s", &out)
	if out != "done" {
		t.Fatalf("sender's generation 1 returned %q", out)
	}
}

// TestStaleScheduledStartIgnored: generation 0 of an instance was scheduled
// to start soon, then terminated and started again (generation 1) to start
// in an hour. When generation 0's start message comes, it must not start
// generation 1.
func TestStaleScheduledStartIgnored(t *testing.T) {
	var ran atomic.Int32
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Once", func(*orchestration.Context, any) (string, error) {
		ran.Add(1)
		return "ran", nil
	})
	dir := t.TempDir()
	// Generation 0, due in 3 seconds, recorded but not acted on: the
	// first engine schedules its start message while recovering.
	store := openStore(t, dir)
	now := time.Now().UTC()
	gen0 := startEvent("Once", "s", "null")
	gen0.FireAt, gen0.Timestamp = now.Add(3*time.Second), now
	recordEpisodes(t, store, "s", []orchestration.HistoryEvent{gen0})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	logs, logger := newLogWatch()
	withLogs := func(cfg *durable.Config) { cfg.Logger = logger }
	stop(t, openAt(t, reg, dir, withLogs))

	// Terminated before it was due, then started again for an hour later,
	// as the grain records it.
	store = openStore(t, dir)
	inst := orchestration.NewInstance(reg.Orchestrators(), orchestration.Options{Converter: reg.Converter()})
	if _, err := inst.Replay([]orchestration.HistoryEvent{gen0}); err != nil {
		t.Fatal(err)
	}
	term, err := inst.Record(now, orchestration.HistoryEvent{Kind: orchestration.ExecutionTerminated, RequestID: "terminate"})
	if err != nil || term.Status != orchestration.StatusTerminated {
		t.Fatalf("termination %v (%s): %v", kinds(term.Events), term.Status, err)
	}
	inst.Close()
	gen1 := startEvent("Once", "s", "null")
	gen1.RequestID, gen1.Generation, gen1.FireAt, gen1.Timestamp = "restart", 1, now.Add(time.Hour), now
	recordEpisodes(t, store, "s", term.Events, []orchestration.HistoryEvent{gen1})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	c := openEngine(t, reg, dir, withLogs).Client()
	eventually(t, func() bool {
		return logs.count("dropping the scheduled start of an earlier generation", "instance=s") > 0
	})
	st, err := c.Status(ctxFor(t, 10*time.Second), "s")
	if err != nil {
		t.Fatal(err)
	}
	if st.RuntimeStatus != orchestration.StatusPending || ran.Load() != 0 {
		t.Fatalf("generation 1 is %s and ran %d times before its start time", st.RuntimeStatus, ran.Load())
	}
}
