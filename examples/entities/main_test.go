package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestEntities runs the whole program, so the example cannot rot.
func TestEntities(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"call counter@game-1 get -> 10; its state, read without activating it: {Value:10}",
		"alice -> carol 500: moved false",
		"total 300",
		`remove kiwi: durable: entity cart@order-7 operation "remove" failed: no kiwi in the cart`,
		"state: map[apple:2 fig:1]",
		`ItemRemoved "pear"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}
