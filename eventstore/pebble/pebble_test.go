package pebble

import (
	"testing"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/eventstoretest"
)

func open(t testing.TB) eventstore.Store {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen closes a store and opens its directory again.
func reopen(t testing.TB, s eventstore.Store) eventstore.Store {
	cfg := s.(*Store).cfg
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	eventstoretest.Exercise(t, open, eventstoretest.Features{
		DeletesFromAll:            true,
		ArbitraryContentTypes:     true,
		GapFreePositions:          true,
		DeletedStreamRejectsExact: true,
		Reopen:                    reopen,
	})
}

func BenchmarkStore(b *testing.B) {
	eventstoretest.Benchmark(b, open)
}
