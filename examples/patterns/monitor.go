package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// Monitor: a flexible recurring process. The orchestrator checks a build
// job with an activity, and until the job is ready it sleeps on a durable
// timer, doubling the interval each time (up to a maximum), and gives up
// once the next check would fall after its expiry. Two monitors run at
// once: one whose job finishes, one whose job is stuck and expires.
//
// A monitor that runs for days would call ctx.ContinueAsNew now and then
// to keep its history short.
type monitor struct {
	checkJob orchestration.ActivityRef[string, int]
	watch    orchestration.OrchestratorRef[watchInput, watchResult]

	// The fake build system: each check of a job moves it on by its step.
	mu     sync.Mutex
	steps  map[string]int // percent per check
	checks map[string]int
}

type watchInput struct {
	Job           string        `json:"job"`
	FirstInterval time.Duration `json:"firstInterval"`
	MaxInterval   time.Duration `json:"maxInterval"`
	Expiry        time.Duration `json:"expiry"`
}

type watchResult struct {
	Ready    bool            `json:"ready"`
	Progress []int           `json:"progress"` // percent, per check
	Waits    []time.Duration `json:"waits"`
}

func newMonitor() *monitor {
	return &monitor{
		steps:  map[string]int{"build-42": 25, "build-43": 5},
		checks: map[string]int{},
	}
}

func (d *monitor) register(reg *durable.Registry) {
	d.checkJob = durable.RegisterActivity(reg, "CheckJob", d.check)
	d.watch = durable.RegisterOrchestrator(reg, "WatchJob", d.watchJob)
}

// check is the activity: it asks the build system how far a job got.
func (d *monitor) check(_ context.Context, job string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	step, ok := d.steps[job]
	if !ok {
		return 0, fmt.Errorf("no job %q", job)
	}
	d.checks[job]++
	return min(100, d.checks[job]*step), nil
}

// watchJob is the orchestrator.
func (d *monitor) watchJob(ctx *orchestration.Context, in watchInput) (watchResult, error) {
	var res watchResult
	expiry := ctx.Now().Add(in.Expiry)
	interval := in.FirstInterval
	for {
		percent, err := d.checkJob.Call(ctx, in.Job).Await()
		if err != nil {
			return res, err
		}
		res.Progress = append(res.Progress, percent)
		if percent == 100 {
			res.Ready = true
			return res, nil
		}
		if ctx.Now().Add(interval).After(expiry) {
			return res, nil
		}
		if err := orchestration.Sleep(ctx, interval); err != nil {
			return res, err
		}
		res.Waits = append(res.Waits, interval)
		interval = min(2*interval, in.MaxInterval)
	}
}

func (d *monitor) run(ctx context.Context, c *durable.Client, w io.Writer) (string, error) {
	jobs := []watchInput{
		{Job: "build-42", FirstInterval: 100 * time.Millisecond, MaxInterval: time.Second, Expiry: 10 * time.Second},
		{Job: "build-43", FirstInterval: 100 * time.Millisecond, MaxInterval: time.Second, Expiry: 1100 * time.Millisecond},
	}
	for _, job := range jobs {
		if _, err := c.Start(ctx, d.watch.Name, job, durable.WithInstanceID("watch-"+job.Job)); err != nil {
			return "", err
		}
		fmt.Fprintf(w, "watching %s every %s, doubling, until it is ready or %s have passed\n", job.Job, job.FirstInterval, job.Expiry)
	}
	results := make([]watchResult, len(jobs))
	for i, job := range jobs {
		if err := waitOutput(ctx, c, "watch-"+job.Job, &results[i]); err != nil {
			return "", err
		}
		r := results[i]
		verdict := "ready"
		if !r.Ready {
			verdict = "expired: the next check would come after " + job.Expiry.String()
		}
		fmt.Fprintf(w, "%s: checked %d times (%s), waiting %s -> %s\n", job.Job, len(r.Progress), percents(r.Progress), durations(r.Waits), verdict)
	}

	waits := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	want := []watchResult{
		{Ready: true, Progress: []int{25, 50, 75, 100}, Waits: waits},
		{Ready: false, Progress: []int{5, 10, 15, 20}, Waits: waits},
	}
	for i, r := range results {
		if r.Ready != want[i].Ready || !slices.Equal(r.Progress, want[i].Progress) || !slices.Equal(r.Waits, want[i].Waits) {
			return "", fmt.Errorf("%s: got %+v, want %+v", jobs[i].Job, r, want[i])
		}
	}
	return fmt.Sprintf("build-42 ready after %d checks; build-43 stuck at %d%%, expired", len(results[0].Progress), results[1].Progress[len(results[1].Progress)-1]), nil
}

func percents(ps []int) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%d%%", p))
	}
	return strings.Join(s, " ")
}

func durations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.String())
	}
	return strings.Join(s, ", ")
}
