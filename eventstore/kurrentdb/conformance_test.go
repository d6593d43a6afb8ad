package kurrentdb_test

import (
	"os"
	"testing"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/eventstoretest"
	"github.com/durableactor/durable/eventstore/kurrentdb"
)

// urlEnv names the environment variable holding the connection string of
// the server the conformance suite and the benchmark run against.
const urlEnv = "DURABLE_KURRENTDB_URL"

// maxEventSize is the event size limit the suite runs with. A server with
// default settings accepts at most 1 MiB per append, counting data,
// metadata and twice the event type's length; 1 KiB less leaves room for
// the suite's event types.
const maxEventSize = 1<<20 - 1<<10

// server returns the connection string to test against, skipping tb loudly
// when there is none.
func server(tb testing.TB) string {
	url := os.Getenv(urlEnv)
	if url == "" {
		tb.Skip("DURABLE_KURRENTDB_URL is not set: the KurrentDB conformance suite did NOT run; set it to a kurrentdb:// connection string to run it")
	}
	return url
}

// opener returns a function opening a store on url, closed when its test
// ends.
func opener(url string) func(tb testing.TB) eventstore.Store {
	return func(tb testing.TB) eventstore.Store {
		tb.Helper()
		s, err := kurrentdb.Open(tb.Context(), kurrentdb.Config{
			ConnectionString: url,
			Limits:           eventstore.Limits{MaxEventSize: maxEventSize},
		})
		if err != nil {
			tb.Fatalf("kurrentdb.Open: %v", err)
		}
		tb.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	open := opener(server(t))
	eventstoretest.Exercise(t, open, eventstoretest.Features{
		DeletesFromAll:        false,
		ArbitraryContentTypes: false,
		GapFreePositions:      false,
		// The server accepts Exact(last revision) on a soft-deleted stream,
		// recreating it (see the package documentation).
		DeletedStreamRejectsExact: false,
		MaxEventSize:              maxEventSize,
		// The data lives on the server: reopening is a new client.
		Reopen: func(tb testing.TB, s eventstore.Store) eventstore.Store {
			if err := s.Close(); err != nil {
				tb.Fatalf("Close: %v", err)
			}
			return open(tb)
		},
	})
}

func BenchmarkKurrentDB(b *testing.B) {
	eventstoretest.Benchmark(b, opener(server(b)))
}
