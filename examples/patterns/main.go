// Command patterns runs the five classic Durable Functions application
// patterns on durable's embedded defaults: the event store and the message
// bus live in a temporary directory that is removed at exit, so there is
// nothing to install.
//
//	go run ./examples/patterns                 # all five, in order
//	go run ./examples/patterns -only approval  # just one
//
// Each pattern has its own file: chaining.go (function chaining), fanout.go
// (fan-out/fan-in), asyncstatus.go (async HTTP APIs with a status URL),
// monitor.go (a polling monitor with a growing interval) and approval.go
// (human interaction with a timeout). Each registers its orchestrators and
// activities under stable names, drives them through the engine's Client,
// prints what happened and checks the result; the program exits non-zero
// if any pattern produced the wrong one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// A pattern is one demonstration.
type pattern interface {
	// register adds the pattern's orchestrators and activities.
	register(reg *durable.Registry)
	// run drives the pattern on a started engine, prints what happens to
	// w, checks the outcome and returns a one-line summary of it.
	run(ctx context.Context, c *durable.Client, w io.Writer) (summary string, err error)
}

type entry struct {
	name  string // for -only
	title string
	p     pattern
}

// catalog returns the patterns in the order they run, each with fresh
// state.
func catalog() []entry {
	return []entry{
		{"chaining", "Function chaining", &chaining{}},
		{"fanout", "Fan-out/fan-in", &fanOut{}},
		{"asyncstatus", "Async HTTP API: start, then poll a status URL", &asyncStatus{}},
		{"monitor", "Monitor: poll on a durable timer with a growing interval", newMonitor()},
		{"approval", "Human interaction: wait for an approval, escalate on timeout", newApproval()},
	}
}

// patternTimeout bounds one pattern, so a bug fails it instead of hanging.
const patternTimeout = 30 * time.Second

func main() {
	only := flag.String("only", "", "run only the named pattern: chaining, fanout, asyncstatus, monitor or approval")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, *only)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "patterns:", err)
		os.Exit(1)
	}
}

// run opens an engine in a temporary directory, runs the patterns (only
// the one named only, when it is not empty), prints a summary line per
// pattern and returns an error if any pattern failed.
func run(ctx context.Context, w io.Writer, only string) (err error) {
	var selected []entry
	var names []string
	for i, e := range catalog() {
		e.title = fmt.Sprintf("%d. %s", i+1, e.title)
		names = append(names, e.name)
		if only == "" || only == e.name {
			selected = append(selected, e)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("no pattern is named %q (the patterns: %s)", only, strings.Join(names, ", "))
	}

	dir, err := os.MkdirTemp("", "durable-patterns-*")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()

	reg := durable.NewRegistry()
	for _, e := range selected {
		e.p.register(reg)
	}
	// The engine is quiet unless something goes wrong.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engine, err := durable.Open(ctx, durable.Config{Dir: dir, Registry: reg, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, engine.Stop(stopCtx))
	}()
	if err := engine.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "durable: the Durable Functions patterns on an embedded engine")

	type outcome struct {
		name, summary string
		err           error
	}
	var outcomes []outcome
	for _, e := range selected {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(w, "\n%s\n", e.title)
		pctx, cancel := context.WithTimeout(ctx, patternTimeout)
		summary, err := e.p.run(pctx, engine.Client(), indented{w})
		cancel()
		if err != nil {
			fmt.Fprintf(w, "   FAILED: %v\n", err)
		}
		outcomes = append(outcomes, outcome{e.name, summary, err})
	}

	fmt.Fprintln(w, "\nSummary")
	var failed []string
	for _, o := range outcomes {
		if o.err != nil {
			failed = append(failed, o.name)
			fmt.Fprintf(w, "  FAIL %-12s %v\n", o.name, o.err)
			continue
		}
		fmt.Fprintf(w, "  ok   %-12s %s\n", o.name, o.summary)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d patterns failed: %s", len(failed), len(selected), strings.Join(failed, ", "))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// indented writes every line indented under its pattern's heading. A
// pattern writes whole lines.
type indented struct{ w io.Writer }

func (i indented) Write(p []byte) (int, error) {
	s := strings.TrimSuffix(string(p), "\n")
	s = "   " + strings.ReplaceAll(s, "\n", "\n   ") + "\n"
	if _, err := io.WriteString(i.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

// waitOutput waits for an instance to finish, fails unless it completed,
// and decodes its output into out.
func waitOutput(ctx context.Context, c *durable.Client, id string, out any) error {
	st, err := c.Wait(ctx, id)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", id, err)
	}
	if st.RuntimeStatus != orchestration.StatusCompleted {
		return fmt.Errorf("instance %s ended %s: %v", id, st.RuntimeStatus, st.Failure)
	}
	return st.DecodeOutput(out)
}
