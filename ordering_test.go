package durable_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// TestRequestOrderPerInstance: a client makes, one after another, a
// sequence of requests to each of 1,000 instances (suspend, resume, raise).
// Every instance must end in the state its sequence implies, and take its
// events in the order they were raised.
func TestRequestOrderPerInstance(t *testing.T) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Collect", func(ctx *orchestration.Context, n int) ([]int, error) {
		var got []int
		for range n {
			v, err := orchestration.WaitForEvent[int](ctx, "item").Await()
			if err != nil {
				return nil, err
			}
			got = append(got, v)
		}
		return got, nil
	})
	c := openEngine(t, reg, "").Client()
	ctx := ctxFor(t, 3*time.Minute)
	const instances = 1000
	var g errgroup.Group
	g.SetLimit(100)
	for i := range instances {
		id := fmt.Sprintf("order-%04d", i)
		// Even instances end running and complete; odd ones end suspended.
		steps := []func() error{
			func() error { return c.Suspend(ctx, id, "") },
			func() error { return c.RaiseEvent(ctx, id, "item", 1) },
			func() error { return c.Resume(ctx, id, "") },
			func() error { return c.RaiseEvent(ctx, id, "item", 2) },
			func() error { return c.Suspend(ctx, id, "") },
			func() error { return c.RaiseEvent(ctx, id, "item", 3) },
			func() error { return c.Resume(ctx, id, "") },
			func() error { return c.RaiseEvent(ctx, id, "item", 4) },
			func() error { return c.RaiseEvent(ctx, id, "item", 5) },
		}
		if i%2 == 1 {
			steps = append(steps[:len(steps)-1], func() error { return c.Suspend(ctx, id, "") },
				func() error { return c.RaiseEvent(ctx, id, "item", 5) })
		}
		g.Go(func() error {
			if _, err := c.Start(ctx, "Collect", 5, durable.WithInstanceID(id)); err != nil {
				return err
			}
			for n, step := range steps {
				if err := step(); err != nil {
					return fmt.Errorf("%s step %d: %w", id, n, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range instances {
		id := fmt.Sprintf("order-%04d", i)
		g.Go(func() error {
			if i%2 == 1 {
				st, err := c.Status(ctx, id)
				if err != nil {
					return err
				}
				if st.RuntimeStatus != orchestration.StatusSuspended {
					return fmt.Errorf("%s ended its requests with a Suspend but is %s", id, st.RuntimeStatus)
				}
				if err := c.Resume(ctx, id, ""); err != nil {
					return err
				}
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			st, err := c.Wait(ctx, id)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			var got []int
			if err := st.DecodeOutput(&got); err != nil {
				return err
			}
			if !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
				return fmt.Errorf("%s took the events in the order %v", id, got)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
