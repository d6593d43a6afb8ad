package cluster

import (
	"context"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
)

// protoactorLogger is the actor.WithLoggerFactory factory of every actor
// system this package starts. protoactor-go builds one *slog.Logger per actor
// system from this factory and hands it to remote, cluster, gossip, the
// identity lookup and every actor context, so this one hook routes all of the
// library's logging. Its default factory writes coloured text to stderr at
// Info, which is why it must always be replaced.
func protoactorLogger(base *slog.Logger) func(*actor.ActorSystem) *slog.Logger {
	return func(system *actor.ActorSystem) *slog.Logger {
		return slog.New(quietHandler{base.Handler()}).
			With(slog.String("lib", "protoactor"), slog.String("system", system.ID))
	}
}

// quietHandler lowers protoactor's Info records to Debug. protoactor logs
// routine events (every actor system, remote, gossip and placement start and
// stop, topology updates, dead letters of late replies) at Info; a service
// logging at Info wants only the library's warnings and errors.
//
// Two of its Info messages are not routine and are raised to Warn instead,
// so that they are not lost with the chatter: a panic in an actor (a grain
// included) that its supervisor recovered from, and members blocked because
// their heartbeat expired (a member was lost).
type quietHandler struct{ next slog.Handler }

// raised are the protoactor Info messages logged at Warn.
func raised(msg string) bool {
	return msg == "[ACTOR] Recovering" || msg == "Blocking members due to expired heartbeat"
}

func quieter(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// The message is not known yet: an Info record must get to Handle if
	// either of its possible levels is enabled.
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return h.next.Enabled(ctx, slog.LevelDebug) || h.next.Enabled(ctx, slog.LevelWarn)
	}
	return h.next.Enabled(ctx, l)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	switch {
	case r.Level >= slog.LevelInfo && r.Level < slog.LevelWarn && raised(r.Message):
		r.Level = slog.LevelWarn
	default:
		r.Level = quieter(r.Level)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.next.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.next.WithGroup(name)}
}
