package orchestration

import (
	"errors"
	"fmt"
)

// Awaitable is anything WhenAll and WhenAny accept: a *Task or a Future.
type Awaitable interface {
	task() *Task
}

type taskKind uint8

const (
	activityTask taskKind = iota
	subOrchestrationTask
	timerTask
	eventTask
	compositeTask
	entityTask
	lockTask
)

// Task is the handle of work an orchestrator started: an activity, a
// sub-orchestration, a timer, an event wait, or a combination of those.
// Awaiting it suspends the orchestrator, deterministically, until the
// history holds its outcome.
type Task struct {
	inst *Instance
	kind taskKind
	name string
	done bool
	// held is set when a suspension holds the task's outcome: a second
	// outcome is a duplicate.
	held   bool
	result []byte
	err    error
	// winner is the index of the first completed task of a WhenAny.
	winner int
	isAny  bool
	// cancel releases what the task waits for (a waiter in the event queue,
	// the timer of a timed wait) when it loses a WhenAny.
	cancel func()
	onDone []func(*Task)
	// decision is the event that scheduled the task, kept until it
	// completes. It is held by value: a pointer would make every decision
	// escape to the heap.
	decision HistoryEvent
}

func (t *Task) task() *Task { return t }

// IsDone reports whether the task has completed (successfully or not).
func (t *Task) IsDone() bool { return t.done }

// Await waits for the task and decodes its result into out, which may be
// nil to discard it. It returns the task's error: a *TaskFailedError for a
// failed activity or sub-orchestration, a *TimeoutError for a timed-out
// event wait, ErrCanceled for a timer or wait that lost a WhenAny. For the
// task of WhenAny, out must be an *int and receives the index of the first
// task to complete.
func (t *Task) Await(out any) error {
	t.inst.await(t)
	if t.err != nil {
		return t.err
	}
	if t.isAny {
		p, ok := out.(*int)
		if !ok && out != nil {
			return fmt.Errorf("orchestration: WhenAny result must be awaited into an *int, not %T", out)
		}
		if ok {
			*p = t.winner
		}
		return nil
	}
	if out == nil {
		return nil
	}
	if err := t.inst.opts.Converter.Unmarshal(t.result, out); err != nil {
		return fmt.Errorf("orchestration: decode result of %s %q into %T: %w", t.kindName(), t.name, out, err)
	}
	return nil
}

func (t *Task) kindName() string {
	switch t.kind {
	case activityTask:
		return "activity"
	case subOrchestrationTask:
		return "sub-orchestration"
	case timerTask:
		return "timer"
	case eventTask:
		return "event"
	case entityTask:
		return "entity operation"
	case lockTask:
		return "entity lock"
	}
	return "task"
}

// complete finishes the task once and runs what waits on it.
func (t *Task) complete(result []byte, err error) {
	if t.done {
		return
	}
	t.done = true
	t.result, t.err = result, err
	if t.kind == timerTask && t.decision.Kind == TimerCreated {
		delete(t.inst.timers, t.decision.EventID)
	}
	t.cancel = nil
	t.decision = HistoryEvent{}
	callbacks := t.onDone
	t.onDone = nil
	for _, f := range callbacks {
		f(t)
	}
}

// then runs f when t completes (at once if it has).
func (t *Task) then(f func(*Task)) {
	if t.done {
		f(t)
		return
	}
	t.onDone = append(t.onDone, f)
}

// abandon cancels a timer or event wait that is no longer wanted; other
// tasks cannot be recalled and keep running.
func (t *Task) abandon() {
	if t.done || (t.kind != timerTask && t.kind != eventTask) {
		return
	}
	if t.cancel != nil {
		t.cancel()
	}
	t.complete(nil, ErrCanceled)
}

// whenAll completes when every task has; its error is the first error in
// argument order.
func (i *Instance) whenAll(tasks []Awaitable) *Task {
	all := &Task{inst: i, kind: compositeTask, name: "WhenAll"}
	remaining := len(tasks)
	if remaining == 0 {
		all.complete(nil, nil)
		return all
	}
	children := make([]*Task, len(tasks))
	for n, a := range tasks {
		children[n] = a.task()
	}
	for _, c := range children {
		c.then(func(*Task) {
			remaining--
			if remaining > 0 {
				return
			}
			var err error
			for _, c := range children {
				if c.err != nil {
					err = c.err
					break
				}
			}
			all.complete(nil, err)
		})
	}
	return all
}

// whenAny completes when the first task does, with its index. Timers and
// event waits that lose are cancelled, so they never fire into the code.
func (i *Instance) whenAny(tasks []Awaitable) *Task {
	anyTask := &Task{inst: i, kind: compositeTask, name: "WhenAny", isAny: true}
	if len(tasks) == 0 {
		anyTask.complete(nil, errors.New("orchestration: WhenAny needs at least one task"))
		return anyTask
	}
	children := make([]*Task, len(tasks))
	for n, a := range tasks {
		children[n] = a.task()
	}
	for n, c := range children {
		c.then(func(*Task) {
			if anyTask.done {
				return
			}
			anyTask.winner = n
			anyTask.complete(nil, nil)
			for _, other := range children {
				if other != c {
					other.abandon()
				}
			}
		})
	}
	return anyTask
}
