package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/durableactor/durable/internal/racedetector"
	"github.com/durableactor/durable/orchestration"
)

// TestSmoke runs every scenario briefly, so the program never rots, and
// checks that -json prints only well-formed results.
func TestSmoke(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"-scenario", s.name, "-duration", "1ms", "-json", "-events", "2000", "-instances", "200", "-inflight", "4", "-width", "10", "-soak", "300ms", "-dir", t.TempDir()}
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) == 0 {
				t.Fatal("no results")
			}
			for _, line := range lines {
				var r result
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("not JSON: %q: %v", line, err)
				}
				if r.Scenario != s.name || len(r.Metrics) == 0 {
					t.Fatalf("result %+v", r)
				}
				for k, v := range r.Metrics {
					if v <= 0 && k != "allocs_per_op" {
						t.Fatalf("metric %s = %v", k, v)
					}
				}
			}
		})
	}
}

func TestUnknownScenario(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-scenario", "nope"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown scenario "nope"`) {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestPeakIsPerScenario checks that a scenario's peak RSS is its own, not
// the highest of the scenarios before it.
func TestPeakIsPerScenario(t *testing.T) {
	if racedetector.Enabled {
		t.Skip("the race detector's shadow memory stays resident after the heap is freed")
	}
	m := startPeak()
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	high, ok := m.peakMiB()
	if !ok {
		t.Skip("this platform cannot tell a scenario's peak RSS")
	}
	if high < 64 {
		t.Fatalf("peak %.1f MiB with 64 MiB in use", high)
	}
	runtime.KeepAlive(big)
	m = startPeak()
	if !m.reset {
		t.Skip("this platform cannot reset the peak RSS")
	}
	if low, ok := m.peakMiB(); !ok || low >= high-32 {
		t.Fatalf("peak %.1f MiB (%v) after one of %.1f MiB was freed", low, ok, high)
	}
}

// TestRunsShareNoData runs parked twice with the same -dir: each run needs
// its own instances, and nothing may be left behind.
func TestRunsShareNoData(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-scenario", "parked", "-instances", "20", "-dir", dir}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Fatalf("left in -dir: %v (%v)", left, err)
	}
}

// TestMemoryBackend checks that the end-to-end scenarios run on the store
// -backend names and say so.
func TestMemoryBackend(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-scenario", "chain,fanout", "-backend", "memory", "-duration", "1ms", "-json", "-inflight", "4", "-width", "10", "-dir", t.TempDir()}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if r.Params["backend"] != "memory" {
			t.Fatalf("result %+v", r)
		}
	}
}

func TestReplayEventsClamped(t *testing.T) {
	var stderr bytes.Buffer
	results, err := runReplay(t.Context(), config{events: 300_000, duration: time.Millisecond, stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if ev := results[0].Params["events"].(int); ev > orchestration.DefaultMaxHistoryEvents || ev < maxReplayEvents {
		t.Fatalf("replayed %d events", ev)
	}
	if !strings.Contains(stderr.String(), "over an orchestration's history limit") {
		t.Fatalf("stderr: %q", stderr.String())
	}
}

// TestSweepPlot: a sweep runs a scenario once per value and draws its
// curves, in SVG and PNG.
func TestSweepPlot(t *testing.T) {
	for _, ext := range []string{"svg", "png"} {
		file := filepath.Join(t.TempDir(), "chain."+ext)
		var stdout, stderr bytes.Buffer
		args := []string{"-scenario", "chain", "-duration", "1ms", "-sweep", "inflight=1,4,16", "-plot", file, "-json", "-dir", t.TempDir()}
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var points []int
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			points = append(points, int(r.Params["inflight"].(float64)))
		}
		if fmt.Sprint(points) != "[1 4 16]" {
			t.Fatalf("swept %v", points)
		}
		info, err := os.Stat(file)
		if err != nil || info.Size() < 1000 {
			t.Fatalf("the plot %s: %v (%d bytes)", file, err, info.Size())
		}
	}
	var stderr bytes.Buffer
	for _, args := range [][]string{{"-sweep", "depth=1,2"}, {"-sweep", "inflight=1,x"}, {"-plot", "x.svg"}} {
		if code := run(args, io.Discard, &stderr); code != 2 {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
}
