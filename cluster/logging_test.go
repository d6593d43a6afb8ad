package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestQuietHandlerLevels(t *testing.T) {
	for _, tc := range []struct {
		name      string
		userLevel slog.Level
		level     slog.Level
		msg       string
		want      string // "" when the record must be dropped
	}{
		{"info chatter is debug", slog.LevelDebug, slog.LevelInfo, "Started EndpointManager", "level=DEBUG"},
		{"info chatter is dropped at info", slog.LevelInfo, slog.LevelInfo, "Started EndpointManager", ""},
		{"actor panic is raised", slog.LevelInfo, slog.LevelInfo, "[ACTOR] Recovering", "level=WARN"},
		{"lost member is raised", slog.LevelWarn, slog.LevelInfo, "Blocking members due to expired heartbeat", "level=WARN"},
		{"debug stays debug", slog.LevelDebug, slog.LevelDebug, "Actor Count", "level=DEBUG"},
		{"error stays error", slog.LevelInfo, slog.LevelError, "EndpointWriter lost connection", "level=ERROR"},
		{"warn stays warn", slog.LevelWarn, slog.LevelWarn, "x", "level=WARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			user := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.userLevel}))
			logger := slog.New(quietHandler{user.Handler()}).With("lib", "protoactor")
			logger.Log(context.Background(), tc.level, tc.msg)

			got := buf.String()
			if tc.want == "" {
				if got != "" {
					t.Fatalf("record logged, want it dropped: %s", got)
				}
				return
			}
			if !strings.Contains(got, tc.want) || !strings.Contains(got, "lib=protoactor") {
				t.Fatalf("logged %q, want %s with lib=protoactor", got, tc.want)
			}
		})
	}
}
