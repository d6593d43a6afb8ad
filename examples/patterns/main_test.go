package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestPatterns runs the whole program and checks that every pattern
// reports its result, so the examples cannot rot.
func TestPatterns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, ""); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"PriceOrder   -> 3 x notebook = $13.50",
		"ok   chaining     order A-1001 priced, paid and shipped as TRK-A-1001 (PriceOrder -> ChargeOrder -> ShipOrder)",
		"add up to 9592 primes below 100000",
		"ok   fanout       9592 primes below 100000 from 100 parallel activities",
		"POST /orchestrators/ExportReport/report-7  -> 202 Accepted, Location: /instances/report-7",
		"GET /instances/report-7  -> 202 Running",
		`GET /instances/report-7  -> 200 Completed, 4 of 4 parts exported, output "report-7.zip"`,
		"ok   asyncstatus  report-7.zip after 4 parts",
		"build-42: checked 4 times (25% 50% 75% 100%), waiting 100ms, 200ms, 400ms -> ready",
		"build-43: checked 4 times (5% 10% 15% 20%), waiting 100ms, 200ms, 400ms -> expired",
		"ok   monitor      build-42 ready after 4 checks; build-43 stuck at 20%, expired",
		"-> laptop: approved by alice",
		"-> boat: no answer within 2s, escalated to the manager",
		"ok   approval     laptop approved by alice in time; boat unanswered, escalated after 2s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "FAIL") || t.Failed() {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, "fanout"); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "2. Fan-out/fan-in") || strings.Contains(out.String(), "Function chaining") {
		t.Errorf("-only fanout ran something else:\n%s", out.String())
	}
	if got := strings.Count(out.String(), "\n  ok "); got != 1 {
		t.Errorf("%d summary lines, want 1:\n%s", got, out.String())
	}
}

func TestUnknownPattern(t *testing.T) {
	err := run(context.Background(), io.Discard, "saga")
	if err == nil || !strings.Contains(err.Error(), `"saga"`) || !strings.Contains(err.Error(), "chaining, fanout, asyncstatus, monitor, approval") {
		t.Fatalf("run with an unknown pattern: %v", err)
	}
}
