package kurrentdb

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// TestOpenRejectsBadConfig checks that Open refuses a configuration it cannot
// use before it touches the network: each error is the validation's own,
// never that of a connection attempt, and none reveals the password.
func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		conn string
		want string
	}{
		{"", "ConnectionString is empty"},
		{"kurrentdb://admin:s3cret@localhost:2113?tls=false&tlsVerifyCer=false", `unknown setting "tlsVerifyCer"`},
		{"kurrentdb://admin:s3cret@localhost:2113?tsl=false", `unknown setting "tsl"`},
		{"http://admin:s3cret@localhost:2113", "invalid scheme"},
		{"localhost:2113", "invalid scheme"},
		{"kurrentdb://admin:s3cret@local host:2113", "invalid character"},
		{"kurrentdb://:s3cret@localhost:2113", "empty username"},
		{"kurrentdb://admin:s3cret@localhost:21x3", "invalid port"},
		{"kurrentdb://admin:s3cret@localhost:2113/some/path", "unsupported URL path"},
		{"kurrentdb://admin:s3cret@a:2113,,c:2113", "empty host"},
		{"kurrentdb://?tls=false", "doesn't have an host"},
		{"kurrentdb://localhost:2113?tls=maybe", "must be either true or false"},
		{"kurrentdb://localhost:2113?maxDiscoverAttempts=many", "must be an integer"},
		{"kurrentdb://localhost:2113?nodePreference=nearest", "nearest"},
		{"kurrentdb://localhost:2113?tlsCAFile=/nonexistent/ca.pem", "/nonexistent/ca.pem"},
		{"kurrentdb://localhost:2113?keepAliveInterval=soon", `keepAliveInterval "soon"`},
		{"kurrentdb://localhost:2113?keepAliveInterval=-2", `keepAliveInterval "-2"`},
		{"kurrentdb://localhost:2113?tls=%zz", "invalid connection string settings"},
	} {
		// A context that has ended: had Open tried to connect, it would
		// fail with "connecting to", not with the validation error.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Open(ctx, Config{ConnectionString: c.conn})
		switch {
		case err == nil:
			t.Errorf("Open(%q) succeeded, want an error saying %q", c.conn, c.want)
		case !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "kurrentdb: "):
			t.Errorf("Open(%q) = %v, want an error saying %q", c.conn, err, c.want)
		case strings.Contains(err.Error(), "s3cret"):
			t.Errorf("Open(%q) error %q reveals the password", c.conn, err)
		}
	}
}

// TestOpenUnreachableServer opens a store on a port nobody listens on: Open
// must fail, naming the server, within a short deadline, and leave no
// goroutine behind (TestMain checks).
func TestOpenUnreachableServer(t *testing.T) {
	t.Parallel()
	const deadline = 10 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, Config{ConnectionString: "kurrentdb://admin:s3cret@127.0.0.1:1?tls=false"})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open on 127.0.0.1:1 succeeded")
	}
	if took := time.Since(start); took > deadline+2*time.Second {
		t.Errorf("Open took %v, past its %v deadline", took, deadline)
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot use the server at 127.0.0.1:1") && !strings.Contains(msg, "connecting to 127.0.0.1:1") {
		t.Errorf("Open = %v, want an error naming the server 127.0.0.1:1", err)
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("Open error %q reveals the password", msg)
	}
}

func TestParseConnectionString(t *testing.T) {
	t.Parallel()
	config, err := parseConnectionString("kurrentdb://admin:s3cret@localhost:2113?TLS=false&nodePreference=follower&maxDiscoverAttempts=3&keepAliveTimeout=20000", nil)
	if err != nil {
		t.Fatal(err)
	}
	if config.Address != "localhost:2113" || config.Username != "admin" || config.Password != "s3cret" ||
		!config.DisableTLS || config.NodePreference != kdb.NodePreferenceFollower || config.MaxDiscoverAttempts != 3 ||
		config.KeepAliveTimeout != 20*time.Second {
		t.Errorf("config = %+v", config)
	}
	if config.Logger == nil {
		t.Error("config.Logger is nil, want the no-op logger in place of the client's console logging")
	}

	// keepAliveInterval is applied here, in any case, whatever its position.
	for conn, want := range map[string]time.Duration{
		"kurrentdb://localhost:2113?keepAliveInterval=15000":          15 * time.Second,
		"kurrentdb://localhost:2113?tls=false&KEEPALIVEINTERVAL=0":    0,
		"kurrentdb://localhost:2113?keepaliveinterval=-1":             -1,
		"kurrentdb://localhost:2113?keepAliveInterval=30000&tls=true": 30 * time.Second,
	} {
		config, err := parseConnectionString(conn, nil)
		if err != nil {
			t.Errorf("%s: %v", conn, err)
			continue
		}
		if config.KeepAliveInterval != want {
			t.Errorf("%s: KeepAliveInterval = %v, want %v", conn, config.KeepAliveInterval, want)
		}
	}
	// Without it the client's default stays.
	config, err = parseConnectionString("kurrentdb://localhost:2113", nil)
	if err != nil {
		t.Fatal(err)
	}
	if config.KeepAliveInterval != 10*time.Second || config.DisableTLS {
		t.Errorf("defaults: KeepAliveInterval %v, DisableTLS %v; want 10s and TLS on", config.KeepAliveInterval, config.DisableTLS)
	}

	// Every setting the client documents is accepted.
	for setting := range clientSettings {
		value := map[string]string{
			"nodepreference": "leader", "tls": "false", "tlsverifycert": "true",
			"usercertfile": "cert.pem", "userkeyfile": "key.pem",
		}[setting]
		if value == "" {
			value = "20000"
		}
		if setting == "tlscafile" {
			continue // it reads the file
		}
		if _, err := parseConnectionString("kurrentdb://localhost:2113?"+setting+"="+value, nil); err != nil {
			t.Errorf("setting %s=%s: %v", setting, value, err)
		}
	}
}

// TestConnectionStringLogsNothing runs alone (not in parallel) because it
// watches the standard logger, which the client's default console logging
// writes to.
func TestConnectionStringLogsNothing(t *testing.T) {
	var std bytes.Buffer
	prev := log.Writer()
	log.SetOutput(&std)
	defer log.SetOutput(prev)
	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))

	config, err := parseConnectionString("kurrentdb://localhost:2113?tls=false&KeepAliveInterval=5000&nodePreference=follower", logger)
	if err != nil {
		t.Fatal(err)
	}
	for _, conn := range []string{"kurrentdb://localhost:2113?keepAliveInterval=1", "kurrentdb://localhost:2113?bogus=1"} {
		_, _ = parseConnectionString(conn, nil)
	}
	if std.Len() > 0 {
		t.Errorf("parsing wrote to the standard logger: %q", std.String())
	}
	if config.KeepAliveInterval != 5*time.Second || !config.DisableTLS || config.NodePreference != kdb.NodePreferenceFollower {
		t.Errorf("config = keepalive %v, DisableTLS %v, node preference %v", config.KeepAliveInterval, config.DisableTLS, config.NodePreference)
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "keepAliveInterval") {
		t.Errorf("the short keepalive was not reported to the logger: %q", logged.String())
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for conn, want := range map[string]string{
		"kurrentdb://admin:s3cret@localhost:2113":            "localhost:2113",
		"kurrentdb://localhost":                              "localhost:2113",
		"esdb://admin:s3cret@a:2113,b:2114,c?tls=false":      "a:2113,b:2114,c:2113",
		"kurrentdb+discover://admin:s3cret@cluster.dns:2113": "cluster.dns:2113",
	} {
		config, err := parseConnectionString(conn, nil)
		if err != nil {
			t.Errorf("%s: %v", conn, err)
			continue
		}
		if got := endpoint(config); got != want {
			t.Errorf("endpoint(%s) = %q, want %q", conn, got, want)
		}
	}
}

func TestClientLogger(t *testing.T) {
	t.Parallel()
	// Without a logger the client's logs are dropped; calling it is harmless.
	clientLogger(nil)(kdb.LogError, "dropped %d", 1)

	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	logf := clientLogger(logger)
	logf(kdb.LogDebug, "below the level %d", 0)
	logf(kdb.LogInfo, "discovery attempt %d/%d", 1, 10)
	logf(kdb.LogWarn, "node %s is slow", "a:2113")
	logf(kdb.LogError, "unexpected exception: %v", "boom")
	logf("trace", "an unknown level is info")
	want := `level=INFO msg="kurrentdb client: discovery attempt 1/10"
level=WARN msg="kurrentdb client: node a:2113 is slow"
level=ERROR msg="kurrentdb client: unexpected exception: boom"
level=INFO msg="kurrentdb client: an unknown level is info"
`
	if logged.String() != want {
		t.Errorf("logged:\n%s\nwant:\n%s", logged.String(), want)
	}

	for level, want := range map[kdb.LogLevel]slog.Level{
		kdb.LogDebug: slog.LevelDebug, kdb.LogInfo: slog.LevelInfo,
		kdb.LogWarn: slog.LevelWarn, kdb.LogError: slog.LevelError, "": slog.LevelInfo,
	} {
		if got := slogLevel(level); got != want {
			t.Errorf("slogLevel(%q) = %v, want %v", level, got, want)
		}
	}
}
