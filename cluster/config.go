package cluster

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// Defaults applied by Start to zero fields of Config.
const (
	DefaultName           = "durable"
	DefaultHost           = "127.0.0.1"
	DefaultRequestTimeout = 2 * time.Second
)

// Config configures one cluster member. The zero value is the embedded mode:
// a cluster of one member named "durable" on a free loopback port, silent.
type Config struct {
	// Name is the cluster name; members only join a cluster of the same name.
	// Default "durable".
	Name string

	// Host is the address the remote layer (gRPC) binds. Default "127.0.0.1":
	// nothing listens on a non-loopback address unless the user sets one here.
	Host string

	// AdvertisedHost is the host:port other members use to reach this one,
	// for the multi-node mode when Host is a wildcard such as "0.0.0.0" or
	// the member is behind NAT. Empty: the bound address.
	AdvertisedHost string

	// Port is the TCP port of the remote layer; 0 picks a free port (read it
	// back with Cluster.Addr).
	Port int

	// Logger receives all of protoactor-go's logging (actor system, remote,
	// cluster, gossip, placement) and this package's own. protoactor's Info
	// chatter is lowered to Debug, so a service logging at Info sees only its
	// warnings and errors, plus two Info messages raised to Warn: an actor
	// panic its supervisor recovered from, and a member lost to an expired
	// heartbeat. Nil discards everything. Nothing is ever written to stdout.
	Logger *slog.Logger

	// RequestTimeout bounds one attempt of a grain call (placement and the
	// call itself). Default 2s. Keep it short: a call to a grain on a member
	// that was lost is retried, against the grain's new placement, as soon as
	// this expires, whereas the caller's context bounds the call as a whole.
	RequestTimeout time.Duration

	// Provider is the membership provider. Nil: the in-process mode, a
	// cluster of this process alone with no network at all (the embedded
	// mode). SingleMember: a networked member that is the whole cluster. A
	// multi-node deployment plugs a real provider here (consul, etcd, k8s,
	// ...); everything else in this package stays the same.
	Provider protocluster.ClusterProvider
}

// Kind is a grain kind: every identity of the kind is one virtual actor,
// activated from Props on first use on the member that owns the identity.
//
// This package takes its own Kind rather than protoactor's *cluster.Kind so
// that callers need not know that protoactor wraps the props with its cluster
// middleware (cluster.NewKind) and so that names can be validated; Start does
// the wrapping.
type Kind struct {
	// Name is the stable kind name, e.g. "orchestration". It must not contain
	// "/" or ".": protoactor builds keys "kind/identity" and
	// "identity.kind" and splits them again.
	Name string
	// Props builds one activation. A grain receives protobuf messages from
	// Request and answers it with ctx.Respond.
	Props *actor.Props
}

// withDefaults returns cfg with defaults filled in, or an error wrapping
// ErrInvalidConfig.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return cfg, fmt.Errorf("%w: port %d out of range", ErrInvalidConfig, cfg.Port)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.RequestTimeout < 0 {
		return cfg, fmt.Errorf("%w: negative request timeout %v", ErrInvalidConfig, cfg.RequestTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// validateKinds checks names and props and returns protoactor's kinds.
func validateKinds(kinds []Kind) ([]*protocluster.Kind, error) {
	seen := make(map[string]bool, len(kinds))
	out := make([]*protocluster.Kind, 0, len(kinds))
	for _, k := range kinds {
		switch {
		case k.Name == "":
			return nil, fmt.Errorf("%w: a kind has an empty name", ErrInvalidConfig)
		case strings.ContainsAny(k.Name, "/."):
			return nil, fmt.Errorf("%w: kind %q: name must not contain '/' or '.'", ErrInvalidConfig, k.Name)
		case k.Name == protocluster.TopicActorKind:
			return nil, fmt.Errorf("%w: kind %q is reserved by protoactor pub-sub", ErrInvalidConfig, k.Name)
		case k.Props == nil:
			return nil, fmt.Errorf("%w: kind %q has no props", ErrInvalidConfig, k.Name)
		case seen[k.Name]:
			return nil, fmt.Errorf("%w: kind %q registered twice", ErrInvalidConfig, k.Name)
		}
		seen[k.Name] = true
		out = append(out, protocluster.NewKind(k.Name, k.Props))
	}
	return out, nil
}
