package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// Human interaction: the orchestrator asks a person for an approval and
// waits for the answer as an external event, raised with
// Client.RaiseEvent, against a durable timer. If nobody answers in time it
// escalates. It runs twice: once the approver answers in time, once
// nobody does.
type approval struct {
	request  orchestration.ActivityRef[approvalRequest, bool]
	escalate orchestration.ActivityRef[approvalRequest, string]
	approve  orchestration.OrchestratorRef[approvalRequest, string]

	// inbox is the approvers' mailbox: RequestApproval drops requests in it.
	inbox       chan approvalRequest
	escalations atomic.Int32
}

type approvalRequest struct {
	Item     string        `json:"item"`
	Approver string        `json:"approver"`
	Timeout  time.Duration `json:"timeout"`
}

// approvalTimeout is how long the demo waits for an answer. In production
// it would be days: a person has to read the request, e.g. 72*time.Hour.
// The timer is durable either way; the instance does not stay in memory
// while it waits.
const approvalTimeout = 2 * time.Second

func newApproval() *approval {
	return &approval{inbox: make(chan approvalRequest, 16)}
}

func (d *approval) register(reg *durable.Registry) {
	d.request = durable.RegisterActivity(reg, "RequestApproval", func(_ context.Context, req approvalRequest) (bool, error) {
		select { // Stands in for sending an email.
		case d.inbox <- req:
			return true, nil
		default:
			return false, errors.New("the approvers' inbox is full")
		}
	})
	d.escalate = durable.RegisterActivity(reg, "Escalate", func(_ context.Context, req approvalRequest) (string, error) {
		d.escalations.Add(1)
		return "the manager", nil
	})
	d.approve = durable.RegisterOrchestrator(reg, "Approve", d.approveRequest)
}

// approveRequest is the orchestrator.
func (d *approval) approveRequest(ctx *orchestration.Context, req approvalRequest) (string, error) {
	if _, err := d.request.Call(ctx, req).Await(); err != nil {
		return "", err
	}
	approver, err := orchestration.WaitForEvent[string](ctx, "Approval", orchestration.WithTimeout(req.Timeout)).Await()
	if errors.Is(err, orchestration.ErrTimeout) {
		to, err := d.escalate.Call(ctx, req).Await()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: no answer within %s, escalated to %s", req.Item, req.Timeout, to), nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: approved by %s", req.Item, approver), nil
}

func (d *approval) run(ctx context.Context, c *durable.Client, w io.Writer) (string, error) {
	// 1. The approver answers in time.
	answered, err := d.ask(ctx, c, w, approvalRequest{Item: "laptop", Approver: "alice", Timeout: approvalTimeout}, true)
	if err != nil {
		return "", err
	}
	// 2. Nobody answers.
	ignored, err := d.ask(ctx, c, w, approvalRequest{Item: "boat", Approver: "bob", Timeout: approvalTimeout}, false)
	if err != nil {
		return "", err
	}
	if want := "laptop: approved by alice"; answered != want {
		return "", fmt.Errorf("answered request: %q, want %q", answered, want)
	}
	if want := "boat: no answer within 2s, escalated to the manager"; ignored != want {
		return "", fmt.Errorf("ignored request: %q, want %q", ignored, want)
	}
	if n := d.escalations.Load(); n != 1 {
		return "", fmt.Errorf("escalated %d times, want once", n)
	}
	return "laptop approved by alice in time; boat unanswered, escalated after 2s", nil
}

// ask starts an approval, plays the approver (who answers or not) and
// returns the orchestration's output.
func (d *approval) ask(ctx context.Context, c *durable.Client, w io.Writer, req approvalRequest, answer bool) (string, error) {
	id, err := c.Start(ctx, d.approve.Name, req, durable.WithInstanceID("approve-"+req.Item))
	if err != nil {
		return "", err
	}
	var got approvalRequest
	select {
	case got = <-d.inbox:
	case <-ctx.Done():
		return "", fmt.Errorf("the approval request for %s never arrived: %w", req.Item, ctx.Err())
	}
	fmt.Fprintf(w, "%s asked to approve the %s (timeout %s)\n", got.Approver, got.Item, got.Timeout)
	if answer {
		if err := c.RaiseEvent(ctx, id, "Approval", got.Approver); err != nil {
			return "", err
		}
		fmt.Fprintf(w, "%s approves: RaiseEvent(%q, \"Approval\", %q)\n", got.Approver, id, got.Approver)
	} else {
		fmt.Fprintf(w, "%s does not answer\n", got.Approver)
	}
	var out string
	if err := waitOutput(ctx, c, id, &out); err != nil {
		return "", err
	}
	fmt.Fprintf(w, "-> %s\n", out)
	return out, nil
}
