// Package eventstore is the contract every event store backend of durable
// implements: append-only streams of events, a global log in commit order,
// reads, catch-up subscriptions and stream deletion.
//
// The contract is shaped after EventStoreDB (now KurrentDB) so that the
// kurrentdb backend maps onto it one to one, and so that the embedded
// backends behave the way people who know EventStoreDB expect:
//
//   - A stream is named by a string. Its events are numbered by revision,
//     starting at 0, with no gaps while the stream lives.
//   - Every event also gets a global commit position. Positions grow in commit
//     order across all streams, so the global log (ReadAll, SubscribeToAll)
//     is a total order that projections can checkpoint.
//   - Append is atomic for its batch and checks an expected revision
//     (Any, NoStream, StreamExists or Exact). A mismatch is a
//     *WrongExpectedRevisionError. Appending the same event IDs again at the
//     same expected revision returns the original result instead of writing
//     twice, so a caller that lost the reply can simply retry.
//   - Reads and subscriptions are Go iterators. A subscription first catches
//     up from its checkpoint and then follows new appends, in commit order,
//     each event once; a subscriber that resumes from its last saved
//     checkpoint sees events after it again, so processing is at least once
//     across restarts. A slow subscriber lags behind without slowing writers.
//   - DeleteStream removes a stream softly: it reads as not found, and a later
//     append recreates it with revisions continuing after the old ones.
//     TombstoneStream deletes it for good. TruncateBefore hides and removes the
//     events before a revision, for purge and retention.
//
// Backends live in their own packages (memory, pebble, kurrentdb); the
// conformance suite in eventstoretest holds them all to this contract.
package eventstore
