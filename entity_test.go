package durable_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/orchestration"
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

type account struct{ Balance int }

type transfer struct {
	From, To string
	Amount   int
}

func bankRegistry() (*durable.Registry, durable.EntityRef) {
	reg := durable.NewRegistry()
	acct := durable.RegisterEntity(reg, "account", entities.Ops[account]{
		"deposit": entities.Update(func(_ *entities.Context, a *account, n int) error { a.Balance += n; return nil }),
		"withdraw": entities.Update(func(_ *entities.Context, a *account, n int) error {
			if a.Balance < n {
				return fmt.Errorf("balance %d is less than %d", a.Balance, n)
			}
			a.Balance -= n
			return nil
		}),
		"balance": entities.Do(func(_ *entities.Context, a *account, _ struct{}) (int, error) { return a.Balance, nil }),
	})
	durable.RegisterOrchestrator(reg, "Transfer", func(ctx *orchestration.Context, t transfer) (bool, error) {
		from, to := acct.ID(t.From), acct.ID(t.To)
		section, err := ctx.LockEntities(from, to)
		if err != nil {
			return false, err
		}
		defer section.Release()
		balance, err := orchestration.CallEntity[int](ctx, from, "balance", nil).Await()
		if err != nil || balance < t.Amount {
			return false, err
		}
		if err := ctx.CallEntity(from, "withdraw", t.Amount).Await(nil); err != nil {
			return false, err
		}
		return true, ctx.CallEntity(to, "deposit", t.Amount).Await(nil)
	})
	return reg, acct
}

// TestTransfersInCriticalSections: hundreds of orchestrations move money
// between accounts at once, each inside a critical section on both
// accounts; the total is conserved, and no lock is left held.
func TestTransfersInCriticalSections(t *testing.T) {
	reg, acct := bankRegistry()
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 2*time.Minute)
	const accounts, transfers = 10, 300
	for i := range accounts {
		if err := c.SignalEntity(ctx, acct.ID(fmt.Sprint(i)), "deposit", 1000); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for range transfers {
		from := r.IntN(accounts)
		to := (from + 1 + r.IntN(accounts-1)) % accounts
		id, err := c.Start(ctx, "Transfer", transfer{From: fmt.Sprint(from), To: fmt.Sprint(to), Amount: 1 + r.IntN(400)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	moved := 0
	for _, id := range ids {
		var ok bool
		waitOutput(t, c, id, &ok)
		if ok {
			moved++
		}
	}
	total := 0
	for i := range accounts {
		// A lock left held would queue this call for ever.
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var b int
		err := c.CallEntity(callCtx, acct.ID(fmt.Sprint(i)), "balance", nil, &b)
		cancel()
		if err != nil {
			t.Fatalf("account %d: %v", i, err)
		}
		if b < 0 {
			t.Fatalf("account %d is overdrawn: %d", i, b)
		}
		total += b
	}
	if total != accounts*1000 {
		t.Fatalf("the total is %d after %d transfers, want %d", total, moved, accounts*1000)
	}
	if moved == 0 {
		t.Fatal("no transfer moved money")
	}
}

// TestCriticalSectionRules: inside a section, calls only to its entities,
// signals only to others, no sub-orchestration, no nesting; and the
// section is released when the orchestration fails.
func TestCriticalSectionRules(t *testing.T) {
	reg, acct := bankRegistry()
	durable.RegisterOrchestrator(reg, "Noop", func(*orchestration.Context, any) (any, error) { return nil, nil })
	durable.RegisterOrchestrator(reg, "Rules", func(ctx *orchestration.Context, _ any) ([]string, error) {
		a, b := acct.ID("a"), acct.ID("b")
		if _, err := ctx.LockEntities(a); err != nil {
			return nil, err
		}
		var broken []string
		note := func(err error) {
			if errors.Is(err, orchestration.ErrLockingRules) {
				broken = append(broken, err.Error())
			}
		}
		note(ctx.CallEntity(b, "balance", nil).Await(nil))
		note(ctx.SignalEntity(a, "deposit", 1))
		note(ctx.CallSubOrchestrator("Noop", nil).Await(nil))
		_, err := ctx.LockEntities(b)
		note(err)
		// Fails while holding the lock: the lock must be released.
		return broken, errors.New("giving up")
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.Start(ctx, "Rules", nil, durable.WithInstanceID("rules")); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, "rules")
	if err != nil || st.RuntimeStatus != orchestration.StatusFailed {
		t.Fatalf("%+v (%v)", st, err)
	}
	h := mustHistory(t, c, "rules")
	unlocks := 0
	for _, ev := range h {
		if ev.Kind == orchestration.EntityUnlockSent {
			unlocks++
		}
	}
	if unlocks != 1 {
		t.Fatalf("the failed orchestration sent %d unlocks: %v", unlocks, kinds(h))
	}
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.CallEntity(callCtx, acct.ID("a"), "deposit", 5, nil); err != nil {
		t.Fatalf("the section of the failed orchestration still holds the entity: %v", err)
	}
}

// TestEndedWhileLocking: an orchestration terminated while its lock request
// waits behind another's section leaves nothing locked once that section
// ends.
func TestEndedWhileLocking(t *testing.T) {
	reg, acct := bankRegistry()
	durable.RegisterOrchestrator(reg, "Hold", func(ctx *orchestration.Context, _ any) (any, error) {
		s, err := ctx.LockEntities(acct.ID("x"))
		if err != nil {
			return nil, err
		}
		defer s.Release()
		return nil, ctx.WaitForEvent("done").Await(nil)
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.Start(ctx, "Hold", nil, durable.WithInstanceID("first")); err != nil {
		t.Fatal(err)
	}
	waitFor := func(id string, kind orchestration.EventKind) {
		eventually(t, func() bool { return containsKind(mustHistory(t, c, id), kind) })
	}
	waitFor("first", orchestration.EntityLockGranted)
	if _, err := c.Start(ctx, "Hold", nil, durable.WithInstanceID("second")); err != nil {
		t.Fatal(err)
	}
	waitFor("second", orchestration.EntityLockRequested)
	if err := c.Terminate(ctx, "second", "give up"); err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, "first", "done", nil); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, c, "first", nil)
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.CallEntity(callCtx, acct.ID("x"), "deposit", 1, nil); err != nil {
		t.Fatalf("the entity stayed locked for a terminated orchestration: %v", err)
	}
}

// TestListAndCleanEntities: entities are listed by kind and key prefix,
// page by page, with their state; cleaning removes those that hold
// nothing.
func TestListAndCleanEntities(t *testing.T) {
	reg, counter := counterRegistry()
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 30*time.Second)
	for i := range 25 {
		if err := c.SignalEntity(ctx, counter.ID(fmt.Sprintf("k%02d", i)), "add", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 { // emptied again
		if err := c.SignalEntity(ctx, counter.ID(fmt.Sprintf("k%02d", i)), "reset", nil); err != nil {
			t.Fatal(err)
		}
	}
	var listed []string
	q := durable.EntityQuery{Name: "COUNTER", KeyPrefix: "k", PageSize: 7, FetchState: true}
	for {
		page, err := c.ListEntities(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entities {
			listed = append(listed, e.ID.Key+"="+string(e.State))
		}
		if page.Next == "" {
			break
		}
		q.ContinuationToken = page.Next
	}
	if len(listed) != 20 || listed[0] != `k05={"Value":5}` || listed[19] != `k24={"Value":24}` {
		t.Fatalf("listed %v", listed)
	}
	all, err := c.ListEntities(ctx, durable.EntityQuery{IncludeEmpty: true})
	if err != nil || len(all.Entities) != 25 {
		t.Fatalf("with the empty ones: %d, %v", len(all.Entities), err)
	}
	res, err := c.CleanEntityStorage(ctx, durable.CleanOptions{RemoveEmpty: true})
	if err != nil || res.Removed != 5 {
		t.Fatalf("clean: %+v, %v", res, err)
	}
	all, err = c.ListEntities(ctx, durable.EntityQuery{IncludeEmpty: true})
	if err != nil || len(all.Entities) != 20 {
		t.Fatalf("after cleaning: %d, %v", len(all.Entities), err)
	}
	// A removed entity comes back with its next operation.
	var got int
	if err := c.CallEntity(ctx, counter.ID("k00"), "get", nil, &got); err != nil || got != 0 {
		t.Fatalf("a removed entity: %d, %v", got, err)
	}
	if err := c.SignalEntity(ctx, counter.ID("k00"), "add", 2); err != nil {
		t.Fatal(err)
	}
	if err := c.CallEntity(ctx, counter.ID("k00"), "get", nil, &got); err != nil || got != 2 {
		t.Fatalf("a removed entity signalled again: %d, %v", got, err)
	}
}

// TestEventSourcedUpgrade: a new version of a kind renames an event (Upcast)
// and changes the state's shape (Version): the old snapshots are dropped
// and the state is rebuilt from every event of the stream.
func TestEventSourcedUpgrade(t *testing.T) {
	reg, cart := cartRegistry()
	dir := t.TempDir()
	e := openAt(t, reg, dir)
	c := e.Client()
	ctx := ctxFor(t, 30*time.Second)
	id := cart.ID("old")
	for _, item := range []string{"a", "b", "a", "c", "a", "b", "a"} { // past a snapshot (every 5)
		if err := c.SignalEntity(ctx, id, "add", item); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, e)

	// Version 2 counts items by a new event name and keeps a total.
	type cartV2 struct {
		Count map[string]int
		Total int
	}
	reg2 := durable.NewRegistry()
	durable.RegisterEventSourcedEntity(reg2, "cart", entities.EventSourced[cartV2]{
		Commands: map[string]entities.Command[cartV2]{
			"total": entities.Handle(func(_ *entities.Context, c cartV2, _ any) (int, error) { return c.Total, nil }),
		},
		Apply: func(c *cartV2, ev entities.Event) error {
			if ev.Type != "Added" {
				return fmt.Errorf("version 2 knows no event %q", ev.Type)
			}
			var item string
			if err := ev.Decode(&item); err != nil {
				return err
			}
			if c.Count == nil {
				c.Count = map[string]int{}
			}
			c.Count[item]++
			c.Total++
			return nil
		},
		Upcast: func(ev entities.Event) (entities.Event, error) {
			if ev.Type == "ItemAdded" {
				return entities.NewEvent("Added", ev.Data, nil), nil
			}
			return ev, nil
		},
		Version: 2,
	})
	c = openEngine(t, reg2, dir).Client()
	var total int
	if err := c.CallEntity(ctx, id, "total", nil, &total); err != nil || total != 7 {
		t.Fatalf("version 2 rebuilt a total of %d (%v), want 7", total, err)
	}
	var st cartV2
	if _, err := c.EntityState(ctx, id, &st); err != nil || st.Count["a"] != 4 {
		t.Fatalf("state %+v (%v)", st, err)
	}
}

// TestEntityStateThatDoesNotDecode: a kind whose state no longer decodes
// what was stored makes its entities refuse with a clear error, and
// leaves the others alone.
func TestEntityStateThatDoesNotDecode(t *testing.T) {
	reg, counter := counterRegistry()
	dir := t.TempDir()
	e := openAt(t, reg, dir)
	ctx := ctxFor(t, 30*time.Second)
	if err := e.Client().SignalEntity(ctx, counter.ID("x"), "add", 3); err != nil {
		t.Fatal(err)
	}
	stop(t, e)
	reg2 := durable.NewRegistry()
	durable.RegisterEntity(reg2, "counter", entities.Ops[[]string]{
		"add": entities.Update(func(_ *entities.Context, s *[]string, _ any) error { *s = append(*s, "x"); return nil }),
	})
	c := openEngine(t, reg2, dir).Client()
	err := c.SignalEntity(ctx, counter.ID("x"), "add", nil)
	if err == nil || !strings.Contains(err.Error(), "cannot be loaded") || !strings.Contains(err.Error(), "cannot unmarshal") {
		t.Fatalf("an entity whose state no longer decodes: %v", err)
	}
	if err := c.SignalEntity(ctx, counter.ID("y"), "add", nil); err != nil {
		t.Fatalf("another entity of the kind: %v", err)
	}
}
