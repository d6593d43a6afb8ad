package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// startServer starts the embedded NATS server with JetStream storing in
// cfg.Dir. By default it has no network listener at all (DontListen): the Bus
// connects through server.InProcessConn, so an embedded engine opens no port.
// Everything it logs goes to cfg.Logger, its notices at Debug. cfg has been
// through withDefaults.
func startServer(cfg Config) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "durable-embedded",
		JetStream:  true,
		StoreDir:   cfg.Dir,
		DontListen: true,
		// The process that embeds us owns its signals.
		NoSigs: true,
		// No system account: an embedded server needs no $SYS traffic.
		NoSystemAccount: true,
	}
	if cfg.Listen != "" {
		port := cfg.listenPort
		if port == 0 {
			// The server reads 0 as its default port 4222.
			port = server.RANDOM_PORT
		}
		opts.DontListen, opts.Host, opts.Port = false, cfg.listenHost, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("delivery: embedded NATS server: %w", err)
	}
	sl := &serverLogger{log: cfg.Logger.With("component", "nats-server")}
	// debug and trace stay off: the server is very chatty there, and its
	// notices already go to Debug.
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(serverStartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		if err := sl.fatalError(); err != nil {
			return nil, fmt.Errorf("delivery: embedded NATS server did not start: %w", err)
		}
		return nil, errors.New("delivery: embedded NATS server did not start in time")
	}
	if err := sl.fatalError(); err != nil || !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		if err == nil {
			err = errors.New("JetStream is not enabled")
		}
		return nil, fmt.Errorf("delivery: embedded NATS server: %w", err)
	}
	return srv, nil
}

// serverLogger routes the NATS server's logging to slog. The server calls
// Fatalf for errors it cannot start with (e.g. an unusable store directory)
// and expects the logger to exit the process; we must not, so the message is
// kept and startServer reports it as Open's error instead.
type serverLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal error
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v) }

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	l.mu.Lock()
	if l.fatal == nil {
		l.fatal = errors.New(msg)
	}
	l.mu.Unlock()
}

func (l *serverLogger) fatalError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
