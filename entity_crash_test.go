package durable_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
)

// The entity crash test: a child process signals counters and starts
// transfers between accounts, and is killed with SIGKILL at random moments;
// recovery alone must finish the work. Every signal has its own request ID,
// and every tenth is sent twice on purpose; a signal whose answer a kill
// cut off is sent again by the next child, as any client would. After the
// last run, every counter must equal the number of distinct signals it was
// sent, the transfers must have conserved the total, and no account may be
// left locked.

const (
	entityCrashEnv = "DURABLE_ENTITY_CRASH_CHILD"
	crashCounters  = 200
	crashSignals   = 4000
	crashAccounts  = 10
	crashTransfers = 150
)

func entityCrashRegistry() (*durable.Registry, durable.EntityRef, durable.EntityRef) {
	reg, acct := bankRegistry()
	counter := durable.RegisterEntity(reg, "crashcounter", entities.Ops[int]{
		"add": entities.Update(func(_ *entities.Context, n *int, _ struct{}) error { *n++; return nil }),
	})
	return reg, counter, acct
}

func crashTransfer(i int) transfer {
	return transfer{From: fmt.Sprint(i % crashAccounts), To: fmt.Sprint((i*7 + 3) % crashAccounts), Amount: 1 + i%300}
}

// entityCrashChild signals the counters it has no answer for yet, in
// order (recorded in acked.log), and starts the transfers that do not
// exist yet.
func entityCrashChild(dir string) error {
	acked, err := readAcked(dir)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "acked.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	ctx := context.Background()
	reg, counter, acct := entityCrashRegistry()
	e, err := durable.Open(ctx, durable.Config{Dir: filepath.Join(dir, "data"), Registry: reg, Logger: testLogger()})
	if err != nil {
		return err
	}
	fmt.Printf("stranded %d %v\n", len(e.Stranded()), e.Stranded())
	if err := e.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	c := e.Client()
	// The deposits are signals like the others: once each.
	for i := range crashAccounts {
		if err := c.SignalEntity(ctx, acct.ID(fmt.Sprint(i)), "deposit", 1000, durable.WithSignalRequestID(fmt.Sprint("deposit-", i))); err != nil {
			return err
		}
	}
	var g errgroup.Group
	g.SetLimit(32)
	for i := range crashSignals {
		if acked[i] {
			continue
		}
		g.Go(func() error {
			id := counter.ID(fmt.Sprint(i % crashCounters))
			times := 1
			if i%10 == 0 {
				times = 2
			}
			for range times {
				if err := c.SignalEntity(ctx, id, "add", nil, durable.WithSignalRequestID(fmt.Sprint("signal-", i))); err != nil {
					return err
				}
			}
			mu.Lock()
			defer mu.Unlock()
			_, err := fmt.Fprintln(logFile, i)
			return err
		})
	}
	for i := range crashTransfers {
		id := fmt.Sprintf("transfer-%03d", i)
		if _, err := c.Status(ctx, id); !errors.Is(err, durable.ErrInstanceNotFound) {
			continue
		}
		if _, err := c.Start(ctx, "Transfer", crashTransfer(i), durable.WithInstanceID(id), durable.WithRequestID(id)); err != nil {
			return err
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Println("started")
	select {}
}

func readAcked(dir string) (map[int]bool, error) {
	acked := map[int]bool{}
	f, err := os.Open(filepath.Join(dir, "acked.log"))
	if errors.Is(err, os.ErrNotExist) {
		return acked, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		// A line a kill cut short is no answer.
		if n, err := strconv.Atoi(strings.TrimSpace(lines.Text())); err == nil {
			acked[n] = true
		}
	}
	return acked, lines.Err()
}

func TestEntityCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("the entity crash test kills and restarts a child process 20 times; run without -short")
	}
	dir := t.TempDir()
	killCycles(t, entityCrashEnv, dir, 20)

	reg, counter, acct := entityCrashRegistry()
	e := openEngine(t, reg, filepath.Join(dir, "data"))
	if s := e.Stranded(); len(s) > 0 {
		t.Fatalf("after the last kill, instances with no reason to run again: %v", s)
	}
	c := e.Client()
	ctx := ctxFor(t, 3*time.Minute)
	moved := 0
	for i := range crashTransfers {
		var ok bool
		waitOutput(t, c, fmt.Sprintf("transfer-%03d", i), &ok)
		if ok {
			moved++
		}
	}
	total := 0
	for i := range crashAccounts {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var b int
		err := c.CallEntity(callCtx, acct.ID(fmt.Sprint(i)), "balance", nil, &b)
		cancel()
		if err != nil {
			t.Fatalf("account %d (locked for ever?): %v", i, err)
		}
		total += b
	}
	if total != crashAccounts*1000 {
		t.Fatalf("the accounts hold %d after %d transfers under kills, want %d", total, moved, crashAccounts*1000)
	}
	acked, err := readAcked(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) != crashSignals {
		t.Fatalf("only %d of %d signals were answered", len(acked), crashSignals)
	}
	for k := range crashCounters {
		var n int
		if _, err := c.EntityState(ctx, counter.ID(fmt.Sprint(k)), &n); err != nil {
			t.Fatal(err)
		}
		if want := crashSignals / crashCounters; n != want {
			t.Fatalf("counter %d is %d, want %d: a signal was lost or counted twice", k, n, want)
		}
	}
	t.Logf("%d signals (every tenth sent twice) to %d counters and %d transfers (%d moved money) over 20 SIGKILLs, by recovery alone",
		crashSignals, crashCounters, crashTransfers, moved)
}
