package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/httpapi"
	"github.com/durableactor/durable/orchestration"
)

func demoCommand() *cobra.Command {
	var dir, addr, key string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run an engine with example orchestrators and entities, and its HTTP API",
		Long: `demo runs an engine with example orchestrators (Hello, FanOut, Approval, Monitor) and
a Counter entity, and serves the HTTP API, so the other commands have something to manage.
Its data stays in --dir: stop it (Ctrl-C) and run it again, and the instances go on.`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			if dir == "" {
				d, err := os.MkdirTemp("", "durable-demo-")
				if err != nil {
					return err
				}
				dir = d
			}
			ctx := cmd.Context()
			e, err := durable.Open(ctx, durable.Config{Dir: dir, Registry: demoRegistry(), Logger: logger})
			if err != nil {
				return err
			}
			if err := e.Start(ctx); err != nil {
				e.Stop(context.Background())
				return err
			}
			defer func() {
				stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := e.Stop(stop); err != nil {
					logger.Error("stopping the engine", "error", err)
				}
			}()
			h, err := httpapi.New(httpapi.Config{Client: e.Client(), Key: key, Logger: logger})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "durable demo: data in %s, API at http://%s%s\n", dir, ln.Addr(), httpapi.DefaultBasePath)
			fmt.Fprintf(cmd.OutOrStdout(), "try: durable --url http://%s start Hello --input '\"Ada\"' --wait 10s\n", ln.Addr())
			if err := h.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the data directory (a new temporary one by default)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:7071", "where the API listens")
	cmd.Flags().StringVar(&key, "key", os.Getenv("DURABLE_KEY"), "the API key (required off loopback)")
	return cmd
}

// demoRegistry holds the demo's orchestrators, activities and entity: the
// Durable Functions patterns, small.
func demoRegistry() *durable.Registry {
	reg := durable.NewRegistry()
	greet := durable.RegisterActivity(reg, "Greet", func(_ context.Context, name string) (string, error) {
		return "Hello, " + name + "!", nil
	})
	square := durable.RegisterActivity(reg, "Square", func(_ context.Context, n int) (int, error) { return n * n, nil })
	check := durable.RegisterActivity(reg, "Check", func(_ context.Context, attempt int) (bool, error) { return attempt >= 3, nil })

	// Hello chains three activity calls.
	durable.RegisterOrchestrator(reg, "Hello", func(ctx *orchestration.Context, name string) ([]string, error) {
		var out []string
		for _, n := range []string{name, "Tokyo", "London"} {
			s, err := greet.Call(ctx, n).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	// FanOut squares 1..n in parallel and sums the squares.
	durable.RegisterOrchestrator(reg, "FanOut", func(ctx *orchestration.Context, n int) (int, error) {
		tasks := make([]orchestration.Awaitable, 0, n)
		calls := make([]orchestration.Future[int], 0, n)
		for i := 1; i <= n; i++ {
			t := square.Call(ctx, i)
			calls = append(calls, t)
			tasks = append(tasks, t)
		}
		if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, t := range calls {
			v, _ := t.Await()
			sum += v
		}
		return sum, nil
	})
	// Approval waits up to 72 hours for a human's "approve" event.
	durable.RegisterOrchestrator(reg, "Approval", func(ctx *orchestration.Context, request string) (string, error) {
		ctx.SetCustomStatus("waiting for approval of " + request)
		answer, err := orchestration.WaitForEvent[string](ctx, "approve", orchestration.WithTimeout(72*time.Hour)).Await()
		if errors.Is(err, orchestration.ErrTimeout) {
			return "escalated: nobody answered in 72 hours", nil
		}
		if err != nil {
			return "", err
		}
		return request + " approved by " + answer, nil
	})
	// Monitor polls every 2 seconds until the check passes.
	durable.RegisterOrchestrator(reg, "Monitor", func(ctx *orchestration.Context, _ any) (int, error) {
		for attempt := 1; ; attempt++ {
			ctx.SetCustomStatus(fmt.Sprintf("check %d", attempt))
			ok, err := check.Call(ctx, attempt).Await()
			if err != nil {
				return 0, err
			}
			if ok {
				return attempt, nil
			}
			if err := orchestration.Sleep(ctx, 2*time.Second); err != nil {
				return 0, err
			}
		}
	})
	durable.RegisterEntity(reg, "Counter", entities.Ops[int]{
		"add": entities.Update(func(_ *entities.Context, n *int, by int) error { *n += by; return nil }),
		"get": entities.Do(func(_ *entities.Context, n *int, _ struct{}) (int, error) { return *n, nil }),
	})
	return reg
}
