package actors

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

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
	mu      sync.Mutex
	free    int
	queue   []*actor.PID
	granted map[*actor.PID]struct{}
	grant   func(*actor.PID)
}

func newLimiter(slots int, grant func(*actor.PID)) *limiter {
	return &limiter{free: slots, granted: make(map[*actor.PID]struct{}), grant: grant}
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

// runActivity is the message that lets an activity actor run.
type runActivity struct{}

// activityDone carries an activity's outcome to its instance's grain.
type activityDone struct {
	eventID    int32
	generation int32
	result     []byte
	failure    *orchestration.FailureDetails
}

// activityActor runs one activity call as a child of its instance's grain.
type activityActor struct {
	rt         *Runtime
	info       ActivityInfo
	generation int32
	input      []byte
	ctx        context.Context
	cancel     context.CancelFunc
	done       bool
}

func (a *activityActor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case *actor.Started:
		if a.rt.limiter.acquire(c.Self()) {
			c.Send(c.Self(), runActivity{})
		}
	case runActivity:
		if a.rt.draining.Load() {
			c.Stop(c.Self()) // the engine is stopping: the activity stays pending
			return
		}
		result, failure := a.rt.runActivity(a.ctx, a.info, a.input)
		c.Send(c.Parent(), &activityDone{eventID: a.info.EventID, generation: a.generation, result: result, failure: failure})
		a.done = true
		a.rt.limiter.release(c.Self())
		c.Stop(c.Self())
	case *actor.Stopping:
		a.cancel()
		if !a.done {
			a.rt.limiter.release(c.Self())
		}
	}
}

// runActivity calls the activity, turning errors and panics into failure
// details.
func (rt *Runtime) runActivity(ctx context.Context, info ActivityInfo, input []byte) (result []byte, failure *orchestration.FailureDetails) {
	fn, ok := rt.activities.Activity(info.Name)
	if !ok {
		return nil, &orchestration.FailureDetails{ErrorType: "ActivityNotFound", Message: fmt.Sprintf("no activity is registered under the name %q", info.Name), NonRetriable: true}
	}
	defer func() {
		if r := recover(); r != nil {
			result, failure = nil, &orchestration.FailureDetails{ErrorType: "panic", Message: fmt.Sprint(r), StackTrace: string(debug.Stack())}
		}
	}()
	out, err := fn(context.WithValue(ctx, activityInfoKey{}, info), input)
	switch {
	case err != nil:
		return nil, orchestration.Failure(err)
	case len(out) > rt.executor.MaxPayloadSize:
		return nil, orchestration.Failure(&orchestration.LimitError{What: fmt.Sprintf("result of activity %q", info.Name), Value: len(out), Limit: rt.executor.MaxPayloadSize})
	}
	return out, nil
}
