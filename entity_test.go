package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
)

type counterState struct {
	Value int
	Pad   string `json:",omitempty"`
}

func counterRegistry() (*durable.Registry, durable.EntityRef) {
	reg := durable.NewRegistry()
	counter := durable.RegisterEntity(reg, "Counter", entities.Ops[counterState]{
		"add": entities.Update(func(_ *entities.Context, c *counterState, n int) error {
			if n < 0 {
				return errors.New("negative amounts are not allowed")
			}
			c.Value += n
			return nil
		}),
		"get": entities.Do(func(_ *entities.Context, c *counterState, _ struct{}) (int, error) { return c.Value, nil }),
		"reset": entities.Update(func(ctx *entities.Context, _ *counterState, _ struct{}) error {
			ctx.DeleteState()
			return nil
		}),
		"grow": entities.Update(func(_ *entities.Context, c *counterState, n int) error {
			c.Pad = strings.Repeat("x", n)
			return nil
		}),
	})
	return reg, counter
}

// TestEntityCounter: the Durable Functions counter, signalled and called by
// ID, its state read without activating it, kept across a restart.
func TestEntityCounter(t *testing.T) {
	reg, counter := counterRegistry()
	dir := t.TempDir()
	e := openAt(t, reg, dir)
	c := e.Client()
	ctx := ctxFor(t, 30*time.Second)
	id := counter.ID("game-1")
	for i := 1; i <= 10; i++ {
		if err := c.SignalEntity(ctx, id, "add", i); err != nil {
			t.Fatal(err)
		}
	}
	// The same request twice changes the state once.
	for range 2 {
		if err := c.SignalEntity(ctx, id, "add", 100, durable.WithSignalRequestID("once")); err != nil {
			t.Fatal(err)
		}
	}
	var got int
	if err := c.CallEntity(ctx, id, "get", nil, &got); err != nil || got != 155 {
		t.Fatalf("get: %d, %v; want 155", got, err)
	}
	var st counterState
	if has, err := c.EntityState(ctx, entities.NewID("COUNTER", "game-1"), &st); err != nil || !has || st.Value != 155 {
		t.Fatalf("state %+v (%v, %v)", st, has, err)
	}
	if has, err := c.EntityState(ctx, counter.ID("nobody"), &st); err != nil || has {
		t.Fatalf("an entity never signalled has state: %v, %v", has, err)
	}
	stop(t, e)

	c = openEngine(t, reg, dir).Client()
	if err := c.CallEntity(ctx, id, "get", nil, &got); err != nil || got != 155 {
		t.Fatalf("after a restart, get: %d, %v", got, err)
	}
	if err := c.SignalEntity(ctx, id, "reset", nil); err != nil {
		t.Fatal(err)
	}
	if has, err := c.EntityState(ctx, id, &st); err != nil || has {
		t.Fatalf("after reset: has %v, %v", has, err)
	}
}

// TestEntityBadInput: every kind of bad input is a clear error, and the
// entity and the engine keep working.
func TestEntityBadInput(t *testing.T) {
	reg, counter := counterRegistry()
	c := openEngine(t, reg, "", func(cfg *durable.Config) { cfg.MaxEntityStateSize = 1000 }).Client()
	ctx := ctxFor(t, 30*time.Second)
	id := counter.ID("bad")
	if err := c.SignalEntity(ctx, id, "add", 1); err != nil {
		t.Fatal(err)
	}
	var opErr *durable.EntityOperationError
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown kind", c.SignalEntity(ctx, entities.NewID("nope", "k"), "add", 1), "unknown entity kind"},
		{"invalid ID", c.SignalEntity(ctx, entities.NewID("counter", ""), "add", 1), "the key is empty"},
		{"name with @", c.SignalEntity(ctx, entities.NewID("co@unter", "k"), "add", 1), "contains '@'"},
		{"empty operation", c.SignalEntity(ctx, id, "", 1), "operation name is empty"},
		{"unknown operation", c.CallEntity(ctx, id, "fly", nil, nil), "has no operation \"fly\""},
		{"undecodable input", c.CallEntity(ctx, id, "add", "five", nil), "decode input"},
		{"failing operation", c.CallEntity(ctx, id, "add", -1, nil), "negative amounts"},
		{"state too large", c.CallEntity(ctx, id, "grow", 5000, nil), "over the limit of 1000"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, tc.err, tc.want)
		}
	}
	if err := c.CallEntity(ctx, id, "fly", nil, nil); !errors.As(err, &opErr) || !errors.Is(err, err) {
		t.Fatalf("an operation's failure is not an EntityOperationError: %v", err)
	}
	var got int
	if err := c.CallEntity(ctx, id, "get", nil, &got); err != nil || got != 1 {
		t.Fatalf("after the bad requests: %d, %v", got, err)
	}
}

// TestEntityScheduledSignal: a signal scheduled for later runs then.
func TestEntityScheduledSignal(t *testing.T) {
	reg, counter := counterRegistry()
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	id := counter.ID("later")
	at := time.Now().Add(500 * time.Millisecond)
	if err := c.SignalEntity(ctx, id, "add", 3, durable.WithSignalTime(at)); err != nil {
		t.Fatal(err)
	}
	var got int
	if err := c.CallEntity(ctx, id, "get", nil, &got); err != nil || got != 0 {
		t.Fatalf("before its time: %d, %v", got, err)
	}
	for got != 3 {
		if err := c.CallEntity(ctx, id, "get", nil, &got); err != nil {
			t.Fatal(err)
		}
		if got != 3 {
			select {
			case <-ctx.Done():
				t.Fatal("the scheduled signal never ran")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if time.Now().Before(at) {
		t.Fatal("the scheduled signal ran early")
	}
}

type cartState struct {
	Items map[string]int
}

func cartRegistry() (*durable.Registry, durable.EntityRef) {
	reg := durable.NewRegistry()
	cart := durable.RegisterEventSourcedEntity(reg, "cart", entities.EventSourced[cartState]{
		Commands: map[string]entities.Command[cartState]{
			"add": entities.Handle(func(ctx *entities.Context, c cartState, item string) (int, error) {
				return c.Items[item] + 1, ctx.Emit("ItemAdded", item)
			}),
			"remove": entities.Handle(func(ctx *entities.Context, c cartState, item string) (any, error) {
				if c.Items[item] == 0 {
					return nil, fmt.Errorf("no %s in the cart", item)
				}
				return nil, ctx.Emit("ItemRemoved", item)
			}),
		},
		Apply: func(c *cartState, ev entities.Event) error {
			var item string
			if err := ev.Decode(&item); err != nil {
				return err
			}
			if c.Items == nil {
				c.Items = map[string]int{}
			}
			switch ev.Type {
			case "ItemAdded":
				c.Items[item]++
			case "ItemRemoved":
				c.Items[item]--
				if c.Items[item] == 0 {
					delete(c.Items, item)
				}
			}
			return nil
		},
		SnapshotEvery: 5,
	})
	return reg, cart
}

// TestEventSourcedCart: an event-sourced cart's stream holds its domain
// events, which a subscriber of the category follows as they are written;
// its state survives a restart through snapshots and the events after.
func TestEventSourcedCart(t *testing.T) {
	reg, cart := cartRegistry()
	dir := t.TempDir()
	store, err := pebble.Open(pebble.Config{Dir: dir + "/events", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() }) // after the engines' Stop, which run first
	ctx := ctxFor(t, 60*time.Second)
	// A subscriber follows the category from the start.
	var mu sync.Mutex
	var seen []string
	subCtx, cancelSub := context.WithCancel(ctx)
	subDone := make(chan struct{})
	got12 := make(chan struct{})
	go func() {
		defer close(subDone)
		filter := eventstore.Filter{StreamPrefixes: []string{"entity-cart@"}, EventTypePrefixes: []string{"Item"}}
		for ev, err := range store.SubscribeToAll(subCtx, eventstore.SubscribeAllOptions{From: eventstore.AllStart, Filter: filter}) {
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, ev.Stream+" "+ev.Type+" "+string(ev.Data))
			if len(seen) == 12 {
				close(got12)
			}
			mu.Unlock()
		}
	}()
	e := openEngine(t, reg, dir, func(cfg *durable.Config) { cfg.Store = store })
	c := e.Client()
	id := cart.ID("42")
	for i := range 10 {
		if err := c.SignalEntity(ctx, id, "add", fmt.Sprint("item", i%3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CallEntity(ctx, id, "remove", "item0", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.CallEntity(ctx, id, "remove", "nothing", nil); err == nil || !strings.Contains(err.Error(), "no nothing in the cart") {
		t.Fatalf("a refused command: %v", err)
	}
	var n int
	if err := c.CallEntity(ctx, id, "add", "item9", &n); err != nil || n != 1 {
		t.Fatalf("add returned %d, %v", n, err)
	}
	<-got12
	cancelSub()
	<-subDone
	mu.Lock()
	if seen[0] != `entity-cart@42 ItemAdded "item0"` || seen[10] != `entity-cart@42 ItemRemoved "item0"` || len(seen) != 12 {
		t.Fatalf("the subscriber saw %q", seen)
	}
	mu.Unlock()
	want := cartState{Items: map[string]int{"item0": 3, "item1": 3, "item2": 3, "item9": 1}}
	var st cartState
	if has, err := c.EntityState(ctx, id, &st); err != nil || !has || fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("state %+v (%v, %v), want %+v", st, has, err, want)
	}
	// A new engine rebuilds it from the last snapshot and the events after.
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c = openEngine(t, reg, dir, func(cfg *durable.Config) { cfg.Store = store }).Client()
	if err := c.CallEntity(ctx, id, "add", "item9", &n); err != nil || n != 2 {
		t.Fatalf("after a restart, add returned %d, %v", n, err)
	}
}
