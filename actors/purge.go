package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc/codes"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/internal/history"
)

// purgeWork is the append of a purge's record.
type purgeWork struct{}

// purge deletes an instance that has ended. The grain appends a Purged
// record and then truncates the stream before it: every reader of the
// stream or of the global log (the grain, the index, a rebuild) forgets
// the instance at that record, and a crash between the two leaves a stream
// that reads as purged, whose next load truncates it. The record stays, so
// the stream's revisions go on if the ID is started again.
func (g *grain) purge(c actor.Context, sender *actor.PID) {
	switch {
	case g.inst == nil:
		c.Send(sender, errorReply(codes.NotFound, "instance %q does not exist", g.id))
		return
	case g.state == appending || !g.inst.Status().IsTerminal() || len(g.queue) > 0:
		c.Send(sender, errorReply(codes.Aborted, "instance %q is %s: only an instance that has completed, failed or been terminated can be purged",
			g.id, g.inst.Status()))
		return
	}
	record := eventstore.EventData{ID: eventID(), Type: history.PurgedType}
	g.append(c, &appendOp{data: []eventstore.EventData{record}, waiters: []*actor.PID{sender}, work: purgeWork{}}, false)
}

// purged forgets the instance once its purge is recorded, and truncates
// its stream through the outbox.
func (g *grain) purged(c actor.Context, op *appendOp) {
	g.cancelActivities()
	g.stopLocalTimers()
	g.inst.Close()
	g.inst, g.generation = nil, 0
	g.post(c, outboxBatch{epoch: op.epoch, truncateBefore: op.result.Revision, erase: true})
	g.acknowledge(c, op.waiters)
	// Inputs that came during the append find no instance.
	for _, w := range g.waiters {
		c.Send(w.pid, errorReply(codes.NotFound, "instance %q was purged", g.id))
	}
	g.addResults(-g.results)
	g.waiters, g.queue, g.results, g.tick = nil, nil, 0, false
}

// finishPurge truncates what a load found before a Purged record at
// revision: a crash came between the purge's record and its truncation.
func (g *grain) finishPurge(before []recordSpan, revision uint64) {
	if len(before) == 0 {
		return
	}
	rt, stream := g.rt, g.stream
	rt.pool.Schedule(func() { rt.truncate(stream, revision) })
}
