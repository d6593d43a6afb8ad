package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/durableactor/durable/orchestration"
)

// params reads a request's query parameters, keeping the first that is
// wrong: a handler reads all it needs, then checks err once.
type params struct {
	r   *http.Request
	err error
}

func (p *params) fail(name, value, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("the %s parameter %q is not %s", name, value, want)
	}
}

func (p *params) bool(name string, def bool) bool {
	v := p.r.URL.Query().Get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, v, "true or false")
		return def
	}
	return b
}

// time reads an RFC 3339 time, or a date (midnight UTC).
func (p *params) time(name string) time.Time {
	v := p.r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC()
		}
	}
	p.fail(name, v, "a time such as 2027-01-31T18:00:00Z")
	return time.Time{}
}

// int reads an integer in [lo, hi].
func (p *params) int(name string, def, lo, hi int) int {
	v := p.r.URL.Query().Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, v, fmt.Sprintf("a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

// seconds reads a duration in whole seconds, 0 when absent.
func (p *params) seconds(name string, hi time.Duration) time.Duration {
	return time.Duration(p.int(name, 0, 0, int(hi/time.Second))) * time.Second
}

// statuses reads runtime statuses, as a comma-separated list, repeated, or
// both; Durable Functions' names, case-insensitive.
func (p *params) statuses(name string) []orchestration.Status {
	var out []orchestration.Status
	for _, v := range p.r.URL.Query()[name] {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			s, ok := parseStatus(part)
			if !ok {
				p.fail(name, part, "a runtime status (Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated, Pending, Suspended)")
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

func parseStatus(name string) (orchestration.Status, bool) {
	for s := orchestration.StatusRunning; s <= orchestration.StatusSuspended; s++ {
		if strings.EqualFold(s.String(), name) {
			return s, true
		}
	}
	return 0, false
}
