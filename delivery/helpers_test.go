package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// externalURLEnv names the environment variable that points the external
// tests at a NATS server with JetStream.
const externalURLEnv = "DURABLE_NATS_URL"

const defaultExternalURL = "nats://127.0.0.1:4222"

// waitTimeout bounds every wait in these tests; reaching it fails the test.
const waitTimeout = 15 * time.Second

// backend opens buses of one kind: the embedded server, or an external one.
type backend struct {
	name string
	// config returns a fresh configuration: its own Dir, or its own Prefix
	// on the external server (whose streams are deleted when the test ends).
	config func(t *testing.T) Config
	// schedules reports whether the server supports message schedules; when
	// it does not, config sets WithoutTimers.
	schedules bool
	// version is the server's version, for skip messages.
	version string
	url     string
}

// backends returns the embedded backend, and the external one when its
// server is reachable. An unreachable server is reported loudly, as a
// skipped subtest naming the URL and the variable that sets it.
func backends(t *testing.T) []backend {
	t.Helper()
	bs := []backend{{
		name:      "embedded",
		schedules: true,
		config: func(t *testing.T) Config {
			return Config{Dir: t.TempDir(), Logger: testLogger(t), RetryBackoff: 10 * time.Millisecond}
		},
	}}
	ext, err := externalBackend(t)
	if err != nil {
		t.Run("external", func(t *testing.T) {
			t.Skipf("SKIPPING external NATS tests: %v. Set %s to a NATS server with JetStream to run them.", err, externalURLEnv)
		})
		return bs
	}
	return append(bs, ext)
}

func externalBackend(t *testing.T) (backend, error) {
	u := os.Getenv(externalURLEnv)
	if u == "" {
		u = defaultExternalURL
	}
	pu, err := url.Parse(u)
	if err != nil {
		return backend{}, err
	}
	c, err := net.DialTimeout("tcp", pu.Host, time.Second)
	if err != nil {
		return backend{}, errors.New("no NATS server reachable at " + u + " (" + err.Error() + ")")
	}
	c.Close()
	nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
	if err != nil {
		return backend{}, errors.New("cannot connect to NATS at " + u + ": " + err.Error())
	}
	version := nc.ConnectedServerVersion()
	nc.Close()

	b := backend{name: "external", url: u, version: version}
	// Probe for message schedules with a throw-away prefix.
	probe := b.newConfig(t)
	bus, err := Open(context.Background(), probe)
	switch {
	case err == nil:
		b.schedules = true
		if err := bus.Close(); err != nil {
			return backend{}, err
		}
	case errors.Is(err, ErrSchedulesUnsupported):
		t.Logf("NOTE: the NATS server at %s is nats-server %s, without message schedules (ADR-51, nats-server >= 2.12); "+
			"external schedule tests are skipped and the others run WithoutTimers", u, version)
	default:
		return backend{}, errors.New("cannot open a bus on " + u + ": " + err.Error())
	}
	b.config = func(t *testing.T) Config {
		cfg := b.newConfig(t)
		cfg.WithoutTimers = !b.schedules
		return cfg
	}
	return b, nil
}

// newConfig returns a config with a unique prefix on the external server and
// deletes that prefix's streams when t ends.
func (b backend) newConfig(t *testing.T) Config {
	var r [6]byte
	_, _ = rand.Read(r[:])
	prefix := "durabletest_" + hex.EncodeToString(r[:])
	url := b.url
	t.Cleanup(func() { deleteStreams(t, url, prefix) })
	return Config{URL: url, Prefix: prefix, Logger: testLogger(t), RetryBackoff: 10 * time.Millisecond}
}

func deleteStreams(t *testing.T, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("cleanup: connect %s: %v", url, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := names{prefix}
	for _, s := range []string{n.streamOf(Events), n.streamOf(Timers), n.stream("poison")} {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("cleanup: delete stream %s: %v", s, err)
		}
	}
}

// needSchedules skips loudly when the backend's server cannot schedule.
func (b backend) needSchedules(t *testing.T) {
	t.Helper()
	if !b.schedules {
		t.Skipf("SKIPPING: the NATS server at %s is nats-server %s, which lacks message schedules (ADR-51, nats-server >= 2.12)", b.url, b.version)
	}
}

// forEachBackend runs test once per backend, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b)
		})
	}
}

// testLogger sends warnings and errors to the test log; set DURABLE_TEST_DEBUG
// to see everything. Logging after the test ended is dropped instead of
// panicking the test binary.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DURABLE_TEST_DEBUG") != "" {
		level = slog.LevelDebug - 4
	}
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

var _ io.Writer = (*testWriter)(nil)

func open(t *testing.T, cfg Config) *Bus {
	t.Helper()
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func closeBus(t *testing.T, b *Bus) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// delivery is one handler call as a test saw it.
type delivery struct {
	topic Topic
	msg   Message
	at    time.Time
}

// recorder is a Handler that records every call and answers with reply
// (nil: success).
type recorder struct {
	ch    chan delivery
	reply func(d delivery) error
}

func newRecorder(reply func(d delivery) error) *recorder {
	return &recorder{ch: make(chan delivery, 1000), reply: reply}
}

func (r *recorder) handle(_ context.Context, topic Topic, m Message) error {
	d := delivery{topic: topic, msg: m, at: time.Now()}
	r.ch <- d
	if r.reply != nil {
		return r.reply(d)
	}
	return nil
}

// next waits for the next handler call.
func (r *recorder) next(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-r.ch:
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("no message delivered within %v", waitTimeout)
		return delivery{}
	}
}

// until collects handler calls until one for id arrives, and returns all of
// them, that one last.
func (r *recorder) until(t *testing.T, id string) []delivery {
	t.Helper()
	var got []delivery
	for {
		d := r.next(t)
		got = append(got, d)
		if d.msg.ID == id {
			return got
		}
	}
}

// rest returns the calls recorded so far and not yet taken.
func (r *recorder) rest() []delivery {
	var got []delivery
	for {
		select {
		case d := <-r.ch:
			got = append(got, d)
		default:
			return got
		}
	}
}

// run starts b.Run with h and returns a function that stops it and waits for
// it to return. Stopping is graceful, so once stop returns every message the
// handler was called with is acknowledged (or nacked) on the server.
func run(t *testing.T, b *Bus, h Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("Run did not stop within %v", waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func msg(id string) Message {
	return Message{ID: id, Kind: "orchestration", Identity: "instance-1", Type: "EventRaised", Payload: []byte("payload of " + id)}
}

// scheduledAt reports when the pending schedule with this ID is due, and
// false if there is none.
func (b *Bus) scheduledAt(ctx context.Context, id string) (time.Time, bool, error) {
	if id == "" {
		return time.Time{}, false, fmt.Errorf("%w: empty ID", ErrInvalidMessage)
	}
	if b.cfg.WithoutTimers {
		return time.Time{}, false, ErrSchedulesUnsupported
	}
	done, err := b.begin()
	if err != nil {
		return time.Time{}, false, err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()

	raw, err := b.timers.GetLastMsgForSubject(ctx, b.names.schedule(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("delivery: read schedule %q: %w", id, err)
	}
	at, ok := strings.CutPrefix(raw.Header.Get(jetstream.ScheduleHeader), "@at ")
	if !ok {
		return time.Time{}, false, fmt.Errorf("delivery: schedule %q has no @at time", id)
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("delivery: schedule %q: %w", id, err)
	}
	return t, true, nil
}
