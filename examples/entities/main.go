// Command entities shows durable's entities on the embedded defaults: a
// counter signalled by ID, bank transfers that lock two accounts from many
// orchestrations at once, and an event-sourced shopping cart whose stream
// holds its domain events. Everything lives in a temporary directory that
// is removed at exit.
//
//	go run ./examples/entities
//
// It prints what happens and exits non-zero if any result is wrong.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/orchestration"
)

// Counter is the Durable Functions counter: its state is a number, and
// each operation changes it in place.
type Counter struct{ Value int }

// Account is a bank account.
type Account struct{ Balance int }

// Transfer moves Amount from one account to another.
type Transfer struct {
	From, To string
	Amount   int
}

// Cart is an event-sourced shopping cart: its state is what its events
// add up to.
type Cart struct{ Items map[string]int }

func register() (reg *durable.Registry, counter, account, cart durable.EntityRef) {
	reg = durable.NewRegistry()

	counter = durable.RegisterEntity(reg, "counter", entities.Ops[Counter]{
		"add":   entities.Update(func(_ *entities.Context, c *Counter, n int) error { c.Value += n; return nil }),
		"get":   entities.Do(func(_ *entities.Context, c *Counter, _ struct{}) (int, error) { return c.Value, nil }),
		"reset": entities.Update(func(ctx *entities.Context, _ *Counter, _ struct{}) error { ctx.DeleteState(); return nil }),
	})

	account = durable.RegisterEntity(reg, "account", entities.Ops[Account]{
		"deposit": entities.Update(func(_ *entities.Context, a *Account, n int) error { a.Balance += n; return nil }),
		"withdraw": entities.Update(func(_ *entities.Context, a *Account, n int) error {
			if a.Balance < n {
				return fmt.Errorf("insufficient funds: %d < %d", a.Balance, n)
			}
			a.Balance -= n
			return nil
		}),
		"balance": entities.Do(func(_ *entities.Context, a *Account, _ struct{}) (int, error) { return a.Balance, nil }),
	})
	// A transfer locks both accounts, so that no other transfer sees the
	// money half moved; sections lock in one global order and never
	// deadlock.
	durable.RegisterOrchestrator(reg, "Transfer", func(ctx *orchestration.Context, t Transfer) (bool, error) {
		from, to := account.ID(t.From), account.ID(t.To)
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

	cart = durable.RegisterEventSourcedEntity(reg, "cart", entities.EventSourced[Cart]{
		Commands: map[string]entities.Command[Cart]{
			"add": entities.Handle(func(ctx *entities.Context, _ Cart, item string) (any, error) {
				return nil, ctx.Emit("ItemAdded", item)
			}),
			"remove": entities.Handle(func(ctx *entities.Context, c Cart, item string) (any, error) {
				if c.Items[item] == 0 {
					return nil, fmt.Errorf("no %s in the cart", item)
				}
				return nil, ctx.Emit("ItemRemoved", item)
			}),
		},
		Apply: func(c *Cart, ev entities.Event) error {
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
				if c.Items[item]--; c.Items[item] == 0 {
					delete(c.Items, item)
				}
			default:
				return fmt.Errorf("unknown event %q", ev.Type)
			}
			return nil
		},
		SnapshotEvery: 3,
	})
	return reg, counter, account, cart
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "entities:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "durable-entities-*")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	// The example opens the event store itself, to show the cart's stream.
	store, err := pebble.Open(pebble.Config{Dir: dir + "/events"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	reg, counter, account, cart := register()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine, err := durable.Open(ctx, durable.Config{Dir: dir, Registry: reg, Logger: logger, Store: store})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, engine.Stop(stopCtx))
	}()
	if err := engine.Start(ctx); err != nil {
		return err
	}
	c := engine.Client()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	fmt.Fprintln(w, "1. A counter, signalled by ID")
	id := counter.ID("game-1")
	for _, n := range []int{5, 3, 2} {
		if err := c.SignalEntity(ctx, id, "add", n); err != nil {
			return err
		}
		fmt.Fprintf(w, "   signal %s add %d\n", id, n)
	}
	var n int
	if err := c.CallEntity(ctx, id, "get", nil, &n); err != nil {
		return err
	}
	var st Counter
	if _, err := c.EntityState(ctx, id, &st); err != nil {
		return err
	}
	fmt.Fprintf(w, "   call %s get -> %d; its state, read without activating it: %+v\n", id, n, st)
	if n != 10 || st.Value != 10 {
		return fmt.Errorf("the counter is %d, want 10", n)
	}

	fmt.Fprintln(w, "\n2. Transfers between accounts, each locking both")
	for _, a := range []string{"alice", "bob", "carol"} {
		if err := c.SignalEntity(ctx, account.ID(a), "deposit", 100); err != nil {
			return err
		}
	}
	transfers := []Transfer{{"alice", "bob", 30}, {"bob", "carol", 80}, {"carol", "alice", 10}, {"alice", "carol", 500}, {"bob", "alice", 40}}
	var ids []string
	for _, t := range transfers {
		tid, err := c.Start(ctx, "Transfer", t)
		if err != nil {
			return err
		}
		ids = append(ids, tid)
	}
	for i, tid := range ids {
		st, err := c.Wait(ctx, tid)
		if err != nil {
			return err
		}
		var ok bool
		if err := st.DecodeOutput(&ok); err != nil {
			return err
		}
		fmt.Fprintf(w, "   %s -> %s %d: moved %v\n", transfers[i].From, transfers[i].To, transfers[i].Amount, ok)
	}
	total := 0
	for _, a := range []string{"alice", "bob", "carol"} {
		var b int
		if err := c.CallEntity(ctx, account.ID(a), "balance", nil, &b); err != nil {
			return err
		}
		fmt.Fprintf(w, "   %s has %d\n", a, b)
		total += b
	}
	fmt.Fprintf(w, "   total %d\n", total)
	if total != 300 {
		return fmt.Errorf("the accounts hold %d, want 300", total)
	}

	fmt.Fprintln(w, "\n3. An event-sourced cart")
	cid := cart.ID("order-7")
	for _, item := range []string{"apple", "pear", "apple", "fig"} {
		if err := c.SignalEntity(ctx, cid, "add", item); err != nil {
			return err
		}
	}
	if err := c.CallEntity(ctx, cid, "remove", "pear", nil); err != nil {
		return err
	}
	if err := c.CallEntity(ctx, cid, "remove", "kiwi", nil); err != nil {
		fmt.Fprintf(w, "   remove kiwi: %v\n", err)
	}
	var ct Cart
	if _, err := c.EntityState(ctx, cid, &ct); err != nil {
		return err
	}
	fmt.Fprintf(w, "   state: %v\n", ct.Items)
	fmt.Fprintln(w, "   its stream, as any reader of the event store sees it:")
	domain := 0
	for ev, err := range store.ReadStream(ctx, "entity-"+cid.String(), eventstore.ReadStreamOptions{}) {
		if err != nil {
			return err
		}
		if ev.Type == "durable.EntityBatch" {
			continue
		}
		domain++
		fmt.Fprintf(w, "     %d %s %s\n", ev.Revision, ev.Type, ev.Data)
	}
	if domain != 5 || ct.Items["apple"] != 2 || ct.Items["fig"] != 1 || len(ct.Items) != 2 {
		return fmt.Errorf("the cart holds %v after %d events", ct.Items, domain)
	}
	return nil
}
