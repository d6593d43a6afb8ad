package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// Function chaining: the orchestrator calls activities one after another,
// each taking the previous one's output. Every result is recorded before
// the next call is made, so after a crash replay skips the finished steps
// and the chain carries on where it stopped.
type chaining struct {
	price, charge, ship orchestration.ActivityRef[order, order]
	process             orchestration.OrchestratorRef[order, order]
}

// order travels down the chain; each step fills in one more field.
type order struct {
	ID       string `json:"id"`
	Item     string `json:"item"`
	Qty      int    `json:"qty"`
	Cents    int    `json:"cents,omitempty"`    // PriceOrder
	Payment  string `json:"payment,omitempty"`  // ChargeOrder
	Tracking string `json:"tracking,omitempty"` // ShipOrder
}

func (d *chaining) register(reg *durable.Registry) {
	d.price = durable.RegisterActivity(reg, "PriceOrder", func(_ context.Context, o order) (order, error) {
		o.Cents = o.Qty * 450
		return o, nil
	})
	d.charge = durable.RegisterActivity(reg, "ChargeOrder", func(_ context.Context, o order) (order, error) {
		if o.Cents == 0 {
			return o, errors.New("the order has no price")
		}
		o.Payment = "PAY-" + o.ID
		return o, nil
	})
	d.ship = durable.RegisterActivity(reg, "ShipOrder", func(_ context.Context, o order) (order, error) {
		if o.Payment == "" {
			return o, errors.New("the order is not paid")
		}
		o.Tracking = "TRK-" + o.ID
		return o, nil
	})
	d.process = durable.RegisterOrchestrator(reg, "ProcessOrder", d.processOrder)
}

// processOrder is the orchestrator: three activities in sequence.
func (d *chaining) processOrder(ctx *orchestration.Context, o order) (order, error) {
	priced, err := d.price.Call(ctx, o).Await()
	if err != nil {
		return order{}, err
	}
	paid, err := d.charge.Call(ctx, priced).Await()
	if err != nil {
		return order{}, err
	}
	return d.ship.Call(ctx, paid).Await()
}

func (d *chaining) run(ctx context.Context, c *durable.Client, w io.Writer) (string, error) {
	in := order{ID: "A-1001", Item: "notebook", Qty: 3}
	id, err := c.Start(ctx, d.process.Name, in, durable.WithInstanceID("order-"+in.ID))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(w, "started %s: %d x %s\n", id, in.Qty, in.Item)
	var out order
	if err := waitOutput(ctx, c, id, &out); err != nil {
		return "", err
	}

	// The instance's history shows the chain: each step was scheduled with
	// the previous step's result.
	h, err := c.History(ctx, id)
	if err != nil {
		return "", err
	}
	fmt.Fprintln(w, "its history, step by step:")
	names := map[int32]string{}
	var steps []string
	for _, ev := range h {
		switch ev.Kind {
		case orchestration.TaskScheduled:
			names[ev.EventID] = ev.Name
		case orchestration.TaskCompleted:
			var o order
			if err := orchestration.JSON.Unmarshal(ev.Result, &o); err != nil {
				return "", err
			}
			name := names[ev.EventID]
			steps = append(steps, name)
			fmt.Fprintf(w, "  %-12s -> %s\n", name, describeStep(name, o))
		}
	}
	fmt.Fprintf(w, "completed: order %s, $%d.%02d, %s, %s\n", out.ID, out.Cents/100, out.Cents%100, out.Payment, out.Tracking)

	want := order{ID: in.ID, Item: in.Item, Qty: in.Qty, Cents: 1350, Payment: "PAY-A-1001", Tracking: "TRK-A-1001"}
	if out != want {
		return "", fmt.Errorf("output %+v, want %+v", out, want)
	}
	if wantSteps := []string{"PriceOrder", "ChargeOrder", "ShipOrder"}; !slices.Equal(steps, wantSteps) {
		return "", fmt.Errorf("history holds the steps %v, want %v", steps, wantSteps)
	}
	return fmt.Sprintf("order %s priced, paid and shipped as %s (%s)", out.ID, out.Tracking, strings.Join(steps, " -> ")), nil
}

// describeStep says what a step added to the order.
func describeStep(step string, o order) string {
	switch step {
	case "PriceOrder":
		return fmt.Sprintf("%d x %s = $%d.%02d", o.Qty, o.Item, o.Cents/100, o.Cents%100)
	case "ChargeOrder":
		return "paid, payment " + o.Payment
	case "ShipOrder":
		return "shipped, tracking " + o.Tracking
	}
	return fmt.Sprintf("%+v", o)
}
