// Package delivery carries the messages addressed to actor grains (external
// events, control messages such as terminate, suspend and resume, and fired
// durable timers) on NATS JetStream, through Watermill.
//
// It is the durable mailbox between the outside world and the grains: a
// message is stored before Publish returns, it is handed to a Handler until
// the handler says it is done (the grain has persisted the input), and a
// durable timer is a message that the NATS server itself delivers later.
//
// # Using it
//
//	bus, err := delivery.Open(ctx, delivery.Config{Dir: "data/nats"})
//	...
//	defer bus.Close()
//
//	// Anyone: an API call raising an event.
//	err = bus.Publish(ctx, delivery.Events, delivery.Message{
//		ID: eventID, Kind: "orchestration", Identity: instanceID,
//		Type: "EventRaised", Payload: body,
//	})
//
//	// A grain, after persisting "timer created": the timer itself.
//	err = bus.Schedule(ctx, fireAt, delivery.Message{
//		ID: timerID, Kind: "orchestration", Identity: instanceID, Type: "TimerFired",
//	})
//
//	// The engine: forward every message to its grain and ack once the grain
//	// replied that the input is in its stream.
//	err = bus.Run(ctx, func(ctx context.Context, topic delivery.Topic, m delivery.Message) error {
//		return forwardToGrainAndWaitForPersist(ctx, m)
//	})
//
// # The guarantees, and what they are not
//
// Delivery is at least once. A handler that returns nil acknowledges the
// message and it is not delivered again, across restarts. A handler that
// returns an error or panics is called again after a backoff
// (Config.RetryBackoff, doubling up to Config.RetryBackoffMax), for as long
// as it takes: a failure that may pass (the grain's store is down) never
// moves a message aside, because a durable timer must not die in a queue
// nobody reads. Only a message that can never be handled goes to the poison
// topic: its handler returned a Permanent error, it cannot be decoded, or
// its handler panicked on Config.MaxDeliveries deliveries. It is kept there
// with the reason, acknowledged, listed by Bus.Poisoned, and Bus.Redrive
// publishes it again or Bus.Discard drops it. Bus.DeadLetter puts a message
// there directly, for a receiver that cannot hand it over. A message can
// still arrive twice: after a crash between the handler's work and the ack,
// or when a handler outlives Config.AckWait. So the receiver drops
// duplicates by Message.ID, as the engine's invariant "every input carries
// an ID and the receiver drops duplicates" requires. JetStream also drops a
// second Publish of the same ID within Config.DuplicateWindow.
//
// Order is not guaranteed, not even per grain: Run handles up to
// Config.Concurrency messages of a topic at once, several Runs share the
// work, and a message that failed comes back after the ones behind it. A
// grain must not rely on the order of its inputs from this package (the
// order that counts is the one in its own event stream).
//
// # Durable timers
//
// Timers use NATS message schedules (ADR-51, nats-server 2.12 and later).
// Schedule publishes the message to a subject of its own,
// <prefix>.schedules.<ID>, in the timers stream, with the headers
//
//	Nats-Schedule: @at 2026-05-01T12:00:00.25Z
//	Nats-Schedule-Target: <prefix>.timers
//
// At that time the server copies the message (minus the scheduling headers)
// to the target subject, where Run's Timers consumer reads it, and purges
// the schedule. The server marks each schedule "Nats-Rollup: sub", so
// scheduling the same ID again replaces the pending schedule, and
// Unschedule is a purge of that one subject. Nothing of this lives in our
// process: a 72-hour approval timeout survives any number of restarts, of
// the process and of the server. IDs are escaped into one subject token
// (dots, spaces, wildcards and non-ASCII become %XX), so any ID works. The
// server checks schedules on a timer that never runs more often than every
// 250ms, which bounds how late a due timer can fire.
//
// # Where the messages live
//
// With Config.Dir the bus starts an embedded nats-server in this process,
// JetStream on disk in Dir, and by default no network listener at all: the
// clients connect through an in-process pipe. Config.Listen adds a listener
// for tools. With Config.URL it uses an external NATS server (or cluster)
// instead; Config.Prefix keeps several engines apart there.
//
// Open creates, or updates, under the prefix (default "durable"):
//
//	stream <prefix>-events   subject <prefix>.events                       work queue
//	stream <prefix>-timers   subjects <prefix>.timers, <prefix>.schedules.> work queue, schedules
//	stream <prefix>-poison   subject <prefix>.poison                       kept until removed
//	consumer <prefix>-events, <prefix>-timers: durable, push, deliver group of the same name
//
// Work-queue retention deletes a message once it is acknowledged, so the
// streams hold only what is not done; nothing expires by age, which a
// long timer could not afford.
//
// # Watermill and nats.go
//
// Run goes through Watermill: a Watermill router whose handlers read a
// watermill-nats subscriber bound to the durable consumers, with Watermill's
// PoisonQueue and Recoverer middleware and our own decision of when a
// failure is final. A Message maps
// onto a Watermill message as UUID = ID, metadata Durable-Kind,
// Durable-Identity and Durable-Type, payload = Payload; on the wire that is
// the watermill-nats header convention.
//
// Publishing uses nats.go's JetStream API directly, with the codec the
// subscriber decodes with: Publish (and the poison queue) send the message ID
// as Nats-Msg-Id, so JetStream drops duplicates, and a batch is published
// asynchronously with its acknowledgements awaited together. The rest uses
// nats.go's JetStream API too, where Watermill has no notion of it: creating
// streams and consumers, publishing schedules (without Nats-Msg-Id, which
// would make JetStream drop a reschedule as a duplicate), purging a
// schedule, and reading the poison stream and backlog counts.
//
// # Stopping
//
// When Run's context ends or the bus is closed, Run stops taking messages,
// lets the handler finish the ones it already holds and waits until their
// acks are confirmed by the server, and only then closes the router. So a
// clean stop never makes a finished handler call run again. Close then
// closes the connections and shuts the embedded server down; all data stays
// in Dir.
//
// # Logging
//
// Everything the package, the NATS server and Watermill log goes to
// Config.Logger; their informational chatter at Debug. Nothing writes to
// stdout.
package delivery
