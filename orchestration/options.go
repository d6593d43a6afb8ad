package orchestration

import "log/slog"

// Default limits.
const (
	// DefaultMaxActionsPerEpisode is Durable Functions' MaxOrchestrationActions.
	DefaultMaxActionsPerEpisode = 100_000
	DefaultMaxHistoryEvents     = 200_000
	// DefaultMaxCustomStatusSize is Durable Functions' 16 KB bound.
	DefaultMaxCustomStatusSize = 16 << 10
	// DefaultMaxPayloadSize leaves room for the rest of a history event
	// within the event store's default 1 MiB event size.
	DefaultMaxPayloadSize = 1<<20 - 16<<10
)

// Options configure the executor. Zero fields take their defaults.
type Options struct {
	// Converter encodes user values; JSON when nil.
	Converter Converter
	// Logger is the base of Context.Logger; slog.Default() when nil.
	Logger *slog.Logger
	// MaxActionsPerEpisode bounds the decisions one episode may make.
	MaxActionsPerEpisode int
	// MaxHistoryEvents bounds the history of one generation of an instance;
	// long-running orchestrations restart with ContinueAsNew.
	MaxHistoryEvents int
	// MaxCustomStatusSize bounds the encoded custom status, in bytes.
	MaxCustomStatusSize int
	// MaxPayloadSize bounds an encoded input, output or event payload.
	MaxPayloadSize int
}

// WithDefaults returns o with every unset option at its default, for a
// runtime that reads the options itself (NewInstance applies them anyway).
func (o Options) WithDefaults() Options {
	if o.Converter == nil {
		o.Converter = JSON
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxActionsPerEpisode <= 0 {
		o.MaxActionsPerEpisode = DefaultMaxActionsPerEpisode
	}
	if o.MaxHistoryEvents <= 0 {
		o.MaxHistoryEvents = DefaultMaxHistoryEvents
	}
	if o.MaxCustomStatusSize <= 0 {
		o.MaxCustomStatusSize = DefaultMaxCustomStatusSize
	}
	if o.MaxPayloadSize <= 0 {
		o.MaxPayloadSize = DefaultMaxPayloadSize
	}
	return o
}
