// Package kurrentdb is an eventstore.Store on a KurrentDB (formerly
// EventStoreDB) server, through the official gRPC client
// github.com/kurrent-io/KurrentDB-Client-Go. It is the event store of
// durable's cluster mode: many nodes share one server, which keeps every
// stream and the global log.
//
// # Connecting
//
//	store, err := kurrentdb.Open(ctx, kurrentdb.Config{
//		ConnectionString: "kurrentdb://localhost:2113?tls=false",
//		Logger:           slog.Default(),
//	})
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// The connection string is the client's own (see Config.ConnectionString):
// credentials go in the user part, a cluster is a comma-separated host list
// or a +discover scheme, and settings such as tls, tlsCAFile or
// nodePreference go in the query. Open reads from the server once, so an
// unreachable server, a TLS mismatch or wrong credentials fail there, with
// the server's address (never the password) in the error. The client's logs
// go to Config.Logger, or nowhere: neither this package nor the client prints
// anything (gRPC's own logger, grpclog, is process-wide and left to the
// application).
//
// # How the contract maps onto KurrentDB
//
// The eventstore contract was shaped after EventStoreDB, so most of it maps
// one to one: streams, revisions, expected revisions (Any, NoStream,
// StreamExists, Exact become the client's StreamState values), atomic
// appends, idempotent retries by event ID (recognised by the server itself),
// catch-up subscriptions, soft delete, tombstones and truncate-before. Stream
// names starting with '$' are rejected before they reach the server, as the
// contract asks; they are KurrentDB's system streams.
//
// Positions. KurrentDB addresses the global log ($all) by a pair of log
// positions, Position{Commit, Prepare}; the contract has one uint64. This
// package uses the commit position, and turns a contract position p back
// into Position{Commit: p, Prepare: p}. That is exact for every event written
// through the gRPC API, which is how durable writes: such a write is an
// implicit transaction whose events are committed where they are prepared,
// and the server's $all reader reports each at TFPos(prepare.LogPosition,
// prepare.LogPosition), so both halves are equal, unique per event and
// increasing in log order. An append's WriteResult reports the position of
// its last event the same way (the server's commit acknowledgement carries
// the log position of the write's final prepare and both result fields are
// set from it), which is what AppendResult.Position promises. Given
// Position{p, p}, the server's forward reads include the event at p and its
// subscriptions start after it, exactly the contract's read and subscription
// semantics. Its backward reads take a position as the end of the previous
// record, so a backward ReadAll from FromPosition(p) first reads the event at
// p forwards and then the rest backwards. Positions are byte offsets in the
// server's log: they grow, but with gaps (GapFreePositions is false), and no
// user event is at 0, where the log begins with the server's own records, so
// a checkpoint of 0 means "from the beginning". The one case where the halves differ is the
// explicit multi-request transaction of the old TCP API (removed in
// KurrentDB 24): all its events share the commit position, so a checkpoint
// on one of them resumes after the whole transaction.
//
// Content types. KurrentDB stores only "is this JSON": application/json
// (with or without parameters) is stored as JSON and reads back as
// application/json; every other content type, empty included, is stored as
// binary and reads back as application/octet-stream. Hence
// ArbitraryContentTypes is false.
//
// Filters. The server filters a subscription to $all by one kind of
// criterion per request, stream-name prefixes or event-type prefixes. When a
// Filter has stream prefixes they go to the server and event-type prefixes
// are applied here; with event-type prefixes only, those go to the server;
// with none, the server is asked to leave out system streams. The client
// cannot filter ReadAll on the server (its ReadAll has no filter option), so
// ReadAll applies the whole Filter here, after the server has sent every
// event. Global reads and subscriptions never yield events of system streams
// or the tombstone markers ($streamDeleted) the server writes into
// tombstoned streams, since neither is part of the contract's global log.
//
// Errors. Wrong expected versions become *eventstore.WrongExpectedRevisionError,
// tombstoned streams *eventstore.TombstonedError, missing ones
// *eventstore.NotFoundError, and appends over the server's own size limits
// *eventstore.EventTooLargeError or *eventstore.AppendTooLargeError. The
// client passes some of these on only as gRPC statuses (it drops the
// trailers that carry the details), so their messages are read, in the
// wording of both older EventStoreDB and current KurrentDB servers. The
// actual revision of a wrong expected revision comes from the structured
// details of servers that send them, or else from the error's message. After
// a failed write that reports a revision, or none, the stream is read once,
// because the server keeps the last revision of a soft-deleted stream and
// reports it where the contract says there is no stream (NoRevision); the
// same read fills in a revision the error left out, as older servers do for
// deletes. A call cut short by its context returns the context's error, one
// cut short by Close eventstore.ErrClosed; anything else is wrapped with the
// operation and stream and still matches the client's *kurrentdb.Error.
//
// Deletion. DeleteStream is KurrentDB's soft delete and TombstoneStream its
// hard delete, the operations the contract copies. TruncateBefore sets the
// stream's $tb metadata, keeping its other metadata, never moving it back and
// never past the stream's end. Unlike the embedded stores, KurrentDB removes
// nothing at once: deleted and truncated events stay in $all, and are read
// by ReadAll and SubscribeToAll, until a scavenge reclaims them
// (DeletesFromAll is false). Stream reads hide them at once.
//
// Soft-deleted streams are where KurrentDB and the contract disagree most,
// because the server still knows their last revision. It refuses
// StreamExists on one with its "stream deleted" error, which this package
// turns back into a wrong expected revision by reading the stream. It
// accepts an exact expected revision equal to that last revision, recreating
// the stream, where the contract says the stream does not exist: removals
// check this with a read first, appends do not, since that would add a read
// to every write. So an append at Exact(last) to a soft-deleted stream
// succeeds here, recreating it with its revisions continuing, and fails on
// the embedded stores (DeletedStreamRejectsExact is false). In durable
// only a stale activation appends to a purged instance's stream; on
// KurrentDB its append recreates the stream instead of failing.
//
// # Conformance
//
// The tests run eventstoretest.Exercise and eventstoretest.Benchmark against
// the server named by the environment variable DURABLE_KURRENTDB_URL, for
// example
//
//	DURABLE_KURRENTDB_URL='kurrentdb://localhost:2113?tls=false' go test ./eventstore/kurrentdb/
//	DURABLE_KURRENTDB_URL='kurrentdb://localhost:2113?tls=false' go test -run '^$' -bench . ./eventstore/kurrentdb/
//
// and skip, saying so, when it is not set; no fake server stands in for a
// real one. The features they declare are the differences described above: DeletesFromAll and
// GapFreePositions are false because $all keeps deleted events until a
// scavenge and positions are byte offsets; ArbitraryContentTypes is false
// because only JSON and binary survive the round trip;
// DeletedStreamRejectsExact is false because the server accepts an append at
// the last revision of a soft-deleted stream, so the suite accepts either
// outcome there and checks whichever happened. MaxEventSize is 1 KiB under
// 1 MiB, to fit the server's default MaxAppendSize with the event type
// counted in, and Reopen closes the client and opens a new one, the data
// being on the server. The rest of the suite holds for KurrentDB as for the
// embedded stores.
//
// The unit tests need no server. They test the pure code: the mappings
// between the contract's types and the client's, the translation of the
// statuses and messages errors arrive as, the parsing and validation of
// connection strings (Open rejects a bad one before any network I/O, and
// fails, naming the server, on an address nobody listens on), the routing of
// the client's logs, and the checks every operation makes before it reaches
// the server. Everything that talks to a server is left to the conformance
// suite.
package kurrentdb
