package actors

import "time"

// pool runs functions on reused goroutines. protoactor-go's default
// dispatcher starts a goroutine each time an idle mailbox gets a message,
// and the grain started one per append; both grow fresh stacks over and
// over. The pool hands work to a goroutine that is waiting (its stack
// already grown) and starts one only when none is; goroutines that stay
// idle for a while exit, so a burst does not leave them behind.
//
// It implements protoactor's Dispatcher interface.
type pool struct {
	work       chan func()
	quit       chan struct{}
	throughput int
	idle       time.Duration
}

func newPool(throughput int, idle time.Duration) *pool {
	return &pool{work: make(chan func()), quit: make(chan struct{}), throughput: throughput, idle: idle}
}

// close makes idle goroutines exit at once; work scheduled later still runs,
// each on a goroutine that exits after it.
func (p *pool) close() { close(p.quit) }

// Schedule runs fn on a waiting goroutine, or a new one.
func (p *pool) Schedule(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.worker(fn)
	}
}

// Throughput is how many messages an actor processes before it yields.
func (p *pool) Throughput() int { return p.throughput }

func (p *pool) worker(fn func()) {
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		fn()
		t.Reset(p.idle)
		select {
		case fn = <-p.work:
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}
