// Package recovery owns one question: which instances must run, and when.
// It is asked the same way after a crash, after an error and in normal
// running, and it answers from durable state only, so that no instance is
// ever stranded (the engine's invariant 6).
//
// # Why an instance runs again
//
// A running instance waits for something that will make it run again. The
// instance index records it for every instance, from the instance's own
// stream (see index.Instance.Due and index.Instance.Stranded):
//
//   - activities and sub-orchestrations in flight: the instance's grain runs
//     them and records their outcomes. A grain that is not active has none
//     running, so after a start every instance with work in flight is woken:
//     its grain reloads and issues that work again (activities run at least
//     once, as in Durable Functions);
//   - a timer or a scheduled start, due at a time: the message bus delivers
//     it (a durable NATS message schedule). The sweep below is the safety
//     net: an instance that is overdue by more than Config.Grace is woken,
//     and its grain fires the timer itself. So a schedule lost in a crash, a
//     bus outage or a poisoned timer message delays a timer, never loses it;
//   - an awaited event or a Resume: something outside sends it, and the
//     client's request returns only once the instance has recorded it;
//   - nothing: the instance is stranded. That is a bug; the sweep reports it
//     loudly and wakes the instance, which replays and records its state.
//
// # Decisions recorded but not carried out
//
// A grain appends an episode's decisions before it acts on them (invariant
// 3). Most acts are repeated by the wake reasons above, but the events an
// instance sends to others are not visible in anyone's wait state. Every
// append and its acts are therefore counted in epochs (Tracker), and once a
// second the position up to which every append has been acted on is stored
// as a checkpoint in the event store itself (stream CheckpointStream), so it
// lives and moves with the data. After a crash, the instances with records
// between that checkpoint and the end of the log at start-up are woken, and
// their grains send those records' events again (see Unacted); request IDs
// make the receivers drop what they already had.
//
// # Waking
//
// Every wake goes through one queue: the start-up scan, the sweep and
// anyone calling Wake put instance IDs on it, a few workers wake them
// through the cluster, and a wake that fails (the store is down, the
// instance's member is gone) is tried again with exponential backoff until
// it succeeds or the instance refuses it for good.
package recovery
