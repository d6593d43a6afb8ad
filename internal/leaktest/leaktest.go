// Package leaktest holds what the goroutine-leak checks of the packages
// that run protoactor-go share: the goroutines the library leaves behind.
package leaktest

import "go.uber.org/goleak"

// IgnoreProtoactor ignores the goroutines protoactor-go leaves behind on
// purpose and gives no way to stop.
//
// Its log throttles (actor.NewThrottle, actor.NewThrottleWithLogger) start a
// goroutine per throttling window that waits on a ticker for the whole
// window and then ends by itself: the dead-letter throttle of every actor
// system (1s), gossip's and the gossip actor's (60s), so they outlive the
// tests. Their function names depend on whether the compiler inlined the
// constructor into its caller, hence several forms.
//
// The test cluster provider ranges over a ticker channel that its Shutdown
// stops but never closes, so that goroutine never ends.
func IgnoreProtoactor() []goleak.Option {
	var opts []goleak.Option
	for _, fn := range []string{
		"actor.NewThrottle.func1.1",
		"actor.NewThrottleWithLogger.func1.1",
		"actor.NewDeadLetter.NewThrottle.func4.1",
		"cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1",
		"cluster.NewGossipActor.NewThrottleWithLogger.func2.1",
		"cluster/clusterproviders/test.(*Provider).startTtlReport.func1",
	} {
		opts = append(opts, goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/"+fn))
	}
	return opts
}
