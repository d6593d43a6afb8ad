// Package orchestration is durable's programming model: orchestrators are
// ordinary Go functions that call activities, start sub-orchestrations,
// sleep on durable timers and wait for external events, and that survive
// crashes because they are re-executed from their recorded history.
//
// # Writing an orchestrator
//
//	var greet = orchestration.NewActivity[string, string]("Greet")
//
//	func helloCities(ctx *orchestration.Context, _ any) ([]string, error) {
//		var out []string
//		for _, city := range []string{"Tokyo", "Seattle", "London"} {
//			s, err := greet.Call(ctx, city).Await()
//			if err != nil {
//				return nil, err
//			}
//			out = append(out, s)
//		}
//		return out, nil
//	}
//
//	reg := orchestration.NewRegistry()
//	orchestration.Register(reg, "HelloCities", helloCities)
//
// Names, not Go function names, identify orchestrators and activities in
// history, so they must stay stable across refactors.
//
// The *Context is not a context.Context on purpose: an orchestrator must be
// deterministic, so it takes time (Now), randomness (NewUUID), waiting
// (CreateTimer, WaitForEvent) and all I/O (activities) from the Context and
// from nothing else. It must not start goroutines that touch the Context.
// Activities are where real work happens; they get a real context.Context
// from the runtime.
//
// Tasks compose: WhenAll waits for several (fan-out/fan-in), WhenAny for the
// first of several (a timeout, a race). A timer or event wait that loses a
// WhenAny is cancelled and never fires into the code. Retry policies retry
// activities and sub-orchestrations on durable timers. ContinueAsNew
// restarts an eternal orchestration with a fresh history.
//
// # Semantics, as in Azure Durable Functions
//
//   - External events that arrive before anyone waits are buffered; each
//     event satisfies one wait, oldest first; event names are
//     case-insensitive.
//   - Terminate, suspend and resume take effect at the next episode; while
//     suspended, inputs are held and delivered on resume.
//   - An activity or sub-orchestration failure surfaces as a
//     *TaskFailedError carrying the failure's type, message and stack; an
//     orchestrator that returns an error or panics fails the instance.
//   - ContinueAsNew carries buffered events into the new generation unless
//     DropUnprocessedEvents is given (the isolated worker's default).
//
// # The executor
//
// Instance is the pure executor: history in, decisions out, no I/O. The
// runtime replays an instance's history once when it activates it, then
// feeds each episode's new inputs to Step and appends what Step returns.
// History events (HistoryEvent) are named after the Durable Task
// Framework's, so histories read as they do in Durable Functions. A replay
// that does not reproduce the recorded decisions fails the instance with a
// *NonDeterminismError naming the recorded event and the code's call.
//
// Package orchestrationtest runs orchestrators in memory for tests, with a
// time-skipping clock, and replays recorded histories against new code.
package orchestration
