package cluster_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/durableactor/durable/cluster"
)

func TestStopDeactivatesGrainsWithinADeadline(t *testing.T) {
	ev := newEvents()
	c, err := cluster.Start(context.Background(), cluster.Config{Logger: slog.New(newLogs())}, counterKind("counter", ev, 0))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	for _, id := range []string{"s1", "s2"} {
		requestString(t, c, "counter", id)
	}

	const deadline = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	begin := time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(begin))

	// Stop returns after deactivation, so the events are already there.
	got := ev.drain()
	for _, want := range []string{"s1:stopping", "s1:stopped", "s2:stopping", "s2:stopped"} {
		if !slices.Contains(got, want) {
			t.Errorf("after Stop, grain events %v lack %q", got, want)
		}
	}

	if _, err := c.Request(context.Background(), "counter", "s1", wrapperspb.String("hi")); !errors.Is(err, cluster.ErrStopped) {
		t.Errorf("Request after Stop: %v, want ErrStopped", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v, want the first Stop's nil", err)
	}
}

func TestStartAfterStopReusesThePort(t *testing.T) {
	ev := newEvents()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first, err := cluster.Start(ctx, cluster.Config{Provider: cluster.SingleMember{}}, counterKind("counter", ev, 0))
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if got := requestString(t, first, "counter", "a"); got != "a=1" {
		t.Fatalf("first member: got %q", got)
	}
	_, port, err := net.SplitHostPort(first.Addr())
	if err != nil {
		t.Fatalf("Addr %q: %v", first.Addr(), err)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatalf("first Stop: %v", err)
	}

	p, _ := strconv.Atoi(port)
	second := startCluster(t, cluster.Config{Port: p, Provider: cluster.SingleMember{}}, counterKind("counter", ev, 0))
	if second.Addr() != first.Addr() {
		t.Fatalf("second member on %s, want %s", second.Addr(), first.Addr())
	}
	if got := requestString(t, second, "counter", "a"); got != "a=1" {
		t.Fatalf("second member: got %q, want a fresh a=1", got)
	}
}

func TestStartFailsCleanlyOnAPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	_, err = cluster.Start(context.Background(), cluster.Config{Port: port, Provider: cluster.SingleMember{}})
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("Start on a port in use: %v, want an error naming port %d", err, port)
	}
}

func TestStartRejectsInvalidConfig(t *testing.T) {
	props := actor.PropsFromFunc(func(actor.Context) {})
	for name, tc := range map[string]struct {
		cfg   cluster.Config
		kinds []cluster.Kind
	}{
		"negative port":    {cfg: cluster.Config{Port: -1}},
		"negative timeout": {cfg: cluster.Config{RequestTimeout: -time.Second}},
		"empty kind name":  {kinds: []cluster.Kind{{Props: props}}},
		"slash in kind":    {kinds: []cluster.Kind{{Name: "a/b", Props: props}}},
		"dot in kind":      {kinds: []cluster.Kind{{Name: "a.b", Props: props}}},
		"nil props":        {kinds: []cluster.Kind{{Name: "a"}}},
		"duplicate kind":   {kinds: []cluster.Kind{{Name: "a", Props: props}, {Name: "a", Props: props}}},
		"reserved kind":    {kinds: []cluster.Kind{{Name: "prototopic", Props: props}}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := cluster.Start(context.Background(), tc.cfg, tc.kinds...)
			if !errors.Is(err, cluster.ErrInvalidConfig) {
				if c != nil {
					_ = c.Stop(context.Background())
				}
				t.Fatalf("Start: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestInProcessHasNoNetwork: the in-process mode (no Provider) has no
// remote layer, so no address, and starts and stops at once.
func TestInProcessHasNoNetwork(t *testing.T) {
	begin := time.Now()
	c := startCluster(t, cluster.Config{}, counterKind("counter", newEvents(), 0))
	if got := requestString(t, c, "counter", "a"); got != "a=1" {
		t.Fatalf("got %q", got)
	}
	if c.Addr() != "" || len(c.Members()) != 0 {
		t.Fatalf("in process, Addr %q and Members %v", c.Addr(), c.Members())
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 500*time.Millisecond {
		t.Fatalf("start, one call and stop took %v", took)
	}
}

func TestNothingListensBeyondLoopback(t *testing.T) {
	c := startCluster(t, cluster.Config{Provider: cluster.SingleMember{}}, counterKind("counter", newEvents(), 0))
	requestString(t, c, "counter", "a") // the remote layer is up and used

	host, port, err := net.SplitHostPort(c.Addr())
	if err != nil {
		t.Fatalf("Addr %q: %v", c.Addr(), err)
	}
	if host != "127.0.0.1" {
		t.Fatalf("member bound to %s, want 127.0.0.1", host)
	}

	// Ask the kernel which local addresses listen on that port.
	p, _ := strconv.Atoi(port)
	listeners := listeningAddrs(t, p)
	if len(listeners) == 0 {
		t.Fatalf("no listening socket on port %d in /proc/net/tcp{,6}", p)
	}
	for _, ip := range listeners {
		if !ip.IsLoopback() {
			t.Errorf("a socket listens on %s:%d, which is not loopback", ip, p)
		}
	}
}

// listeningAddrs returns the local IPs of the TCP sockets in LISTEN state on
// port, from Linux's /proc/net/tcp and /proc/net/tcp6.
func listeningAddrs(t *testing.T, port int) []net.IP {
	t.Helper()
	var out []net.IP
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if errors.Is(err, os.ErrNotExist) && file == "/proc/net/tcp6" {
			continue // IPv6 disabled
		}
		if err != nil {
			t.Fatalf("this test reads the kernel's socket table: %v", err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A = LISTEN
				continue
			}
			ipHex, portHex, _ := strings.Cut(fields[1], ":")
			if pp, _ := strconv.ParseUint(portHex, 16, 16); int(pp) != port {
				continue
			}
			raw, _ := hex.DecodeString(ipHex)
			// The kernel prints the address as 32-bit words in host
			// (little-endian) order.
			ip := make(net.IP, len(raw))
			for i := 0; i+4 <= len(raw); i += 4 {
				ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			out = append(out, ip)
		}
		f.Close()
	}
	return out
}

// TestNothingIsWrittenToStdoutOrStderr runs a member's whole life, including
// dead letters, retries, passivation and error replies, with the process's
// stdout and stderr redirected, and with the default (nil) Logger. It does
// not run in parallel with anything: it swaps os.Stdout and os.Stderr.
func TestNothingIsWrittenToStdoutOrStderr(t *testing.T) {
	restore, output := captureStdio(t)
	func() {
		defer restore()
		ev := newEvents()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := cluster.Start(ctx, cluster.Config{RequestTimeout: 100 * time.Millisecond},
			counterKind("idle", ev, 10*time.Millisecond), lateKind(ev))
		if err != nil {
			t.Errorf("Start: %v", err)
			return
		}
		defer func() {
			if err := c.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}()
		if _, err := c.Request(ctx, "idle", "a", wrapperspb.String("hi")); err != nil {
			t.Errorf("Request: %v", err)
		}
		ev.expect(t, "a:stopped")
		if _, err := c.Request(ctx, "late", "b", wrapperspb.String("hi")); err != nil {
			t.Errorf("Request: %v", err)
		}
		if _, err := c.Request(ctx, "missing", "c", wrapperspb.String("hi")); err == nil {
			t.Error("Request to a missing kind succeeded")
		}
	}()
	if got := output(); got != "" {
		t.Fatalf("the member wrote to stdout/stderr:\n%s", got)
	}
}

// captureStdio points os.Stdout and os.Stderr at a pipe. restore puts them
// back; output then returns what was written.
func captureStdio(t *testing.T) (restore func(), output func() string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	var (
		wg  sync.WaitGroup
		buf strings.Builder
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(&buf, r)
	}()
	var once sync.Once
	restore = func() {
		once.Do(func() {
			os.Stdout, os.Stderr = oldOut, oldErr
			w.Close()
			wg.Wait()
			r.Close()
		})
	}
	t.Cleanup(restore)
	return restore, func() string { return buf.String() }
}

func TestStopWithAnEndedContextStillShutsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{Logger: slog.New(newLogs()), Provider: cluster.SingleMember{}}, counterKind("counter", newEvents(), 0))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	requestString(t, c, "counter", "a")

	ended, end := context.WithCancel(context.Background())
	end()
	if err := c.Stop(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an ended context: %v, want context.Canceled", err)
	}

	// The shutdown went on in the background; a second Stop waits for it.
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	l, err := net.Listen("tcp", c.Addr())
	if err != nil {
		t.Fatalf("port %s still bound after Stop: %v", c.Addr(), err)
	}
	l.Close()
}

func TestProtoactorLogsGoToTheLoggerAndItsInfoIsDebug(t *testing.T) {
	l := newLogs()
	c := startCluster(t, cluster.Config{Logger: slog.New(l)}, counterKind("counter", newEvents(), 0))
	requestString(t, c, "counter", "a")

	all := l.atLeast(slog.LevelDebug)
	var fromProtoactor int
	for _, r := range all {
		if !strings.Contains(r, "lib=protoactor") {
			continue
		}
		fromProtoactor++
		if strings.HasPrefix(r, "INFO ") {
			t.Errorf("protoactor record at Info, want Debug: %s", r)
		}
	}
	if fromProtoactor == 0 {
		t.Fatalf("no protoactor record reached Config.Logger; got %v", all)
	}
}

// failingProvider fails to join, after protoactor has bound the remote
// layer and started gossip.
type failingProvider struct{ cluster.SingleMember }

func (failingProvider) StartMember(*protocluster.Cluster) error {
	return errors.New("discovery unreachable")
}

func TestStartFailsCleanlyWhenTheProviderFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{Port: port, Provider: failingProvider{}, Logger: slog.New(newLogs())})
	if err == nil {
		_ = c.Stop(ctx)
		t.Fatal("Start succeeded with a failing provider")
	}
	if !strings.Contains(err.Error(), "discovery unreachable") {
		t.Fatalf("Start: %v, want the provider's error", err)
	}
	// What had started is released: the port is free again, and goleak
	// (TestMain) sees no gossip loop or gRPC goroutine left.
	l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d still bound after the failed Start: %v", port, err)
	}
	l.Close()
}
