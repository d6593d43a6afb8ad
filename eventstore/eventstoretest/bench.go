package eventstoretest

import (
	"errors"
	"testing"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/storeload"
)

// benchEvents is how many events the read benchmarks read per iteration.
const benchEvents = 100_000

// Benchmark runs the shared benchmarks against the store that open returns,
// reporting "events/s" for each:
//
//   - Append/writers=1 and Append/writers=64: single-event appends, each
//     writer to its own stream with exact expected revisions (one iteration
//     is one append), with p50/p99 append latency.
//   - Append10/writers=8: the same with ten events per append.
//   - ReadStream/events=100000: a full forward read of one stream.
//   - CatchUpAll/events=100000: a filtered subscription to the global log
//     catching up from its start.
//
// The workload lives in internal/storeload, which checks every answer, so
// that the bench program measures the same thing. Each group opens one
// store and fills it once, outside the timed part.
func Benchmark(b *testing.B, open func(b testing.TB) eventstore.Store) {
	b.Run("Append", func(b *testing.B) {
		s := openBench(b, open)
		b.Run("writers=1", func(b *testing.B) { benchAppend(b, s, 1, 1) })
		b.Run("writers=64", func(b *testing.B) { benchAppend(b, s, 64, 1) })
	})
	b.Run("Append10", func(b *testing.B) {
		s := openBench(b, open)
		b.Run("writers=8", func(b *testing.B) { benchAppend(b, s, 8, 10) })
	})
	b.Run("ReadStream", func(b *testing.B) {
		s := openBench(b, open)
		stream, err := storeload.FillStream(b.Context(), s, benchEvents)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("events=100000", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := storeload.ReadStream(b.Context(), s, stream, benchEvents); err != nil {
					b.Fatal(err)
				}
			}
			reportEventsPerSecond(b, benchEvents*b.N)
		})
	})
	b.Run("CatchUpAll", func(b *testing.B) {
		s := openBench(b, open)
		filter, err := storeload.FillAll(b.Context(), s, benchEvents)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("events=100000", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := storeload.CatchUp(b.Context(), s, filter, benchEvents); err != nil {
					b.Fatal(err)
				}
			}
			reportEventsPerSecond(b, benchEvents*b.N)
		})
	})
}

func openBench(b *testing.B, open func(b testing.TB) eventstore.Store) eventstore.Store {
	s := open(b)
	b.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
			b.Errorf("Close: %v", err)
		}
	})
	return s
}

// benchAppend runs b.N appends of eventsPerAppend events from writers
// goroutines.
func benchAppend(b *testing.B, s eventstore.Store, writers, eventsPerAppend int) {
	b.ReportAllocs()
	b.ResetTimer()
	res, err := storeload.Append(b.Context(), s, writers, eventsPerAppend, b.N*eventsPerAppend)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.EventsPerSecond(), "events/s")
	b.ReportMetric(float64(res.P50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(res.P99.Nanoseconds()), "p99-ns")
}

func reportEventsPerSecond(b *testing.B, events int) {
	if secs := b.Elapsed().Seconds(); secs > 0 {
		b.ReportMetric(float64(events)/secs, "events/s")
	}
}
