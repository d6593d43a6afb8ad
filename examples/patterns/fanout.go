package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// Fan-out/fan-in: the orchestrator starts many activities at once, waits
// for all of them with WhenAll and aggregates their results. Here 100
// activities each count the primes in one block of 1,000 numbers, and the
// orchestrator adds the counts up: the primes below 100,000.
type fanOut struct {
	countPrimes orchestration.ActivityRef[int, int]
	sum         orchestration.OrchestratorRef[int, int]

	// running and peak measure how many activities ran at once.
	running, peak atomic.Int32
}

const (
	fanOutBlocks    = 100
	fanOutBlockSize = 1000
	primesBelow100k = 9592
)

func (d *fanOut) register(reg *durable.Registry) {
	d.countPrimes = durable.RegisterActivity(reg, "CountPrimes", d.countPrimesIn)
	d.sum = durable.RegisterOrchestrator(reg, "SumPrimes", d.sumPrimes)
}

// sumPrimes is the orchestrator: fan out one activity per block, fan in
// with WhenAll, add up.
func (d *fanOut) sumPrimes(ctx *orchestration.Context, blocks int) (int, error) {
	counts := make([]orchestration.Future[int], blocks)
	tasks := make([]orchestration.Awaitable, blocks)
	for i := range blocks {
		counts[i] = d.countPrimes.Call(ctx, i)
		tasks[i] = counts[i]
	}
	if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
		return 0, err
	}
	total := 0
	for _, f := range counts {
		n, err := f.Await() // done already: WhenAll returned
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// countPrimesIn is the activity: it counts the primes in one block.
func (d *fanOut) countPrimesIn(ctx context.Context, block int) (int, error) {
	n := d.running.Add(1)
	defer d.running.Add(-1)
	for {
		p := d.peak.Load()
		if n <= p || d.peak.CompareAndSwap(p, n) {
			break
		}
	}
	// Stand in for I/O (a download, a query), so the parallelism shows.
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	count := 0
	for x := block * fanOutBlockSize; x < (block+1)*fanOutBlockSize; x++ {
		if isPrime(x) {
			count++
		}
	}
	return count, nil
}

func isPrime(x int) bool {
	if x < 2 {
		return false
	}
	for d := 2; d*d <= x; d++ {
		if x%d == 0 {
			return false
		}
	}
	return true
}

func (d *fanOut) run(ctx context.Context, c *durable.Client, w io.Writer) (string, error) {
	id, err := c.Start(ctx, d.sum.Name, fanOutBlocks, durable.WithInstanceID("primes"))
	if err != nil {
		return "", err
	}
	fmt.Fprintf(w, "started %s: %d CountPrimes activities, one per block of %d numbers\n", id, fanOutBlocks, fanOutBlockSize)
	var total int
	if err := waitOutput(ctx, c, id, &total); err != nil {
		return "", err
	}
	fmt.Fprintf(w, "fanned out: up to %d activities ran at once\n", d.peak.Load())
	fmt.Fprintf(w, "fanned in:  WhenAll gave %d counts, which add up to %d primes below %d\n", fanOutBlocks, total, fanOutBlocks*fanOutBlockSize)
	if total != primesBelow100k {
		return "", fmt.Errorf("counted %d primes below 100,000, want %d", total, primesBelow100k)
	}
	if d.peak.Load() < 2 {
		return "", fmt.Errorf("the activities ran one at a time, not in parallel")
	}
	return fmt.Sprintf("%d primes below %d from %d parallel activities", total, fanOutBlocks*fanOutBlockSize, fanOutBlocks), nil
}
