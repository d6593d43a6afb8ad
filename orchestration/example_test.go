package orchestration_test

import (
	"context"
	"fmt"
	"time"

	"github.com/durableactor/durable/orchestration"
	"github.com/durableactor/durable/orchestration/orchestrationtest"
)

// An approval that escalates when no one answers within 72 hours, run in
// the time-skipping test harness.
func Example() {
	reg := orchestration.NewRegistry()
	orchestration.Register(reg, "Approve", func(ctx *orchestration.Context, request string) (string, error) {
		ok, err := orchestration.WaitForEvent[bool](ctx, "Approval", orchestration.WithTimeout(72*time.Hour)).Await()
		if err != nil {
			if err := ctx.CallActivity("Escalate", request).Await(nil); err != nil {
				return "", err
			}
			return request + ": escalated at " + ctx.Now().Format(time.RFC3339), nil
		}
		return fmt.Sprintf("%s: approved=%v", request, ok), nil
	})

	env := orchestrationtest.New(reg, orchestrationtest.Options{})
	defer env.Close()
	env.RegisterActivity("Escalate", func(context.Context, []byte) ([]byte, error) { return nil, nil })

	fast, _ := env.Start("Approve", "laptop", orchestrationtest.StartOptions{})
	env.RaiseEvent(fast, "Approval", true)
	slow, _ := env.Start("Approve", "boat", orchestrationtest.StartOptions{})
	env.RunToCompletion(slow)

	for _, id := range []string{fast, slow} {
		var out string
		env.Output(id, &out)
		fmt.Println(out)
	}
	// Output:
	// laptop: approved=true
	// boat: escalated at 2026-01-04T00:00:00Z
}
