package durable_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/internal/leaktest"
	"github.com/durableactor/durable/orchestration"
)

// The crash test runs the engine in a child process (this test binary
// again) on one data directory, kills it with SIGKILL at random moments,
// restarts it, and finally lets a last run finish every instance. It then
// checks the invariants: every instance completed with the right output and
// exactly one completion, every scheduled activity has exactly one outcome,
// and activities ran again only where a crash interrupted them.

const crashEnv = "DURABLE_CRASH_CHILD"

func TestMain(m *testing.M) {
	for env, child := range map[string]func(string) error{crashEnv: crashChild, entityCrashEnv: entityCrashChild} {
		if dir := os.Getenv(env); dir != "" {
			if err := child(dir); err != nil {
				fmt.Fprintln(os.Stderr, "crash child:", err)
				os.Exit(2)
			}
			os.Exit(0)
		}
	}
	goleak.VerifyTestMain(m, leaktest.IgnoreProtoactor()...)
}

// crashKinds are the orchestrations the crash test mixes.
var crashKinds = []string{"CrashChain", "CrashFanOut", "CrashMonitor", "CrashApproval", "CrashParent", "CrashRetry"}

const crashPerKind = 50

func crashIDs() []string {
	var ids []string
	for _, k := range crashKinds {
		for i := range crashPerKind {
			ids = append(ids, fmt.Sprintf("%s-%03d", k, i))
		}
	}
	return ids
}

func kindOf(id string) string { return id[:strings.LastIndexByte(id, '-')] }

// crashRegistry registers the crash test's orchestrations; every activity
// execution is appended to log (which survives SIGKILL: it is in the page
// cache).
func crashRegistry(log func(string)) *durable.Registry {
	reg := durable.NewRegistry()
	record := func(ctx context.Context) {
		info, _ := durable.ActivityInfoFrom(ctx)
		log(fmt.Sprintf("%s %d", info.InstanceID, info.EventID))
	}
	inc := durable.RegisterActivity(reg, "Inc", func(ctx context.Context, n int) (int, error) {
		record(ctx)
		// Slow enough that the work spans the kill cycles and kills land
		// while activities run.
		select {
		case <-time.After(60 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return n + 1, nil
	})
	durable.RegisterOrchestrator(reg, "CrashChain", func(ctx *orchestration.Context, n int) (int, error) {
		for range 5 {
			var err error
			if n, err = inc.Call(ctx, n).Await(); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	durable.RegisterOrchestrator(reg, "CrashFanOut", func(ctx *orchestration.Context, n int) (int, error) {
		var tasks []orchestration.Awaitable
		var fs []orchestration.Future[int]
		for i := range 20 {
			f := inc.Call(ctx, n+i)
			fs, tasks = append(fs, f), append(tasks, f)
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, f := range fs {
			v, _ := f.Await()
			sum += v
		}
		return sum, nil
	})
	durable.RegisterOrchestrator(reg, "CrashMonitor", func(ctx *orchestration.Context, n int) (int, error) {
		interval := 20 * time.Millisecond
		for range 4 {
			var err error
			if n, err = inc.Call(ctx, n).Await(); err != nil {
				return 0, err
			}
			if err := orchestration.Sleep(ctx, interval); err != nil {
				return 0, err
			}
			interval *= 2
		}
		return n, nil
	})
	durable.RegisterOrchestrator(reg, "CrashApproval", func(ctx *orchestration.Context, n int) (string, error) {
		ok, err := orchestration.WaitForEvent[bool](ctx, "Approval", orchestration.WithTimeout(3*time.Second)).Await()
		if errors.Is(err, orchestration.ErrTimeout) {
			_, err := inc.Call(ctx, n).Await()
			return "escalated", err
		}
		return fmt.Sprintf("approved=%v", ok), err
	})
	child := durable.RegisterOrchestrator(reg, "CrashChild", func(ctx *orchestration.Context, n int) (int, error) {
		a, err := inc.Call(ctx, n).Await()
		if err != nil {
			return 0, err
		}
		return inc.Call(ctx, a).Await()
	})
	durable.RegisterOrchestrator(reg, "CrashParent", func(ctx *orchestration.Context, n int) (int, error) {
		var tasks []orchestration.Awaitable
		var fs []orchestration.Future[int]
		for i := range 3 {
			f := child.CallSub(ctx, n+i)
			fs, tasks = append(fs, f), append(tasks, f)
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, f := range fs {
			v, _ := f.Await()
			sum += v
		}
		return sum, nil
	})
	durable.RegisterActivity(reg, "Flaky", func(ctx context.Context, n int) (int, error) {
		record(ctx)
		// The first two attempts (sequence numbers 0 and 2) fail, every time.
		if info, _ := durable.ActivityInfoFrom(ctx); info.EventID < 4 {
			return 0, fmt.Errorf("attempt %d fails", info.EventID/2+1)
		}
		return n * 10, nil
	})
	durable.RegisterOrchestrator(reg, "CrashRetry", func(ctx *orchestration.Context, n int) (int, error) {
		return orchestration.CallActivity[int](ctx, "Flaky", n, orchestration.WithRetry(orchestration.RetryPolicy{
			FirstRetryInterval: 30 * time.Millisecond, BackoffCoefficient: 2, MaxAttempts: 5})).Await()
	})
	return reg
}

// crashWant is the output each instance must end with.
func crashWant(id string, approved bool) string {
	var n int
	fmt.Sscanf(id[strings.LastIndexByte(id, '-')+1:], "%d", &n)
	switch kindOf(id) {
	case "CrashChain":
		return fmt.Sprint(n + 5)
	case "CrashFanOut":
		return fmt.Sprint(20*n + 190 + 20)
	case "CrashMonitor":
		return fmt.Sprint(n + 4)
	case "CrashApproval":
		if approved {
			return `"approved=true"`
		}
		return `"escalated"`
	case "CrashParent":
		return fmt.Sprint(3*n + 3 + 6)
	case "CrashRetry":
		return fmt.Sprint(n * 10)
	}
	return ""
}

// crashChild runs the engine until it is killed. It reports the stranded
// instances it finds on opening, then starts the instances that do not
// exist yet (and approves the even-numbered approvals it starts). It never
// touches an instance that exists: recovery alone must finish those.
func crashChild(dir string) error {
	logFile, err := os.OpenFile(filepath.Join(dir, "activities.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	log := func(line string) {
		mu.Lock()
		fmt.Fprintln(logFile, line)
		mu.Unlock()
	}
	ctx := context.Background()
	e, err := durable.Open(ctx, durable.Config{Dir: filepath.Join(dir, "data"), Registry: crashRegistry(log), Logger: testLogger()})
	if err != nil {
		return err
	}
	fmt.Printf("stranded %d %v\n", len(e.Stranded()), e.Stranded())
	if err := e.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	c := e.Client()
	ids := crashIDs()
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		if _, err := c.Status(ctx, id); !errors.Is(err, durable.ErrInstanceNotFound) {
			continue // it exists, or the index cannot tell: leave it to recovery
		}
		var n int
		fmt.Sscanf(id[strings.LastIndexByte(id, '-')+1:], "%d", &n)
		if _, err := c.Start(ctx, kindOf(id), n, durable.WithInstanceID(id), durable.WithRequestID(id)); err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
		if kindOf(id) == "CrashApproval" && n%2 == 0 {
			if err := c.RaiseEvent(ctx, id, "Approval", true); err != nil && !errors.Is(err, durable.ErrInstanceNotRunning) {
				return fmt.Errorf("approve %s: %w", id, err)
			}
		}
	}
	fmt.Println("started")
	select {}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test kills and restarts a child process 20 times; run without -short")
	}
	dir := t.TempDir()
	killCycles(t, crashEnv, dir, 20)
	verifyCrash(t, dir)
}

// killCycles runs a crash child (this test binary with env set to dir)
// cycles times and kills each with SIGKILL at a random moment while it
// works. A child first prints the stranded instances it finds on opening
// ("stranded 0 []" when there are none, which it must be), then "ready",
// and "started" once it has sent all its work; the last cycles let it get
// that far before the kill, so that all work exists when recovery alone
// must finish it.
func killCycles(t *testing.T, env, dir string, cycles int) {
	t.Helper()
	allStarted := false
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), env+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		if !lines.Scan() || !strings.HasPrefix(lines.Text(), "stranded ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("cycle %d: child did not open: %q", cycle, lines.Text())
		}
		if stranded := lines.Text(); stranded != "stranded 0 []" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("cycle %d: after the kill the index shows instances with no reason to run again: %s", cycle, stranded)
		}
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("cycle %d: child did not start: %q", cycle, lines.Text())
		}
		if !allStarted && cycle >= cycles-3 {
			for lines.Scan() && lines.Text() != "started" {
			}
			allStarted = true
		}
		time.AfterFunc(time.Duration(100+rand.IntN(900))*time.Millisecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
		for lines.Scan() {
			allStarted = allStarted || lines.Text() == "started"
		}
		cmd.Wait()
		if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || status.Signal() != syscall.SIGKILL {
			t.Fatalf("cycle %d: child exited on its own: %v", cycle, cmd.ProcessState)
		}
	}
}

// verifyCrash opens the engine once more in this process, checks that no
// instance is stranded, lets recovery finish every instance (it starts and
// sends nothing), and checks each one.
func verifyCrash(t *testing.T, dir string) {
	var mu sync.Mutex
	logFile, err := os.OpenFile(filepath.Join(dir, "activities.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := func(line string) {
		mu.Lock()
		fmt.Fprintln(logFile, line)
		mu.Unlock()
	}
	e := openEngine(t, crashRegistry(log), filepath.Join(dir, "data"))
	if s := e.Stranded(); len(s) > 0 {
		t.Fatalf("after the last kill, instances with no reason to run again: %v", s)
	}
	c := e.Client()
	ctx := ctxFor(t, 3*time.Minute)
	executions := map[string]int{}
	reruns := 0
	var all []string
	for _, id := range crashIDs() {
		all = append(all, id)
		if kindOf(id) == "CrashParent" {
			for i := range 3 {
				all = append(all, fmt.Sprintf("%s:%04x", id, i))
			}
		}
	}
	for _, id := range all {
		st, err := c.Wait(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if st.RuntimeStatus != orchestration.StatusCompleted {
			t.Fatalf("%s is %s: %v", id, st.RuntimeStatus, st.Failure)
		}
		h := mustHistory(t, c, id)
		completions, starts := 0, 0
		outcomes := map[int32]int{}
		scheduled := map[int32]bool{}
		// An approval is approved when the event came before the timeout.
		approved, decided := false, false
		for _, ev := range h {
			switch ev.Kind {
			case orchestration.ExecutionCompleted:
				completions++
			case orchestration.ExecutionStarted:
				starts++
			case orchestration.TaskScheduled:
				if scheduled[ev.EventID] {
					t.Fatalf("%s: TaskScheduled #%d recorded twice", id, ev.EventID)
				}
				scheduled[ev.EventID] = true
			case orchestration.TaskCompleted, orchestration.TaskFailed:
				outcomes[ev.EventID]++
			case orchestration.EventRaised:
				if !decided {
					approved, decided = true, true
				}
			case orchestration.TimerFired:
				decided = true
			}
		}
		if completions != 1 || starts != 1 {
			t.Fatalf("%s: %d completions and %d starts in its history", id, completions, starts)
		}
		for seq := range scheduled {
			if outcomes[seq] != 1 {
				t.Fatalf("%s: activity #%d has %d outcomes", id, seq, outcomes[seq])
			}
		}
		if !strings.Contains(id, ":") {
			if want := crashWant(id, approved); string(st.Output) != want {
				t.Fatalf("%s: output %s, want %s", id, st.Output, want)
			}
		}
		for seq := range scheduled {
			executions[fmt.Sprintf("%s %d", id, seq)] = 0
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "activities.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if n, ok := executions[line]; ok {
			executions[line] = n + 1
			if n > 0 {
				reruns++
			}
		}
	}
	for key, n := range executions {
		if n == 0 {
			t.Fatalf("activity %s has an outcome but never ran", key)
		}
	}
	// The kills must have interrupted work, or the test proved nothing.
	if reruns == 0 {
		t.Fatal("no activity ran twice: no kill landed while activities ran")
	}
	if s := e.Stranded(); len(s) > 0 {
		t.Fatalf("stranded at the end: %v", s)
	}
	t.Logf("%d instances completed after 20 SIGKILLs, by recovery alone; %d activity executions, %d of them re-runs after a crash", len(all), len(executions)+reruns, reruns)
}
