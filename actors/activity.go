package actors

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/durableactor/durable/orchestration"
)

// Activity is an activity as the runtime runs it: encoded input in, encoded
// output out. The root package adapts typed functions to it.
type Activity func(ctx context.Context, input []byte) ([]byte, error)

// Activities looks activities up by name.
type Activities interface {
	Activity(name string) (Activity, bool)
}

// ActivityInfo describes the activity call a context belongs to.
type ActivityInfo struct {
	InstanceID string
	Name       string
	// EventID is the sequence number of the TaskScheduled event.
	EventID int32
}

type activityInfoKey struct{}

// ActivityInfoFrom returns the activity call of an activity's context.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) {
	info, ok := ctx.Value(activityInfoKey{}).(ActivityInfo)
	return info, ok
}

// limiter bounds how many activities run at once on this node. An activity
// actor that finds no free slot waits in a queue without holding a
// goroutine; a finishing activity hands its slot to the next in line by
// message. So many scheduled activities cost memory for their actors, not
// goroutines.
type limiter struct {
	slots   int
	mu      sync.Mutex
	free    int
	queue   []*actor.PID
	granted map[*actor.PID]struct{}
	grant   func(*actor.PID)
}

func newLimiter(slots int, grant func(*actor.PID)) *limiter {
	return &limiter{slots: slots, free: slots, granted: make(map[*actor.PID]struct{}), grant: grant}
}

// acquire takes a slot for pid, or queues it; it reports whether pid may
// run now.
func (l *limiter) acquire(pid *actor.PID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.free > 0 {
		l.free--
		l.granted[pid] = struct{}{}
		return true
	}
	l.queue = append(l.queue, pid)
	return false
}

// release gives back pid's slot (or its place in the queue), handing the
// slot to the next waiting activity.
func (l *limiter) release(pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.granted[pid]; !ok {
		for i, q := range l.queue {
			if q == pid {
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				return
			}
		}
		return
	}
	delete(l.granted, pid)
	if len(l.queue) == 0 {
		l.free++
		return
	}
	next := l.queue[0]
	l.queue = l.queue[1:]
	l.granted[next] = struct{}{}
	l.grant(next)
}

// running reports how many activities hold slots.
func (l *limiter) running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.granted)
}

// runActivity is the message that lets a runner with a job go: its slot
// was granted.
type runActivity struct{}

// activityJob is one activity call, sent by a grain to one of its runners.
type activityJob struct {
	info       ActivityInfo
	generation int32
	input      []byte
	ctx        context.Context
}

// activityDone carries an activity's outcome to its instance's grain. The
// runtime counts it as unrecorded from the moment it is sent; taken is set
// by whoever settles that count: the grain that receives it (which then
// holds it), or its runner, stopping, for an outcome its grain never took.
type activityDone struct {
	eventID    int32
	generation int32
	result     []byte
	failure    *orchestration.FailureDetails
	runner     *actor.PID
	taken      atomic.Bool
}

// runner is a child actor of a grain that runs the grain's activities one
// at a time, waiting for a node-wide slot before each. A grain keeps its
// runners and hands them job after job, so a chain or a fan-out does not
// pay for spawning and stopping an actor per activity.
type runner struct {
	rt  *Runtime
	job *activityJob
	// sent is the last outcome sent to the grain.
	sent *activityDone
}

func (r *runner) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *activityJob:
		r.job = m
		if r.rt.limiter.acquire(c.Self()) {
			r.run(c)
		}
	case runActivity:
		r.run(c)
	case *actor.Stopping:
		if r.job != nil {
			r.rt.limiter.release(c.Self())
		}
		if r.sent != nil && r.sent.taken.CompareAndSwap(false, true) {
			r.rt.unrecorded.Add(-1) // its grain stopped before taking it
		}
	}
}

func (r *runner) run(c actor.Context) {
	job := r.job
	r.job = nil
	done := &activityDone{eventID: job.info.EventID, generation: job.generation, runner: c.Self()}
	if r.rt.draining.Load() {
		// The engine is stopping: the activity stays pending and runs
		// after the next start.
		r.rt.limiter.release(c.Self())
		return
	}
	done.result, done.failure = r.rt.runActivity(job.ctx, job.info, job.input)
	if r.rt.ctx.Err() != nil {
		// Shutdown cut the activity short: its outcome is not its own. It
		// stays pending and runs again after the next start.
		r.rt.limiter.release(c.Self())
		return
	}
	// Counted before the slot is released, so a graceful stop that waits
	// for free slots and for unrecorded outcomes sees this one throughout.
	r.rt.unrecorded.Add(1)
	r.sent = done
	r.rt.limiter.release(c.Self())
	c.Send(c.Parent(), done)
}

// runActivity calls the activity, turning errors and panics into failure
// details.
func (rt *Runtime) runActivity(ctx context.Context, info ActivityInfo, input []byte) ([]byte, *orchestration.FailureDetails) {
	fn, _ := rt.activities.Activity(info.Name)
	return orchestration.RunActivity(context.WithValue(ctx, activityInfoKey{}, info), info.Name, fn, input, rt.executor.MaxPayloadSize)
}
