package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/httpapi"
	"github.com/durableactor/durable/internal/history"
)

// server runs the demo engine in dir behind the HTTP API (with key, if
// not empty) and returns its URL and a function that stops it.
func server(t *testing.T, dir, key string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := durable.Open(ctx, durable.Config{Dir: dir, Registry: demoRegistry(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Client: e.Client(), Key: key, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := e.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv.URL, stop
}

// cli runs the command line and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// must runs the command line and fails the test unless it exits with want.
func must(t *testing.T, want int, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != want {
		t.Fatalf("durable %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// TestCommands drives an engine through every command, as a user would,
// and checks what each prints and its exit code.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	url, stop := server(t, dir, "k3y")
	g := []string{"--url", url, "--key", "k3y"}
	with := func(args ...string) []string { return append(append([]string{}, g...), args...) }

	if out := must(t, exitOK, with("start", "Hello", "--input", `"Ada"`, "--wait", "20s")...); !strings.Contains(out, `"Hello, Ada!"`) {
		t.Fatalf("start --wait printed %q", out)
	}
	if out := must(t, exitOK, with("start", "Approval", "--id", "order-1", "--input", `"order 1"`)...); strings.TrimSpace(out) != "order-1" {
		t.Fatalf("start printed %q", out)
	}
	out := must(t, exitOK, with("status", "order-1")...)
	for _, want := range []string{"Running", "waiting for approval of order 1", "events approve"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	must(t, exitOK, with("raise", "order-1", "approve", `"Grace"`)...)
	if out := must(t, exitOK, with("wait", "order-1", "--interval", "20ms")...); !strings.Contains(out, "order 1 approved by Grace") {
		t.Fatalf("wait printed %q", out)
	}
	out = must(t, exitOK, with("history", "order-1")...)
	for _, want := range []string{"ExecutionStarted", "TimerCreated", "EventRaised", "Name=approve", "ExecutionCompleted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("history lacks %q:\n%s", want, out)
		}
	}
	var listed []struct {
		InstanceID    string `json:"instanceId"`
		RuntimeStatus string `json:"runtimeStatus"`
	}
	if err := json.Unmarshal([]byte(must(t, exitOK, with("list", "--status", "Completed", "-o", "json")...)), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("list -o json: %v %+v", err, listed)
	}
	if out := must(t, exitOK, with("list", "--prefix", "order-")...); !strings.Contains(out, "INSTANCE") || !strings.Contains(out, "order-1") {
		t.Fatalf("list printed %q", out)
	}
	// Control and its refusals.
	must(t, exitOK, with("start", "Approval", "--id", "order-2")...)
	must(t, exitOK, with("suspend", "order-2", "--reason", "lunch")...)
	must(t, exitOK, with("resume", "order-2")...)
	must(t, exitState, with("purge", "order-2")...)
	must(t, exitOK, with("terminate", "order-2", "--reason", "cancelled")...)
	if out := must(t, exitInstanceFailed, with("wait", "order-2", "--interval", "20ms")...); !strings.Contains(out, "Terminated") {
		t.Fatalf("wait on a terminated instance printed %q", out)
	}
	must(t, exitState, with("raise", "order-2", "approve", `"late"`)...)
	newID := strings.TrimSpace(must(t, exitOK, with("restart", "order-2", "--new-id")...))
	if newID == "" || newID == "order-2" {
		t.Fatalf("restart --new-id printed %q", newID)
	}
	must(t, exitOK, with("purge", "order-2")...)
	must(t, exitNotFound, with("status", "order-2")...)
	if out := must(t, exitOK, with("purge", "--from", "2000-01-01", "--status", "Completed")...); out != "purged 2\n" {
		t.Fatalf("purge --from printed %q", out)
	}
	// Entities.
	must(t, exitOK, with("signal", "Counter", "c1", "add", "5")...)
	must(t, exitOK, with("signal", "Counter", "c1", "add", "7")...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, out, _ := cli(t, with("entity", "get", "Counter", "c1")...); strings.TrimSpace(out) == "12" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the counter never reached 12")
		}
		time.Sleep(10 * time.Millisecond) // signals are one way
	}
	if out := must(t, exitOK, with("entity", "list", "--state")...); !strings.Contains(out, "counter") || !strings.Contains(out, "12") {
		t.Fatalf("entity list printed %q", out)
	}
	// Exit codes for scripts.
	must(t, exitNotFound, with("status", "nobody")...)
	must(t, exitInvalid, with("start", "NoSuchOrchestrator")...)
	must(t, exitUsage, with("raise", "order-1", "approve", "not-json")...)
	must(t, exitUsage, with("frobnicate")...)
	must(t, exitUsage, with("status")...)
	must(t, exitUsage, with("list", "--no-such-flag")...)
	must(t, exitUsage, with("list", "-o", "yaml")...)
	must(t, exitUnauthorized, "--url", url, "--key", "wrong", "list")
	must(t, exitUnauthorized, "--url", url, "list")
	must(t, exitUnavailable, "--url", "http://127.0.0.1:1", "list")
	// Still running after the wait: the ID is printed, and the exit code
	// says it has not completed.
	if out := must(t, exitFailed, with("start", "Approval", "--id", "late", "--wait", "1s")...); strings.TrimSpace(out) != "late" {
		t.Fatalf("start --wait that timed out printed %q", out)
	}

	// Offline, once the engine has stopped.
	stop()
	if out := must(t, exitOK, "inspect", "--dir", dir, "list"); strings.Contains(out, "order-1") || !strings.Contains(out, "late") || !strings.Contains(out, "events approve") {
		t.Fatalf("inspect list printed %q", out)
	}
	if out := must(t, exitOK, "inspect", "--dir", dir, "history", "late"); !strings.Contains(out, "TimerCreated") {
		t.Fatalf("inspect history printed %q", out)
	}
	if out := must(t, exitOK, "inspect", "--dir", dir, "verify"); !strings.Contains(out, "0 corrupt") || !strings.Contains(out, "0 differences") {
		t.Fatalf("inspect verify printed %q", out)
	}
	must(t, exitNotFound, "inspect", "--dir", dir, "history", "order-1") // purged
	must(t, exitUsage, "inspect", "--dir", filepath.Join(dir, "nothing-here"), "list")
	// A corrupt record is found by verify.
	store, err := pebble.Open(pebble.Config{Dir: filepath.Join(dir, "events"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(context.Background(), history.StreamName("broken"), eventstore.Any,
		eventstore.EventData{ID: uuid.New(), Type: history.EpisodeType, Data: []byte{0xff, 0xff}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if out := must(t, exitFailed, "inspect", "--dir", dir, "verify"); !strings.Contains(out, "corrupt: orchestration-broken@0") {
		t.Fatalf("verify of a corrupt store printed %q", out)
	}
	must(t, exitOK, "inspect", "--dir", dir, "rebuild-index")
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestListWatch: list --watch prints the list again when it changes.
func TestListWatch(t *testing.T) {
	url, _ := server(t, t.TempDir(), "")
	must(t, exitOK, "--url", url, "start", "Approval", "--id", "w1")
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--url", url, "list", "--watch", "--interval", "20ms"}, &out, io.Discard)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Running") {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed %q", out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the output of a command that polls
	}
	must(t, exitOK, "--url", url, "raise", "w1", "approve", `"me"`)
	for !strings.Contains(out.String(), "Completed") {
		if time.Now().After(deadline) {
			t.Fatalf("watch did not show the change: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("watch exited %d", code)
	}
}
