package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestSmoke runs every scenario briefly, so the program never rots, and
// checks that -json prints only well-formed results.
func TestSmoke(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"-scenario", s.name, "-duration", "1ms", "-json", "-events", "2000", "-instances", "200", "-inflight", "4", "-width", "10", "-dir", t.TempDir()}
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
