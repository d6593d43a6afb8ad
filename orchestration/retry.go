package orchestration

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// RetryPolicy retries a failed activity or sub-orchestration, as Durable
// Functions' RetryOptions do. The waits are durable timers recorded in
// history, so a retry schedule survives restarts.
type RetryPolicy struct {
	// FirstRetryInterval is the wait before the second attempt; required.
	FirstRetryInterval time.Duration
	// BackoffCoefficient multiplies the wait after each attempt; 1 when zero.
	BackoffCoefficient float64
	// MaxRetryInterval caps the wait; no cap when zero.
	MaxRetryInterval time.Duration
	// MaxAttempts counts the first attempt; required (at least 1).
	MaxAttempts int
	// RetryTimeout stops retrying once this much time has passed since the
	// first attempt; no limit when zero.
	RetryTimeout time.Duration
	// Handle decides whether an error is worth retrying; all are when nil.
	// Failures marked non-retriable are never retried.
	Handle func(error) bool
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("orchestration: retry policy MaxAttempts is %d, must be at least 1", p.MaxAttempts)
	case p.FirstRetryInterval <= 0:
		return fmt.Errorf("orchestration: retry policy FirstRetryInterval is %s, must be positive", p.FirstRetryInterval)
	case p.BackoffCoefficient < 0:
		return fmt.Errorf("orchestration: retry policy BackoffCoefficient is %g, must not be negative", p.BackoffCoefficient)
	}
	return nil
}

// delay is the wait after the given failed attempt (0 for the first).
func (p RetryPolicy) delay(attempt int) time.Duration {
	coef := p.BackoffCoefficient
	if coef == 0 {
		coef = 1
	}
	d := float64(p.FirstRetryInterval) * math.Pow(coef, float64(attempt))
	if p.MaxRetryInterval > 0 && d > float64(p.MaxRetryInterval) {
		return p.MaxRetryInterval
	}
	if d > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

func (p RetryPolicy) retriable(err error) bool {
	var tf *TaskFailedError
	if errors.As(err, &tf) && tf.Failure != nil && tf.Failure.NonRetriable {
		return false
	}
	return p.Handle == nil || p.Handle(err)
}

// retry runs attempts of a call until one succeeds or the policy gives up.
// It is driven by task callbacks, so attempts and waits are decisions made
// while history is applied, and replay makes them again identically.
func (i *Instance) retry(kind taskKind, name string, data []byte, o callOptions) *Task {
	p := *o.retry
	r := &Task{inst: i, kind: kind, name: name}
	if err := p.validate(); err != nil {
		r.complete(nil, err)
		return r
	}
	first := i.now
	attempt := 0
	var try func()
	try = func() {
		i.schedule(kind, name, data, o).then(func(t *Task) {
			if t.err == nil {
				r.complete(t.result, nil)
				return
			}
			attempt++
			expired := p.RetryTimeout > 0 && !i.now.Before(first.Add(p.RetryTimeout))
			if attempt >= p.MaxAttempts || expired || !p.retriable(t.err) {
				r.complete(nil, t.err)
				return
			}
			i.timer(i.now.Add(p.delay(attempt - 1))).then(func(*Task) { try() })
		})
	}
	try()
	return r
}
