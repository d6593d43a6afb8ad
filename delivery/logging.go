package delivery

import (
	"errors"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats.go"
)

// newWatermillLogger routes Watermill's logging to log. Watermill logs every
// router start, subscription and close at Info; that is chatter for an
// engine, so it goes to Debug. Errors stay errors, except two kinds that go
// to Debug: the ones described at shutdownNoise, and the router's "Handler
// returned error", because Run logs every handler failure itself, with the
// attempt number and what happens next (retry or poison).
func newWatermillLogger(log *slog.Logger) watermill.LoggerAdapter {
	return watermillLogger{watermill.NewSlogLoggerWithLevelMapping(
		log.With("component", "watermill"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug},
	)}
}

type watermillLogger struct{ watermill.LoggerAdapter }

func (l watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	if shutdownNoise(err) || msg == "Handler returned error" {
		l.LoggerAdapter.Debug(msg+": "+err.Error(), fields)
		return
	}
	l.LoggerAdapter.Error(msg, err, fields)
}

func (l watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return watermillLogger{l.LoggerAdapter.With(fields)}
}

// shutdownNoise reports errors that are expected when Run stops. Run drains
// its connection before it closes the router (so that the acks of handled
// messages reach the server); watermill-nats then tries to unsubscribe and
// drain the same connection again and reports that it is already closed.
func shutdownNoise(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrBadSubscription)
}

// connOptions names the connection and routes the client's asynchronous
// events to log. closed is closed once the connection is closed for good,
// which lets Close and Run wait until the client's goroutines are done.
func connOptions(name string, log *slog.Logger, drainTimeout time.Duration, closed chan struct{}) []nats.Option {
	log = log.With("component", "nats-client", "connection", name)
	return []nats.Option{
		nats.Name(name),
		nats.DrainTimeout(drainTimeout),
		// Keep trying through a NATS outage instead of giving up after the
		// client's default two minutes: a closed connection would leave Run
		// with nothing to consume from.
		nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("NATS asynchronous error", "subject", sub.Subject, "error", err)
				return
			}
			log.Error("NATS asynchronous error", "error", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			log.Debug("NATS connection closed")
			close(closed)
		}),
	}
}
