package storeload_test

import (
	"slices"
	"testing"
	"time"

	"github.com/durableactor/durable/eventstore/memory"
	"github.com/durableactor/durable/internal/storeload"
)

func TestAppendLatencies(t *testing.T) {
	s := memory.New(memory.Config{})
	defer s.Close()
	// 4 writers, 3 events per append, 100 events: 33 full appends and one
	// of a single event.
	res, err := storeload.Append(t.Context(), s, 4, 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 100 || len(res.Latencies) != 34 || !slices.IsSorted(res.Latencies) {
		t.Fatalf("%d events, %d latencies (sorted: %v)", res.Events, len(res.Latencies), slices.IsSorted(res.Latencies))
	}
	if res.P50 != storeload.Percentile(res.Latencies, 50) || res.P99 != storeload.Percentile(res.Latencies, 99) || res.P50 > res.P99 {
		t.Fatalf("p50 %v, p99 %v of %v", res.P50, res.P99, res.Latencies)
	}
}

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := range 100 {
		hundred = append(hundred, time.Duration(i))
	}
	for _, c := range []struct {
		sorted []time.Duration
		pct    int
		want   time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{7}, 0, 7},
		{[]time.Duration{7}, 99, 7},
		{[]time.Duration{1, 2}, 50, 2},
		{hundred, 0, 0},
		{hundred, 29, 29},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 100, 99},
	} {
		if got := storeload.Percentile(c.sorted, c.pct); got != c.want {
			t.Errorf("Percentile(%d of %d) = %v, want %v", c.pct, len(c.sorted), got, c.want)
		}
	}
}
