package pebble

import (
	"context"
	"fmt"
	"testing"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/racedetector"
)

// longNames fills a store with events whose stream names are as long as the
// engine's ("orchestration-" and 32 hex digits, and more) and whose type is
// longer than 32 bytes, which is where converting them to strings starts to
// allocate.
func longNames(t testing.TB, n int) *Store {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := range n {
		name := fmt.Sprintf("orchestration-%032x-%03d", i, i%1000)
		if _, err := s.Append(context.Background(), name, eventstore.Any, eventstore.EventData{Type: "OrchestrationExecutionStartedEvent"}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

var skippingFilters = map[string]eventstore.Filter{
	"Stream":   {StreamPrefixes: []string{"activity-", "timer-"}},
	"Type":     {StreamPrefixes: []string{"orchestration-"}, EventTypePrefixes: []string{"OrchestrationExecutionCompleted"}},
	"TypeOnly": {EventTypePrefixes: []string{"OrchestrationExecutionCompleted"}},
}

// TestReadLogSkipsWithoutAllocating checks that the entries of the global log
// a filter skips cost no allocation.
func TestReadLogSkipsWithoutAllocating(t *testing.T) {
	if racedetector.Enabled {
		t.Skip("the race detector allocates")
	}
	const n = 200
	s := longNames(t, n)
	v, err := s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer v.release()
	for name, f := range skippingFilters {
		var dec decoder
		var out []eventstore.RecordedEvent
		allocs := testing.AllocsPerRun(10, func() {
			var examined int
			out, _, examined, err = v.readLog(&dec, 1, false, f, 16, scanPage, out[:0])
			if err != nil || examined != n || len(out) != 0 {
				t.Fatalf("%s: examined %d entries and kept %d, error %v; want %d, 0, nil", name, examined, len(out), err, n)
			}
		})
		// The iterator costs a few allocations; the entries it skips none.
		if allocs > n/10 {
			t.Errorf("%s: a read skipping %d entries made %.0f allocations", name, n, allocs)
		}
	}
}

func BenchmarkReadLogSkipping(b *testing.B) {
	const n = 4096
	s := longNames(b, n)
	for name, f := range skippingFilters {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var dec decoder
			var out []eventstore.RecordedEvent
			for b.Loop() {
				v, err := s.acquire()
				if err != nil {
					b.Fatal(err)
				}
				out, _, _, err = v.readLog(&dec, 1, false, f, 16, n, out[:0])
				v.release()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
