package delivery

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
)

// BenchmarkPublish measures Publish on the embedded server, one message per
// call and batches of ten; ns/op is per call.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run("msgs="+strconv.Itoa(n), func(b *testing.B) {
			bus, err := Open(context.Background(), Config{
				Dir:    b.TempDir(),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatalf("Open: %v", err)
			}
			b.Cleanup(func() { bus.Close() })
			ctx := context.Background()
			batch := make([]Message, n)
			payload := make([]byte, 256)
			id := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					id++
					batch[j] = Message{ID: "bench-" + strconv.Itoa(id), Kind: "orchestration", Identity: "instance-1", Type: "EventRaised", Payload: payload}
				}
				if err := bus.Publish(ctx, Events, batch...); err != nil {
					b.Fatalf("Publish: %v", err)
				}
			}
		})
	}
}
