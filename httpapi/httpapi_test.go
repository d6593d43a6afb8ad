package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
	"github.com/durableactor/durable/httpapi"
	"github.com/durableactor/durable/orchestration"
)

type counter struct{ Value int }

// registry has Hello (calls Greet), Approval (waits for "approve"), Fail
// and the counter entity.
func registry() *durable.Registry {
	reg := durable.NewRegistry()
	greet := durable.RegisterActivity(reg, "Greet", func(_ context.Context, name string) (string, error) {
		return "Hello, " + name, nil
	})
	durable.RegisterOrchestrator(reg, "Hello", func(ctx *orchestration.Context, name string) (string, error) {
		return greet.Call(ctx, name).Await()
	})
	durable.RegisterOrchestrator(reg, "Approval", func(ctx *orchestration.Context, _ any) (string, error) {
		ctx.SetCustomStatus("waiting for approval")
		return orchestration.WaitForEvent[string](ctx, "approve").Await()
	})
	durable.RegisterOrchestrator(reg, "Fail", func(ctx *orchestration.Context, _ any) (string, error) {
		return "", errors.New("it always fails")
	})
	durable.RegisterEntity(reg, "Counter", entities.Ops[counter]{
		"add": entities.Update(func(_ *entities.Context, c *counter, n int) error { c.Value += n; return nil }),
	})
	return reg
}

func engine(t *testing.T) *durable.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	level := slog.LevelWarn
	if os.Getenv("DURABLE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	e, err := durable.Open(ctx, durable.Config{Dir: t.TempDir(), Registry: registry(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e.Client()
}

// api serves a handler of c on httptest.
func api(t *testing.T, c *durable.Client, tweak ...func(*httpapi.Config)) (*httptest.Server, *httpapi.Handler) {
	t.Helper()
	cfg := httpapi.Config{Client: c, MaxBodyBytes: 64 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range tweak {
		f(&cfg)
	}
	h, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

const base = httpapi.DefaultBasePath

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, url string, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

type (
	status      = httpapi.StatusPayload
	checkStatus = httpapi.CheckStatusPayload
)

// TestAsyncHTTPPattern: a client starts an instance, polls the Location
// it was given while it answers 202, raises the event the instance waits
// for through the payload's URL, and reads the output once it is 200; on
// a real server on loopback.
func TestAsyncHTTPPattern(t *testing.T) {
	c := engine(t)
	h, err := httpapi.New(httpapi.Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	root := "http://" + ln.Addr().String() + base
	resp, body := do(t, "POST", root+"/orchestrators/Approval/order-7", `{"amount": 12}`)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	cs := decode[checkStatus](t, body)
	if cs.ID != "order-7" || resp.Header.Get("Location") != cs.StatusQueryGetURI || cs.StatusQueryGetURI != root+"/instances/order-7" ||
		cs.SendEventPostURI != root+"/instances/order-7/raiseEvent/{eventName}" || cs.TerminatePostURI == "" || cs.PurgeHistoryDeleteURI != cs.StatusQueryGetURI ||
		cs.RestartPostURI == "" || cs.SuspendPostURI == "" || cs.ResumePostURI == "" {
		t.Fatalf("check-status payload: %+v (Location %s)", cs, resp.Header.Get("Location"))
	}
	resp, body = do(t, "GET", cs.StatusQueryGetURI, "")
	st := decode[status](t, body)
	if resp.StatusCode != http.StatusAccepted || st.RuntimeStatus != "Running" || string(st.CustomStatus) != `"waiting for approval"` ||
		resp.Header.Get("Location") != cs.StatusQueryGetURI || !strings.Contains(st.WaitsFor, "approve") || string(st.Input) != `{"amount":12}` {
		t.Fatalf("status while it waits: %d %s", resp.StatusCode, body)
	}
	if !strings.HasSuffix(st.CreatedTime, "Z") || len(st.CreatedTime) != len("2006-01-02T15:04:05Z") {
		t.Fatalf("createdTime %q is not Durable Functions' format", st.CreatedTime)
	}
	resp, body = do(t, "POST", strings.Replace(cs.SendEventPostURI, "{eventName}", "approve", 1), `"yes"`, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("raise: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body = do(t, "GET", cs.StatusQueryGetURI, "")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("polling: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond) // the client's polling interval
	}
	if st := decode[status](t, body); st.RuntimeStatus != "Completed" || string(st.Output) != `"yes"` {
		t.Fatalf("done: %s", body)
	}
}

// TestStartAndWait: ?timeout= waits for the instance and answers with its
// output, and with the check-status payload when it does not end in time.
func TestStartAndWait(t *testing.T) {
	srv, _ := api(t, engine(t))
	resp, body := do(t, "POST", srv.URL+base+"/orchestrators/Hello?timeout=20&pollingInterval=1", `"Ada"`)
	if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != `"Hello, Ada"` {
		t.Fatalf("start and wait: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", srv.URL+base+"/orchestrators/Approval?timeout=1", "")
	if resp.StatusCode != http.StatusAccepted || decode[checkStatus](t, body).ID == "" {
		t.Fatalf("a wait that times out: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", srv.URL+base+"/orchestrators/Fail?timeout=20&returnInternalServerErrorOnFailure=true", "")
	if st := decode[status](t, body); resp.StatusCode != http.StatusInternalServerError || st.RuntimeStatus != "Failed" || string(st.Output) != `"it always fails"` {
		t.Fatalf("a failure: %d %s", resp.StatusCode, body)
	}
}

// TestHistory: showHistory shapes the history as Durable Functions does.
func TestHistory(t *testing.T) {
	c := engine(t)
	srv, _ := api(t, c)
	ctx := context.Background()
	if _, err := c.Start(ctx, "Hello", "Bo", durable.WithInstanceID("h")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	_, body := do(t, "GET", srv.URL+base+"/instances/h?showHistory=true&showHistoryOutput=true", "")
	st := decode[status](t, body)
	var types []string
	for _, ev := range st.HistoryEvents {
		types = append(types, ev["EventType"].(string))
	}
	if strings.Join(types, " ") != "ExecutionStarted TaskCompleted ExecutionCompleted" {
		t.Fatalf("history events %v: %s", types, body)
	}
	task, done := st.HistoryEvents[1], st.HistoryEvents[2]
	if task["FunctionName"] != "Greet" || task["ScheduledTime"] == nil || task["Input"] != "Bo" || task["Result"] != "Hello, Bo" ||
		done["OrchestrationStatus"] != "Completed" || done["Result"] != "Hello, Bo" || st.HistoryEvents[0]["FunctionName"] != "Hello" {
		t.Fatalf("history: %s", body)
	}
	_, body = do(t, "GET", srv.URL+base+"/instances/h?showHistory=true&showInput=false", "")
	st = decode[status](t, body)
	if string(st.Input) != "null" || st.HistoryEvents[1]["Input"] != nil || st.HistoryEvents[1]["Result"] != nil {
		t.Fatalf("without input and output: %s", body)
	}
}

// TestListAndPurge: the list pages with the continuation header, and
// purge (one and many) deletes ended instances only.
func TestListAndPurge(t *testing.T) {
	c := engine(t)
	srv, _ := api(t, c)
	ctx := context.Background()
	for range 25 {
		id, err := c.Start(ctx, "Hello", "x")
		if err != nil {
			t.Fatal(err)
		}
		c.Wait(ctx, id)
	}
	if _, err := c.Start(ctx, "Approval", nil, durable.WithInstanceID("live")); err != nil {
		t.Fatal(err)
	}
	var all []status
	token := ""
	for pages := 0; ; pages++ {
		resp, body := do(t, "GET", srv.URL+base+"/instances?top=10&runtimeStatus=Completed,Running&showInput=true", "", "x-ms-continuation-token", token)
		if resp.StatusCode != http.StatusOK || pages > 5 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		all = append(all, decode[[]status](t, body)...)
		if token = resp.Header.Get("x-ms-continuation-token"); token == "" {
			break
		}
	}
	if len(all) != 26 || string(all[0].Input) != `"x"` || all[25].InstanceID != "live" {
		t.Fatalf("listed %d: %+v", len(all), all)
	}
	if resp, body := do(t, "DELETE", srv.URL+base+"/instances/live", ""); resp.StatusCode != http.StatusConflict {
		t.Fatalf("purging a running instance: %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, "DELETE", srv.URL+base+"/instances/"+all[0].InstanceID, "")
	if resp.StatusCode != http.StatusOK || decode[map[string]int](t, body)["instancesDeleted"] != 1 {
		t.Fatalf("purge one: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", srv.URL+base+"/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Completed", "")
	if resp.StatusCode != http.StatusOK || decode[map[string]int](t, body)["instancesDeleted"] != 24 {
		t.Fatalf("purge many: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", srv.URL+base+"/instances?createdTimeFrom=2000-01-01T00:00:00Z", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("purging nothing: %d %s", resp.StatusCode, body)
	}
	_, body = do(t, "GET", srv.URL+base+"/instances", "")
	if left := decode[[]status](t, body); len(left) != 1 || left[0].InstanceID != "live" {
		t.Fatalf("left: %s", body)
	}
}

// TestEntities: signal, read, list and delete an entity over HTTP.
func TestEntities(t *testing.T) {
	srv, _ := api(t, engine(t))
	for _, n := range []string{"5", "7"} {
		if resp, body := do(t, "POST", srv.URL+base+"/entities/Counter/c1?op=add", n, "Content-Type", "application/json"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("signal: %d %s", resp.StatusCode, body)
		}
	}
	var body []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		var resp *http.Response
		resp, body = do(t, "GET", srv.URL+base+"/entities/Counter/c1", "")
		if resp.StatusCode == http.StatusOK && decode[counter](t, body).Value == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state: %d %s", resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond) // signals are one-way: poll, as a client would
	}
	_, body = do(t, "GET", srv.URL+base+"/entities/counter?fetchState=true", "")
	type item struct {
		EntityID struct{ Name, Key string } `json:"entityId"`
		State    counter                    `json:"state"`
	}
	if items := decode[[]item](t, body); len(items) != 1 || items[0].EntityID.Key != "c1" || items[0].EntityID.Name != "counter" || items[0].State.Value != 12 {
		t.Fatalf("list: %s", body)
	}
	if resp, body := do(t, "DELETE", srv.URL+base+"/entities/Counter/c1", ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		resp, _ := do(t, "GET", srv.URL+base+"/entities/Counter/c1", "")
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted entity still has state")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKey: with a key, every route needs it, in any of its three places.
func TestKey(t *testing.T) {
	srv, _ := api(t, engine(t), func(c *httpapi.Config) { c.Key = "s3cret" })
	url := srv.URL + base + "/instances"
	for _, c := range []struct {
		name   string
		url    string
		header []string
		want   int
	}{
		{"none", url, nil, http.StatusUnauthorized},
		{"wrong", url, []string{"x-functions-key", "guess"}, http.StatusUnauthorized},
		{"wrong bearer", url, []string{"Authorization", "Bearer guess"}, http.StatusUnauthorized},
		{"unknown route, no key", srv.URL + "/nowhere", nil, http.StatusUnauthorized},
		{"header", url, []string{"x-functions-key", "s3cret"}, http.StatusOK},
		{"bearer", url, []string{"Authorization", "Bearer s3cret"}, http.StatusOK},
		{"code", url + "?code=s3cret", nil, http.StatusOK},
	} {
		resp, body := do(t, "GET", c.url, "", c.header...)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
		}
		if c.want == http.StatusUnauthorized && decode[map[string]string](t, body)["code"] != "Unauthorized" {
			t.Errorf("%s: %s", c.name, body)
		}
	}
}

// TestServeRefusesOpenListenerWithoutKey: the API is not served beyond
// loopback without a key, and is with one.
func TestServeRefusesOpenListenerWithoutKey(t *testing.T) {
	c := engine(t)
	open := func() net.Listener {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	h, _ := httpapi.New(httpapi.Config{Client: c})
	if err := h.Serve(context.Background(), open()); err == nil || !strings.Contains(err.Error(), "without a key") {
		t.Fatalf("served on all interfaces without a key: %v", err)
	}
	h, _ = httpapi.New(httpapi.Config{Client: c, Key: "k"})
	ln := open()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ctx, ln) }()
	port := ln.Addr().(*net.TCPAddr).Port
	resp, body := do(t, "GET", "http://127.0.0.1:"+strconv.Itoa(port)+base+"/instances", "", "x-functions-key", "k")
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with a key: %d %s", resp.StatusCode, body)
	}
}
