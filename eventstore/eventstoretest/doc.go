// Package eventstoretest holds the conformance suite and the shared benchmark
// that every eventstore.Store backend must pass.
//
// A backend runs the suite from its own tests:
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Exercise(t, func(t testing.TB) eventstore.Store {
//			return memory.New(memory.Config{})
//		}, eventstoretest.Features{
//			DeletesFromAll:            true,
//			ArbitraryContentTypes:     true,
//			GapFreePositions:          true,
//			DeletedStreamRejectsExact: true,
//		})
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		eventstoretest.Benchmark(b, func(testing.TB) eventstore.Store { return memory.New(memory.Config{}) })
//	}
//
// What a backend cannot do is said once, in Features, rather than with skips
// scattered through the tests: the suite then checks the weaker promise
// instead of checking nothing.
//
// The suite is written so that it can run against a shared server that
// already holds other events and serves other tests at the same time. Every
// test names its streams with a random prefix of its own, reads the global log
// only through a filter on that prefix, and never assumes that positions start
// at 1 or that the log holds only its own events. Tests that need to know a
// subscription is live append probe events until one arrives instead of
// sleeping, and every wait ends in a test failure after a generous timeout.
//
// The package imports testing because its whole purpose is to be called from
// tests; production code never imports it.
package eventstoretest
