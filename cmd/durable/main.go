// Command durable manages the instances and entities of a durable engine
// through its HTTP API, reads a stopped engine's data directory offline,
// and runs a demo engine to try it against.
//
//	durable demo                         # an engine with example orchestrators, the API on 127.0.0.1:7071
//	durable start Hello --input '"Ada"' --wait 30s
//	durable list --status Running --watch
//	durable history ID
//	durable raise ID approve '"yes"'
//	durable inspect --dir ./data verify
//
// The server is --url (or DURABLE_URL), its key --key (or DURABLE_KEY).
// Output is a table, or JSON with -o json. Exit codes, for scripts:
//
//	0  done
//	1  failed for another reason
//	2  bad usage (unknown command or flag, missing argument)
//	3  not found (the instance, entity or route)
//	4  the instance's state does not allow it (already running, ended)
//	5  refused: no key or a wrong key
//	6  the server cannot be reached or is unavailable
//	7  the server refused the request as invalid (bad input, too large)
//	8  the instance ended Failed, Terminated or Canceled (start --wait, wait)
//
// A wait that times out before the instance ends exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes (see the package doc).
const (
	exitOK = iota
	exitFailed
	exitUsage
	exitNotFound
	exitState
	exitUnauthorized
	exitUnavailable
	exitInvalid
	exitInstanceFailed
)

// exitError carries the exit code of a failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "durable: ") { // the server's messages name it already
		msg = "durable: " + msg
	}
	fmt.Fprintln(root.ErrOrStderr(), msg)
	var e *exitError
	switch {
	case errors.As(err, &e):
		return e.code
	case errors.Is(err, errUsage),
		// cobra's own usage errors have no type of their own.
		strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "required flag"):
		return exitUsage
	}
	return exitFailed
}

var errUsage = errors.New("usage")
