package durable_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// BenchmarkRaiseEvent measures events raised by 100 clients, each to its
// own instance, one after another, until every instance has recorded its
// events: the cost of delivering external events in order.
func BenchmarkRaiseEvent(b *testing.B) {
	reg := durable.NewRegistry()
	durable.RegisterOrchestrator(reg, "Sink", func(ctx *orchestration.Context, n int) (int, error) {
		for range n {
			if _, err := orchestration.WaitForEvent[int](ctx, "e").Await(); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	ctx := context.Background()
	e, err := durable.Open(ctx, durable.Config{Dir: b.TempDir(), Registry: reg, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(ctx)
	c := e.Client()
	const clients = 100
	per := max(b.N/clients, 1)
	ids := make([]string, clients)
	for i := range ids {
		if ids[i], err = c.Start(ctx, "Sink", per); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				t0 := time.Now()
				if err := c.RaiseEvent(ctx, id, "e", k); err != nil {
					panic(fmt.Sprint(id, err))
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if _, err := c.Wait(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(begin)
	b.ReportMetric(float64(per*clients)/elapsed.Seconds(), "events/s")
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	b.ReportMetric(float64(sum.Microseconds())/float64(len(lat))/1000, "raise_ms")
}
