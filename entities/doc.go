// Package entities is durable's entity programming model: small keyed state
// machines that anyone signals by ID, that orchestrations call and lock, and
// whose operations run one at a time. It is plain Go with no I/O; the
// engine runs entities as grains (package actors) and the root package
// registers them.
//
// # Identity
//
// An entity is identified by an ID: the name of its kind and a key, as in
// Durable Functions. Names are case-insensitive (IDs print with the name
// lower-cased), keys case-sensitive: "counter@game-1". An entity exists from
// its first operation; there is nothing to create.
//
// # Function style
//
// The Durable Functions style: the entity's state is a Go value, and each
// operation reads and changes it in place. Define builds a kind from a map
// of typed operations:
//
//	type Counter struct{ Value int }
//
//	kind, err := entities.Define("counter", entities.Ops[Counter]{
//		"add":   entities.Update(func(ctx *entities.Context, c *Counter, n int) error { c.Value += n; return nil }),
//		"get":   entities.Do(func(ctx *entities.Context, c *Counter, _ struct{}) (int, error) { return c.Value, nil }),
//		"reset": entities.Update(func(ctx *entities.Context, c *Counter, _ struct{}) error { ctx.DeleteState(); return nil }),
//	})
//
// (durable.RegisterEntity does this and registers the kind.) DefineFunc
// takes one handler that dispatches on ctx.Operation() and uses ctx.State,
// SetState and DeleteState, as a Durable Functions entity function does.
// The state is stored after every batch of operations, so loading an
// entity reads one record.
//
// # Event-sourced style
//
// Beyond the peers: the entity's stream holds its domain events, each a
// stored event of its own type, so any reader of the event store can follow
// one entity ("entity-cart@42") or the whole category. Commands read the
// state and emit events with ctx.Emit; Apply folds each event into the
// state; a snapshot every SnapshotEvery events bounds what a load replays:
//
//	kind, err := entities.DefineEventSourced("cart", entities.EventSourced[Cart]{
//		Commands: map[string]entities.Command[Cart]{
//			"add": entities.Handle(func(ctx *entities.Context, c Cart, item Item) (int, error) {
//				return c.Count + 1, ctx.Emit("ItemAdded", item)
//			}),
//		},
//		Apply: func(c *Cart, ev entities.Event) error { ... ev.Decode(&item) ... },
//	})
//
// Upgrading: events are never rewritten. To rename an event type or change
// its payload, give the kind an Upcast function, which turns each stored
// event into its current form before Apply sees it. To change the shape of
// the state, change Version: snapshots of another version are discarded and
// the state is rebuilt from all the events through Upcast and Apply.
//
// # Transactions
//
// Each operation is a transaction: an operation that returns an error or
// panics leaves the state as it was before it, emits no event and sends
// nothing, and its caller gets the error; the other operations of the same
// batch are not affected. Signals and orchestration starts an operation
// makes go out only after its outcome is recorded, and their IDs are
// derived from the operation's request ID, so sending them again is
// harmless.
//
// An operation that grows the state past the limit (DefaultMaxStateSize)
// fails with ErrStateTooLarge; one the kind does not have fails with
// ErrUnknownOperation, but for "delete" (DeleteOperation), which every
// kind defined with Define or DefineEventSourced has unless it defines its
// own: it deletes the state.
package entities
