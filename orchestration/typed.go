package orchestration

import "time"

// Future is a typed Task: awaiting it decodes the result into a T.
type Future[T any] struct {
	t *Task
}

func (f Future[T]) task() *Task { return f.t }

// Task returns the untyped task.
func (f Future[T]) Task() *Task { return f.t }

// IsDone reports whether the task has completed.
func (f Future[T]) IsDone() bool { return f.t.done }

// Await waits for the task and returns its decoded result.
func (f Future[T]) Await() (T, error) {
	var v T
	err := f.t.Await(&v)
	return v, err
}

// FutureOf wraps a task as a Future of T.
func FutureOf[T any](t *Task) Future[T] { return Future[T]{t: t} }

// Input decodes the instance's input as a T.
func Input[T any](ctx *Context) (T, error) {
	var v T
	err := ctx.Input(&v)
	return v, err
}

// CallActivity calls an activity and returns a Future of its result.
func CallActivity[T any](ctx *Context, name string, input any, opts ...CallOption) Future[T] {
	return Future[T]{t: ctx.CallActivity(name, input, opts...)}
}

// CallSubOrchestrator starts a sub-orchestration and returns a Future of its
// output.
func CallSubOrchestrator[T any](ctx *Context, name string, input any, opts ...CallOption) Future[T] {
	return Future[T]{t: ctx.CallSubOrchestrator(name, input, opts...)}
}

// WaitForEvent waits for an external event and returns a Future of its
// payload.
func WaitForEvent[T any](ctx *Context, name string, opts ...WaitOption) Future[T] {
	return Future[T]{t: ctx.WaitForEvent(name, opts...)}
}

// WhenAny is Context.WhenAny returning the winner's index as a Future.
func WhenAny(ctx *Context, tasks ...Awaitable) Future[int] {
	return Future[int]{t: ctx.WhenAny(tasks...)}
}

// Sleep waits on a durable timer for d.
func Sleep(ctx *Context, d time.Duration) error {
	return ctx.CreateTimer(d).Await(nil)
}

// ActivityRef names an activity with its input and output types, so calls
// are checked by the compiler. Declare one per activity and use it both to
// register the activity with the runtime and to call it.
type ActivityRef[In, Out any] struct {
	Name string
}

// NewActivity returns a reference to the activity registered under name.
func NewActivity[In, Out any](name string) ActivityRef[In, Out] {
	return ActivityRef[In, Out]{Name: name}
}

// Call schedules the activity.
func (a ActivityRef[In, Out]) Call(ctx *Context, in In, opts ...CallOption) Future[Out] {
	return Future[Out]{t: ctx.CallActivity(a.Name, in, opts...)}
}

// OrchestratorRef names an orchestrator with its input and output types.
// Register returns one.
type OrchestratorRef[In, Out any] struct {
	Name string
}

// NewOrchestrator returns a reference to the orchestrator registered under
// name.
func NewOrchestrator[In, Out any](name string) OrchestratorRef[In, Out] {
	return OrchestratorRef[In, Out]{Name: name}
}

// CallSub starts the orchestrator as a sub-orchestration.
func (o OrchestratorRef[In, Out]) CallSub(ctx *Context, in In, opts ...CallOption) Future[Out] {
	return Future[Out]{t: ctx.CallSubOrchestrator(o.Name, in, opts...)}
}
