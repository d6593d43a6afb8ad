package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/eventstoretest"
	"github.com/durableactor/durable/eventstore/memory"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// iterator and subscription of the store must end when its loop or its
// context does.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(testing.TB) eventstore.Store { return memory.New(memory.Config{}) }

func TestConformance(t *testing.T) {
	eventstoretest.Exercise(t, open, eventstoretest.Features{
		DeletesFromAll:            true,
		ArbitraryContentTypes:     true,
		GapFreePositions:          true,
		DeletedStreamRejectsExact: true,
	})
}

// TestConformanceSmallEvents runs the suite against a store with a small
// event size limit, to check that a configured limit is the one enforced.
func TestConformanceSmallEvents(t *testing.T) {
	const limit = 4 << 10
	eventstoretest.Exercise(t, func(testing.TB) eventstore.Store {
		return memory.New(memory.Config{Limits: eventstore.Limits{MaxEventSize: limit}})
	}, eventstoretest.Features{
		DeletesFromAll:            true,
		ArbitraryContentTypes:     true,
		GapFreePositions:          true,
		DeletedStreamRejectsExact: true,
		MaxEventSize:              limit,
	})
}

func BenchmarkStore(b *testing.B) {
	eventstoretest.Benchmark(b, open)
}
