package delivery

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config says where the bus keeps its messages and how it redelivers them.
// The zero value of every field except Dir/URL means "the default"; Open fills
// the defaults in and validates the rest.
type Config struct {
	// Dir is the data directory of the embedded NATS server's JetStream.
	// Required unless URL is set. One Bus per Dir at a time.
	Dir string

	// URL names an external NATS server with JetStream, e.g.
	// "nats://127.0.0.1:4222". When it is set nothing is embedded and Dir
	// and Listen are ignored.
	URL string

	// Listen is an optional "host:port" on which the embedded server also
	// accepts TCP clients, so tools such as the nats CLI can look inside.
	// Empty (the default) means no listener at all: the Bus talks to the
	// server through an in-process pipe. ":port" listens on 127.0.0.1, port
	// 0 on a free port; a host, if given, is used as it is, so name a
	// non-loopback one only if you mean to expose the server (it has no
	// authentication).
	Listen string

	// Prefix names this engine's subjects, streams and consumers, so that
	// several engines can share one external NATS. It must be a single
	// subject token of letters, digits, '-' and '_'. Default "durable".
	Prefix string

	// MaxDeliveries is how many deliveries a message whose handler panics
	// gets before it is moved to the poison topic (and acknowledged).
	// Handler errors do not count: a Permanent one poisons the message at
	// once, any other is retried for as long as it takes. Default 5.
	MaxDeliveries int

	// AckWait is how long a delivered message may stay unacknowledged before
	// JetStream delivers it again. It must exceed the slowest handler call,
	// including the time a message waits in the client behind others (see
	// MaxAckPending). Default 30s.
	AckWait time.Duration

	// RetryBackoff is the delay before the first redelivery after a handler
	// error; every further failure doubles it, up to RetryBackoffMax.
	// Defaults 1s and 30s.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration

	// Concurrency is how many messages of each topic one Run hands to the
	// handler at the same time. Default 8.
	Concurrency int

	// MaxAckPending bounds the messages of each topic that are delivered and
	// not yet acknowledged, summed over every Run of every Bus sharing the
	// Prefix (JetStream's consumer MaxAckPending). Messages beyond
	// Concurrency wait in the client, and JetStream's AckWait clock already
	// runs for them, so keep MaxAckPending/Concurrency × handler time well
	// under AckWait. Default 64.
	MaxAckPending int

	// DuplicateWindow is how long JetStream remembers a message ID to drop a
	// second publish of it (Nats-Msg-Id). Receivers must still drop
	// duplicates that arrive further apart. Default 2m.
	DuplicateWindow time.Duration

	// Replicas is the number of replicas of each stream on an external NATS
	// cluster. Default 1; the embedded server always uses 1.
	Replicas int

	// RequestTimeout bounds each request to JetStream (publish, purge, info)
	// when the caller's context has no earlier deadline. Default 10s.
	RequestTimeout time.Duration

	// ShutdownTimeout bounds how long Run, when stopping, waits for the
	// messages already handed to it to be handled and acknowledged.
	// Default 30s.
	ShutdownTimeout time.Duration

	// WithoutTimers opens the bus on a NATS server that lacks message
	// schedules (ADR-51, nats-server 2.12 and later): Schedule and Unschedule
	// then return ErrSchedulesUnsupported. Without it Open refuses such a
	// server, because an engine whose durable timers never fire breaks its
	// promises silently. Only for tools and tests on old servers.
	WithoutTimers bool

	// Logger receives all logging of this package, of the embedded NATS
	// server and of Watermill. Their informational chatter is logged at
	// Debug. Nil means slog.Default(). Nothing is written to stdout.
	Logger *slog.Logger

	// listenHost and listenPort are Listen, parsed by withDefaults.
	listenHost string
	listenPort int
}

const (
	defaultPrefix          = "durable"
	defaultMaxDeliveries   = 5
	defaultAckWait         = 30 * time.Second
	defaultRetryBackoff    = time.Second
	defaultRetryBackoffMax = 30 * time.Second
	defaultConcurrency     = 8
	defaultMaxAckPending   = 64
	defaultDuplicateWindow = 2 * time.Minute
	defaultRequestTimeout  = 10 * time.Second
	defaultShutdownTimeout = 30 * time.Second

	// serverStartTimeout bounds how long Open waits for the embedded server.
	serverStartTimeout = 30 * time.Second
)

// withDefaults returns c with every unset field defaulted, or an error wrapping
// ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	if c.URL == "" && c.Dir == "" {
		return c, fmt.Errorf("%w: Dir is required unless URL is set", ErrInvalidConfig)
	}
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if !validPrefix(c.Prefix) {
		return c, fmt.Errorf("%w: Prefix %q must be letters, digits, '-' and '_' only", ErrInvalidConfig, c.Prefix)
	}
	if c.Listen != "" && c.URL == "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return c, fmt.Errorf("%w: Listen %q: %v", ErrInvalidConfig, c.Listen, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return c, fmt.Errorf("%w: Listen %q: the port must be a number from 0 to 65535", ErrInvalidConfig, c.Listen)
		}
		if host == "" {
			// ":port" names no host; listen on loopback, not on every
			// interface (the server's own default).
			host = "127.0.0.1"
		}
		c.listenHost, c.listenPort = host, int(p)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxDeliveries", &c.MaxDeliveries, defaultMaxDeliveries},
		{"Concurrency", &c.Concurrency, defaultConcurrency},
		{"MaxAckPending", &c.MaxAckPending, defaultMaxAckPending},
		{"Replicas", &c.Replicas, 1},
	} {
		if *f.v < 0 {
			return c, fmt.Errorf("%w: %s must not be negative", ErrInvalidConfig, f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"AckWait", &c.AckWait, defaultAckWait},
		{"RetryBackoff", &c.RetryBackoff, defaultRetryBackoff},
		{"RetryBackoffMax", &c.RetryBackoffMax, defaultRetryBackoffMax},
		{"DuplicateWindow", &c.DuplicateWindow, defaultDuplicateWindow},
		{"RequestTimeout", &c.RequestTimeout, defaultRequestTimeout},
		{"ShutdownTimeout", &c.ShutdownTimeout, defaultShutdownTimeout},
	} {
		if *f.v < 0 {
			return c, fmt.Errorf("%w: %s must not be negative", ErrInvalidConfig, f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.RetryBackoffMax < c.RetryBackoff {
		c.RetryBackoffMax = c.RetryBackoff
	}
	if c.DuplicateWindow < 100*time.Millisecond {
		// JetStream rejects shorter windows.
		return c, fmt.Errorf("%w: DuplicateWindow must be at least 100ms", ErrInvalidConfig)
	}
	if c.URL == "" {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func validPrefix(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return p != ""
}
