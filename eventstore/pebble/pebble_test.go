package pebble

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// TestStreamFilter checks that the filter never forgets a stream, also
// across the rebuilds that grow it.
func TestStreamFilter(t *testing.T) {
	f := newStreamFilter(0)
	for i := range 3 * minFilterCapacity {
		name := fmt.Sprintf("orchestration-%d", i)
		f.add(name)
		if !f.mayContain(name) {
			t.Fatalf("%s forgotten", name)
		}
	}
	falsePositives := 0
	for i := range 10000 {
		if f.mayContain(fmt.Sprintf("never-%d", i)) {
			falsePositives++
		}
	}
	// Overfilled three times, the filter answers yes more often, never no
	// for a stream it holds.
	if falsePositives == 10000 {
		t.Fatal("the filter says yes to everything")
	}

	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// More streams than the initial filter holds: the committer rebuilds it,
	// and every stream keeps its state. Many writers, so group commit keeps
	// this quick.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < minFilterCapacity+100; i += 64 {
				if _, err := s.Append(ctx, fmt.Sprintf("s-%d", i), eventstore.NoStream, eventstore.EventData{Type: "x"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, minFilterCapacity - 1, minFilterCapacity + 99} {
		_, err := s.Append(ctx, fmt.Sprintf("s-%d", i), eventstore.NoStream, eventstore.EventData{Type: "x"})
		if !errors.Is(err, eventstore.ErrWrongExpectedRevision) {
			t.Fatalf("stream s-%d: a second NoStream append gave %v", i, err)
		}
	}
}
