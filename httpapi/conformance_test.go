package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// row is one request of the conformance table and what it must answer:
// the status, and for an error the code of its JSON body.
type row struct {
	name, method, path, body string
	header                   []string
	status                   int
	code                     string
	// changes is set on rows that change instances (good input).
	changes bool
}

// fixtures starts the instances the table works on: done (Completed),
// failed (Failed), waiting (Approval, Running) and paused (Approval).
func fixtures(t *testing.T, c *durable.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for id, name := range map[string]string{"done": "Hello", "failed": "Fail", "waiting": "Approval", "paused": "Approval"} {
		if _, err := c.Start(ctx, name, "x", durable.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
	}
	c.Wait(ctx, "done")
	c.Wait(ctx, "failed")
}

var jsonType = []string{"Content-Type", "application/json"}

// table is every route with good and bad input.
func table() []row {
	big := `"` + strings.Repeat("x", 70<<10) + `"`
	return []row{
		// Start.
		{name: "start", method: "POST", path: "/orchestrators/Hello", body: `"a"`, status: 202, changes: true},
		{name: "start with an ID", method: "POST", path: "/orchestrators/Hello/chosen-id", body: `"a"`, status: 202, changes: true},
		{name: "start without a body", method: "POST", path: "/orchestrators/Approval/no-body", status: 202, changes: true},
		{name: "start a running ID", method: "POST", path: "/orchestrators/Approval/waiting", status: 409, code: "Conflict"},
		{name: "start an unknown orchestrator", method: "POST", path: "/orchestrators/Nope", status: 400, code: "BadRequest"},
		{name: "start with bad JSON", method: "POST", path: "/orchestrators/Hello", body: `{"a":`, status: 400, code: "BadRequest"},
		{name: "start with a bad ID", method: "POST", path: "/orchestrators/Hello/@entity", status: 400, code: "BadRequest"},
		{name: "start with a bad timeout", method: "POST", path: "/orchestrators/Hello?timeout=soon", status: 400, code: "BadRequest"},
		{name: "start with too long a timeout", method: "POST", path: "/orchestrators/Hello?timeout=100000", status: 400, code: "BadRequest"},
		{name: "start with an oversized body", method: "POST", path: "/orchestrators/Hello", body: big, status: 413, code: "PayloadTooLarge"},
		{name: "start with GET", method: "GET", path: "/orchestrators/Hello", status: 405, code: "MethodNotAllowed"},
		// Status.
		{name: "status, ended", method: "GET", path: "/instances/done", status: 200},
		{name: "status, running", method: "GET", path: "/instances/waiting", status: 202},
		{name: "status, failed", method: "GET", path: "/instances/failed", status: 200},
		{name: "status, failed as 500", method: "GET", path: "/instances/failed?returnInternalServerErrorOnFailure=true", status: 500},
		{name: "status with history", method: "GET", path: "/instances/done?showHistory=true&showHistoryOutput=true&showInput=false", status: 200},
		{name: "status, unknown", method: "GET", path: "/instances/nobody", status: 404, code: "NotFound"},
		{name: "status, bad flag", method: "GET", path: "/instances/done?showHistory=perhaps", status: 400, code: "BadRequest"},
		{name: "status with PUT", method: "PUT", path: "/instances/done", status: 405, code: "MethodNotAllowed"},
		// List.
		{name: "list", method: "GET", path: "/instances", status: 200},
		{name: "list with a slash", method: "GET", path: "/instances/", status: 200},
		{name: "list with filters", method: "GET", path: "/instances?runtimeStatus=Completed&runtimeStatus=failed&createdTimeFrom=2020-01-01&createdTimeTo=2100-01-01T00:00:00Z&instanceIdPrefix=d&top=5&showInput=true&name=Hello&customStatus=x", status: 200},
		{name: "list, bad status", method: "GET", path: "/instances?runtimeStatus=Sleeping", status: 400, code: "BadRequest"},
		{name: "list, bad time", method: "GET", path: "/instances?createdTimeFrom=yesterday", status: 400, code: "BadRequest"},
		{name: "list, time range backwards", method: "GET", path: "/instances?createdTimeFrom=2030-01-01&createdTimeTo=2020-01-01", status: 400, code: "BadRequest"},
		{name: "list, top 0", method: "GET", path: "/instances?top=0", status: 400, code: "BadRequest"},
		{name: "list, top too large", method: "GET", path: "/instances?top=5000", status: 400, code: "BadRequest"},
		{name: "list, bad token", method: "GET", path: "/instances", header: []string{"x-ms-continuation-token", "%%%"}, status: 400, code: "BadRequest"},
		// Raise event.
		{name: "raise", method: "POST", path: "/instances/waiting/raiseEvent/other", body: `{"n":1}`, header: jsonType, status: 202, changes: true},
		{name: "raise, not JSON media type", method: "POST", path: "/instances/waiting/raiseEvent/approve", body: `"yes"`, header: []string{"Content-Type", "text/plain"}, status: 400, code: "BadRequest"},
		{name: "raise, bad JSON", method: "POST", path: "/instances/waiting/raiseEvent/approve", body: `yes`, header: jsonType, status: 400, code: "BadRequest"},
		{name: "raise, oversized", method: "POST", path: "/instances/waiting/raiseEvent/approve", body: big, header: jsonType, status: 413, code: "PayloadTooLarge"},
		{name: "raise, unknown instance", method: "POST", path: "/instances/nobody/raiseEvent/approve", body: `1`, header: jsonType, status: 404, code: "NotFound"},
		{name: "raise, ended instance", method: "POST", path: "/instances/done/raiseEvent/approve", body: `1`, header: jsonType, status: 410, code: "Gone"},
		{name: "raise with GET", method: "GET", path: "/instances/waiting/raiseEvent/approve", status: 405, code: "MethodNotAllowed"},
		// Control.
		{name: "suspend", method: "POST", path: "/instances/paused/suspend?reason=lunch", status: 202, changes: true},
		{name: "resume", method: "POST", path: "/instances/paused/resume?reason=back", status: 202, changes: true},
		{name: "terminate", method: "POST", path: "/instances/paused/terminate?reason=enough", status: 202, changes: true},
		{name: "terminate, ended", method: "POST", path: "/instances/done/terminate", status: 410, code: "Gone"},
		{name: "terminate, unknown", method: "POST", path: "/instances/nobody/terminate", status: 404, code: "NotFound"},
		{name: "suspend, unknown", method: "POST", path: "/instances/nobody/suspend", status: 404, code: "NotFound"},
		{name: "resume, ended", method: "POST", path: "/instances/done/resume", status: 410, code: "Gone"},
		{name: "unknown operation", method: "POST", path: "/instances/waiting/frobnicate", status: 404, code: "NotFound"},
		{name: "rewind", method: "POST", path: "/instances/failed/rewind", status: 501, code: "NotImplemented"},
		// Restart.
		{name: "restart in place", method: "POST", path: "/instances/failed/restart?restartWithNewInstanceId=false", status: 202, changes: true},
		{name: "restart, new ID", method: "POST", path: "/instances/done/restart", status: 202, changes: true},
		{name: "restart a running one in place", method: "POST", path: "/instances/waiting/restart?restartWithNewInstanceId=false", status: 409, code: "Conflict"},
		{name: "restart, unknown", method: "POST", path: "/instances/nobody/restart", status: 404, code: "NotFound"},
		{name: "restart, bad flag", method: "POST", path: "/instances/done/restart?restartWithNewInstanceId=2", status: 400, code: "BadRequest"},
		// Purge.
		{name: "purge, running", method: "DELETE", path: "/instances/waiting", status: 409, code: "Conflict"},
		{name: "purge, unknown", method: "DELETE", path: "/instances/nobody", status: 404, code: "NotFound"},
		{name: "purge many without a start", method: "DELETE", path: "/instances?runtimeStatus=Completed", status: 400, code: "BadRequest"},
		{name: "purge many running ones", method: "DELETE", path: "/instances?createdTimeFrom=2000-01-01&runtimeStatus=Running", status: 400, code: "BadRequest"},
		{name: "purge many, nothing", method: "DELETE", path: "/instances?createdTimeFrom=2000-01-01&createdTimeTo=2000-01-02", status: 404, code: "NotFound"},
		{name: "purge one", method: "DELETE", path: "/instances/done", status: 200, changes: true},
		// Entities.
		{name: "signal", method: "POST", path: "/entities/Counter/k1?op=add", body: "3", header: jsonType, status: 202, changes: true},
		{name: "signal with a text body", method: "POST", path: "/entities/Counter/k2?op=delete", body: "bye", status: 202, changes: true},
		{name: "signal without op", method: "POST", path: "/entities/Counter/k1", body: "3", header: jsonType, status: 400, code: "BadRequest"},
		{name: "signal, bad JSON", method: "POST", path: "/entities/Counter/k1?op=add", body: "{", header: jsonType, status: 400, code: "BadRequest"},
		{name: "signal, unknown kind", method: "POST", path: "/entities/Nope/k1?op=add", body: "3", header: jsonType, status: 400, code: "BadRequest"},
		{name: "signal, empty key", method: "POST", path: "/entities/Counter/$?op=add", body: "3", header: jsonType, status: 400, code: "BadRequest"},
		{name: "signal, oversized", method: "POST", path: "/entities/Counter/k1?op=add", body: big, header: jsonType, status: 413, code: "PayloadTooLarge"},
		{name: "entity state, none", method: "GET", path: "/entities/Counter/never", status: 404, code: "NotFound"},
		{name: "entity state, unknown kind", method: "GET", path: "/entities/Nope/k1", status: 404, code: "NotFound"},
		{name: "list entities", method: "GET", path: "/entities", status: 200},
		{name: "list entities of a kind", method: "GET", path: "/entities/counter?fetchState=true&top=10&lastOperationTimeFrom=2020-01-01", status: 200},
		{name: "list entities, bad top", method: "GET", path: "/entities/counter?top=many", status: 400, code: "BadRequest"},
		{name: "delete entity", method: "DELETE", path: "/entities/Counter/k2", status: 202, changes: true},
		{name: "entity with PUT", method: "PUT", path: "/entities/Counter/k1", status: 405, code: "MethodNotAllowed"},
		// Elsewhere.
		{name: "unknown route", method: "GET", path: "/nowhere", status: 404, code: "NotFound"},
		{name: "outside the base path", method: "GET", path: "/../instances", status: 404, code: "NotFound"},
	}
}

// TestConformance runs every row against one engine, in order, and checks
// each answer's status, its error shape, and the headers a status needs.
func TestConformance(t *testing.T) {
	c := engine(t)
	srv, _ := api(t, c)
	fixtures(t, c)
	for _, r := range table() {
		resp, body := do(t, r.method, srv.URL+base+r.path, r.body, r.header...)
		if resp.StatusCode != r.status {
			t.Errorf("%s: %s %s answered %d, want %d: %s", r.name, r.method, r.path, resp.StatusCode, r.status, body)
			continue
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(body) > 0 {
			t.Errorf("%s: Content-Type %q", r.name, resp.Header.Get("Content-Type"))
		}
		switch {
		case r.code != "":
			var e struct{ Code, Message string }
			if err := json.Unmarshal(body, &e); err != nil || e.Code != r.code || e.Message == "" {
				t.Errorf("%s: error body %s, want code %s and a message", r.name, body, r.code)
			}
		case r.status == 202 && r.method == "GET":
			if resp.Header.Get("Location") == "" || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s: a running instance's status lacks Location or Retry-After", r.name)
			}
		}
		if r.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", r.name)
		}
	}
}

// snapshot is what every instance is: its status and history length.
func snapshot(t *testing.T, c *durable.Client) []string {
	t.Helper()
	ctx := context.Background()
	page, err := c.List(ctx, durable.Query{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range page.Instances {
		h, err := c.History(ctx, st.InstanceID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d", st.InstanceID, st.RuntimeStatus, len(h)))
	}
	return out
}

// TestBadInputChangesNothing: every bad request of the table, sent to a
// server with instances in every state, leaves every instance as it was,
// and the server goes on serving.
func TestBadInputChangesNothing(t *testing.T) {
	c := engine(t)
	srv, _ := api(t, c)
	fixtures(t, c)
	before := snapshot(t, c)
	for _, r := range table() {
		if r.changes || r.status < 400 {
			continue
		}
		if resp, body := do(t, r.method, srv.URL+base+r.path, r.body, r.header...); resp.StatusCode != r.status {
			t.Errorf("%s: %d %s", r.name, resp.StatusCode, body)
		}
	}
	if after := snapshot(t, c); !slices.Equal(before, after) {
		t.Fatalf("bad requests changed instances:\nbefore %v\nafter  %v", before, after)
	}
	resp, body := do(t, "POST", srv.URL+base+"/instances/waiting/raiseEvent/approve", `"yes"`, jsonType...)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the bad requests: %d %s", resp.StatusCode, body)
	}
	st, err := c.Wait(context.Background(), "waiting")
	if err != nil || st.RuntimeStatus != orchestration.StatusCompleted {
		t.Fatalf("the waiting instance: %+v %v", st, err)
	}
}
