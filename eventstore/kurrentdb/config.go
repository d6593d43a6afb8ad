package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/durableactor/durable/eventstore"
)

// Config configures Open.
type Config struct {
	// ConnectionString names the server and how to reach it, in the client's
	// format: kurrentdb://[user:password@]host[:port][?setting=value&...],
	// with a comma-separated host list for a cluster and the +discover
	// scheme suffix for DNS discovery (esdb://, kdb:// and kurrent:// work
	// too). A local insecure node is kurrentdb://localhost:2113?tls=false.
	// Settings the client does not know are rejected rather than ignored, so
	// a misspelt one (tsl=false) fails at Open instead of leaving TLS on.
	ConnectionString string

	// Limits bound what Append accepts, checked before anything is sent.
	// Zero fields take the eventstore defaults. The server enforces its own
	// limits too (MaxAppendSize, 1 MiB by default, counting data, metadata
	// and twice the event type's length); an append it rejects fails with
	// the same typed errors.
	Limits eventstore.Limits

	// Logger receives the client's own logs (discovery, reconnections,
	// dropped subscriptions), at their levels. Nil discards them.
	Logger *slog.Logger
}

// clientSettings are the connection string settings the client understands,
// lower-cased as it compares them.
var clientSettings = map[string]bool{
	"discoveryinterval":   true,
	"gossiptimeout":       true,
	"maxdiscoverattempts": true,
	"nodepreference":      true,
	"keepaliveinterval":   true,
	"keepalivetimeout":    true,
	"tls":                 true,
	"tlscafile":           true,
	"usercertfile":        true,
	"userkeyfile":         true,
	"tlsverifycert":       true,
	"defaultdeadline":     true,
}

// minKeepAlive is the shortest keepalive interval gRPC honours.
const minKeepAlive = 10 * time.Second

// parseConnectionString parses a connection string into the client's
// configuration with logging routed to logger.
//
// kurrentdb.ParseConnectionString logs through a console logger of its own,
// before any Logger can be set, in two cases: an unknown setting and a
// keepAliveInterval under ten seconds. So unknown settings are rejected here
// first, and keepAliveInterval is taken out of the string and applied here,
// with the same rules, its warning going to logger.
func parseConnectionString(conn string, logger *slog.Logger) (*kdb.Configuration, error) {
	base, rawQuery, _ := strings.Cut(conn, "?")
	settings, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: invalid connection string settings: %w", err)
	}
	keepAlive := ""
	for key, values := range settings {
		name := strings.ToLower(key)
		if !clientSettings[name] {
			return nil, fmt.Errorf("kurrentdb: invalid connection string: unknown setting %q", key)
		}
		if name == "keepaliveinterval" {
			keepAlive = values[0]
			delete(settings, key)
		}
	}
	if len(settings) > 0 {
		base += "?" + settings.Encode()
	}
	config, err := kdb.ParseConnectionString(base)
	if err != nil {
		// A url.Error quotes the whole string, password included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("kurrentdb: invalid connection string: %w", err)
	}
	config.Logger = clientLogger(logger)
	if keepAlive != "" {
		ms, err := strconv.Atoi(keepAlive)
		if err != nil || ms < -1 {
			return nil, fmt.Errorf("kurrentdb: invalid connection string: keepAliveInterval %q is not a number of milliseconds or -1", keepAlive)
		}
		config.KeepAliveInterval = time.Duration(ms) * time.Millisecond
		if ms == -1 {
			config.KeepAliveInterval = -1
		}
		if ms >= 0 && config.KeepAliveInterval < minKeepAlive && logger != nil {
			logger.Warn("kurrentdb: keepAliveInterval is under the 10s minimum gRPC honours", "keepAliveInterval", config.KeepAliveInterval)
		}
	}
	return config, nil
}

// clientLogger routes the client's printf-style logs to logger, or discards
// them when logger is nil.
func clientLogger(logger *slog.Logger) kdb.LoggingFunc {
	if logger == nil {
		return kdb.NoopLogging()
	}
	return func(level kdb.LogLevel, format string, args ...any) {
		lvl := slogLevel(level)
		if !logger.Enabled(context.Background(), lvl) {
			return
		}
		logger.Log(context.Background(), lvl, "kurrentdb client: "+fmt.Sprintf(format, args...))
	}
}

func slogLevel(level kdb.LogLevel) slog.Level {
	switch level {
	case kdb.LogDebug:
		return slog.LevelDebug
	case kdb.LogWarn:
		return slog.LevelWarn
	case kdb.LogError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// endpoint names the server of config in errors, without credentials.
func endpoint(config *kdb.Configuration) string {
	if len(config.GossipSeeds) == 0 {
		return config.Address
	}
	seeds := make([]string, len(config.GossipSeeds))
	for i, seed := range config.GossipSeeds {
		seeds[i] = seed.String()
	}
	return strings.Join(seeds, ",")
}
