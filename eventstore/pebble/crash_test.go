package pebble

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/durableactor/durable/eventstore"
)

// The crash test runs a child process (this test binary again) that appends
// from many goroutines and reports on stdout what it is about to append
// ("intent"), what was acknowledged ("ack") and what its subscriber saw
// ("seen"). The parent kills it with SIGKILL at a random moment, reopens the
// store and checks that every acknowledged append is there, nothing else is
// half there, positions are gap-free, and the subscriber can resume from its
// last checkpoint having never seen an event that was then lost.

const crashChildEnv = "DURABLE_PEBBLE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

const crashWriters = 16

// crashChild appends until it is killed.
func crashChild(dir string) {
	s, err := Open(Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var out sync.Mutex
	report := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}
	last := crashCheckpoint(dir)
	go func() {
		for ev, err := range s.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{From: eventstore.FromPosition(last)}) {
			if err != nil {
				fmt.Fprintln(os.Stderr, "subscribe:", err)
				os.Exit(2)
			}
			report("seen %d", ev.Position)
		}
	}()
	for w := range crashWriters {
		go func() {
			stream := fmt.Sprintf("crash-%d", w)
			rev := int64(eventstore.NoRevision)
			for ev, err := range s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.StreamEnd, Limit: 1}) {
				if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
					fmt.Fprintln(os.Stderr, "read:", err)
					os.Exit(2)
				}
				if err == nil {
					rev = int64(ev.Revision)
				}
			}
			for {
				target, expected := stream, eventstore.NoStream
				if rev != eventstore.NoRevision {
					expected = eventstore.Exact(uint64(rev))
				}
				if rand.IntN(4) == 0 { // a shared stream, written with Any
					target, expected = fmt.Sprintf("shared-%d", rand.IntN(3)), eventstore.Any
				}
				n := 1 + rand.IntN(4)
				events := make([]eventstore.EventData, n)
				ids := make([]string, n)
				for i := range events {
					events[i] = eventstore.EventData{ID: uuid.New(), Type: "Crashed", Data: []byte(strings.Repeat("x", rand.IntN(200)))}
					ids[i] = events[i].ID.String()
				}
				report("intent %s %s", target, strings.Join(ids, ","))
				res, err := s.Append(ctx, target, expected, events...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				report("ack %s %d %d %s", target, res.Revision, res.Position, strings.Join(ids, ","))
				if target == stream {
					rev = int64(res.Revision)
				}
			}
		}()
	}
	select {}
}

// crashCheckpoint is where the child's subscriber resumes; the parent
// writes it between runs.
func crashCheckpoint(dir string) uint64 {
	b, err := os.ReadFile(dir + ".checkpoint")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

type crashAck struct {
	stream   string
	revision uint64
	position uint64
	ids      []string
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir() + "/db"
	cycles := 12
	if testing.Short() {
		cycles = 4
	}
	intents := map[string][]string{} // event ID -> the IDs of its append
	var acks []crashAck
	var checkpoint uint64
	for cycle := range cycles {
		if err := os.WriteFile(dir+".checkpoint", []byte(strconv.FormatUint(checkpoint, 10)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill once the child has made progress, at a random moment after.
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var seen []uint64
		running := false
		for line := range lines {
			if !running {
				// The child is running: kill it at a random moment from now.
				running = true
				time.AfterFunc(time.Duration(20+rand.IntN(400))*time.Millisecond, func() {
					cmd.Process.Signal(syscall.SIGKILL)
				})
			}
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "intent":
				ids := strings.Split(f[2], ",")
				for _, id := range ids {
					intents[id] = ids
				}
			case len(f) == 5 && f[0] == "ack":
				rev, _ := strconv.ParseUint(f[2], 10, 64)
				pos, _ := strconv.ParseUint(f[3], 10, 64)
				acks = append(acks, crashAck{stream: f[1], revision: rev, position: pos, ids: strings.Split(f[4], ",")})
			case len(f) == 2 && f[0] == "seen":
				pos, _ := strconv.ParseUint(f[1], 10, 64)
				seen = append(seen, pos)
			}
		}
		err = cmd.Wait()
		if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || status.Signal() != syscall.SIGKILL {
			t.Fatalf("cycle %d: child exited before it was killed: %v", cycle, err)
		}
		checkpoint = verifyCrash(t, dir, cycle, intents, acks, seen, checkpoint)
	}
	t.Logf("%d kill/restart cycles, %d acknowledged appends verified", cycles, len(acks))
}

// verifyCrash reopens the store after a kill and checks it; it returns the
// subscriber checkpoint for the next run.
func verifyCrash(t *testing.T, dir string, cycle int, intents map[string][]string, acks []crashAck, seen []uint64, checkpoint uint64) uint64 {
	t.Helper()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer s.Close()
	ctx := context.Background()

	// The global log: gap-free positions, only intended events, whole appends.
	present := map[string]eventstore.RecordedEvent{}
	var want uint64 = 1
	for ev, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			t.Fatalf("cycle %d: read all: %v", cycle, err)
		}
		if ev.Position != want {
			t.Fatalf("cycle %d: position %d follows %d", cycle, ev.Position, want-1)
		}
		want++
		if _, ok := intents[ev.ID.String()]; !ok {
			t.Fatalf("cycle %d: event %s at %d was never appended", cycle, ev.ID, ev.Position)
		}
		present[ev.ID.String()] = ev
	}
	last := want - 1
	for id, ev := range present {
		for _, other := range intents[id] {
			if _, ok := present[other]; !ok {
				t.Fatalf("cycle %d: append of %s is half there: %s missing", cycle, ev.ID, other)
			}
		}
	}
	// Every acknowledged append is there, where it was acknowledged.
	for _, a := range acks {
		ev, ok := present[a.ids[len(a.ids)-1]]
		if !ok {
			t.Fatalf("cycle %d: acknowledged append to %s at %d lost", cycle, a.stream, a.position)
		}
		if ev.Stream != a.stream || ev.Revision != a.revision || ev.Position != a.position {
			t.Fatalf("cycle %d: acknowledged %s@%d pos %d, found %s@%d pos %d", cycle, a.stream, a.revision, a.position, ev.Stream, ev.Revision, ev.Position)
		}
	}
	// Streams are gap-free and agree with the global log.
	streams := map[string]bool{}
	for _, ev := range present {
		streams[ev.Stream] = true
	}
	for name := range streams {
		var rev uint64
		for ev, err := range s.ReadStream(ctx, name, eventstore.ReadStreamOptions{}) {
			if err != nil {
				t.Fatalf("cycle %d: read %s: %v", cycle, name, err)
			}
			if ev.Revision != rev || present[ev.ID.String()].Position != ev.Position {
				t.Fatalf("cycle %d: %s revision %d (position %d) out of place", cycle, name, ev.Revision, ev.Position)
			}
			rev++
		}
	}
	// The child's subscriber never saw an event that was then lost, and saw
	// every position after its checkpoint in order.
	next := checkpoint + 1
	for _, pos := range seen {
		if pos != next {
			t.Fatalf("cycle %d: subscriber saw %d, expected %d", cycle, pos, next)
		}
		if pos > last {
			t.Fatalf("cycle %d: subscriber saw position %d, but only %d survived", cycle, pos, last)
		}
		next++
	}
	// A subscription resumes from that checkpoint and catches up to the end.
	resume := next - 1
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if resume < last {
		expect := resume + 1
		for ev, err := range s.SubscribeToAll(ctx, eventstore.SubscribeAllOptions{From: eventstore.FromPosition(resume)}) {
			if err != nil {
				t.Fatalf("cycle %d: resume subscription: %v", cycle, err)
			}
			if ev.Position != expect {
				t.Fatalf("cycle %d: resumed subscription got %d, expected %d", cycle, ev.Position, expect)
			}
			if expect == last {
				break
			}
			expect++
		}
	}
	return resume
}
