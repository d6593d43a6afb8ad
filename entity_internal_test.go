package durable

import (
	"context"
	"testing"
	"time"

	"github.com/durableactor/durable/actors"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/internal/grainpb"
)

// TestOrphanedLockIsReleased: an entity locked by a critical section of an
// orchestration that does not exist (as a purged one would not) is
// released by CleanEntityStorage; the grant that nobody took is a dead
// letter.
func TestOrphanedLockIsReleased(t *testing.T) {
	reg := NewRegistry()
	counter := RegisterEntity(reg, "counter", entities.Ops[int]{
		"add": entities.Update(func(_ *entities.Context, n *int, d int) error { *n += d; return nil }),
	})
	bus := &deadLetterWatch{kept: make(chan struct{}, 1)}
	e := start(t, Config{Registry: reg, seams: seams{bus: func(b actors.Bus) actors.Bus { bus.Bus = b; return bus }}})
	c := e.Client()
	ctx := within(t, 30*time.Second)
	id := counter.ID("x")
	lock := &grainpb.LockRequest{Lock: "ghost:0:0", Entities: []string{id.String()}, Caller: &grainpb.Caller{InstanceId: "ghost"}}
	if _, err := c.entityCall(ctx, id, &grainpb.EntityRequest{Lock: lock}); err != nil {
		t.Fatal(err)
	}
	// Locked: a signal waits in the queue.
	if err := c.SignalEntity(ctx, id, "add", 1); err != nil {
		t.Fatal(err)
	}
	var n int
	if has, err := c.EntityState(ctx, id, &n); err != nil || has {
		t.Fatalf("the signal ran although the entity is locked: %d (%v, %v)", n, has, err)
	}
	res, err := c.CleanEntityStorage(ctx, CleanOptions{ReleaseOrphanedLocks: true})
	if err != nil || res.LocksReleased != 1 {
		t.Fatalf("clean: %+v, %v", res, err)
	}
	if err := c.CallEntity(ctx, id, "add", 0, nil); err != nil {
		t.Fatal(err)
	}
	if has, err := c.EntityState(ctx, id, &n); err != nil || !has || n != 1 {
		t.Fatalf("after the release the queued signal ran: %d (%v, %v)", n, has, err)
	}
	<-bus.kept
	dead, err := c.DeadLetters(context.Background(), 10)
	if err != nil || len(dead) != 1 || dead[0].InstanceID != "ghost" {
		t.Fatalf("dead letters %+v (%v)", dead, err)
	}
}
