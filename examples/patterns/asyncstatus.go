package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// Async HTTP APIs: a long-running operation behind HTTP. The start
// endpoint starts an orchestration and answers 202 Accepted at once, with
// a Location header naming a status URL; the caller polls that URL, which
// answers 202 with the progress the orchestrator reports through its
// custom status while the instance runs, and 200 with the output once it
// is done. The status comes from Client.Status, which reads the instance
// index and does not wake the instance.
type asyncStatus struct {
	exportPart orchestration.ActivityRef[int, string]
	export     orchestration.OrchestratorRef[int, string]
}

// progress is the export's custom status.
type progress struct {
	Done int `json:"done"`
	Of   int `json:"of"`
}

const exportParts = 4

func (d *asyncStatus) register(reg *durable.Registry) {
	d.exportPart = durable.RegisterActivity(reg, "ExportPart", func(ctx context.Context, part int) (string, error) {
		select { // Stand in for slow work.
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return fmt.Sprintf("part-%d.csv", part), nil
	})
	d.export = durable.RegisterOrchestrator(reg, "ExportReport", d.exportReport)
}

// exportReport is the orchestrator: it exports the parts one by one and
// reports how far it got.
func (d *asyncStatus) exportReport(ctx *orchestration.Context, parts int) (string, error) {
	for i := range parts {
		if err := ctx.SetCustomStatus(progress{Done: i, Of: parts}); err != nil {
			return "", err
		}
		if _, err := d.exportPart.Call(ctx, i+1).Await(); err != nil {
			return "", err
		}
	}
	if err := ctx.SetCustomStatus(progress{Done: parts, Of: parts}); err != nil {
		return "", err
	}
	return ctx.ID() + ".zip", nil
}

// statusBody is what the status URL returns.
type statusBody struct {
	InstanceID    string          `json:"instanceId"`
	RuntimeStatus string          `json:"runtimeStatus"`
	CustomStatus  json.RawMessage `json:"customStatus,omitempty"`
	Output        json.RawMessage `json:"output,omitempty"`
	Failure       string          `json:"failure,omitempty"`
}

// statusAPI is the HTTP API, on net/http alone:
//
//	POST /orchestrators/{name}/{id}  body: the input  -> 202, Location: /instances/{id}
//	GET  /instances/{id}                              -> 202 while running, 200 when done
func statusAPI(c *durable.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orchestrators/{name}/{id}", func(w http.ResponseWriter, r *http.Request) {
		var input json.RawMessage
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&input); err != nil {
			http.Error(w, "the body must be the input as JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		id, err := c.Start(r.Context(), r.PathValue("name"), input, durable.WithInstanceID(r.PathValue("id")))
		if err != nil {
			http.Error(w, err.Error(), httpStatusOf(err))
			return
		}
		w.Header().Set("Location", "/instances/"+id)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, err := c.Status(r.Context(), r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), httpStatusOf(err))
			return
		}
		// The registry's converter is JSON, so the payloads are JSON already.
		body := statusBody{InstanceID: st.InstanceID, RuntimeStatus: st.RuntimeStatus.String(), CustomStatus: st.CustomStatus, Output: st.Output}
		if st.Failure != nil {
			body.Failure = st.Failure.String()
		}
		code := http.StatusAccepted
		if st.RuntimeStatus.IsTerminal() {
			code = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	})
	return mux
}

func httpStatusOf(err error) int {
	switch {
	case errors.Is(err, durable.ErrInstanceNotFound), errors.Is(err, durable.ErrUnknownOrchestrator):
		return http.StatusNotFound
	case errors.Is(err, durable.ErrInstanceExists):
		return http.StatusConflict
	case errors.Is(err, durable.ErrInvalidInstanceID), errors.Is(err, durable.ErrPayloadTooLarge):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (d *asyncStatus) run(ctx context.Context, c *durable.Client, w io.Writer) (summary string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: statusAPI(c), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(shutdownCtx))
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}()
	return d.poll(ctx, w, &http.Client{Timeout: 5 * time.Second}, "http://"+ln.Addr().String())
}

// poll is the HTTP client: it starts an export, then polls the status URL
// it was given until the export is done, printing each change it sees.
func (d *asyncStatus) poll(ctx context.Context, w io.Writer, hc *http.Client, base string) (string, error) {
	startPath := "/orchestrators/" + d.export.Name + "/report-7"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+startPath, strings.NewReader(strconv.Itoa(exportParts)))
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST %s: %s", startPath, resp.Status)
	}
	statusURL, err := resp.Location()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(w, "POST %s  -> %s, Location: %s\n", startPath, resp.Status, statusURL.Path)

	var last string
	running := 0
	for {
		code, body, err := getStatus(ctx, hc, statusURL.String())
		if err != nil {
			return "", err
		}
		line := fmt.Sprintf("GET %s  -> %d %s", statusURL.Path, code, body.RuntimeStatus)
		var p progress
		if len(body.CustomStatus) > 0 && json.Unmarshal(body.CustomStatus, &p) == nil {
			line += fmt.Sprintf(", %d of %d parts exported", p.Done, p.Of)
		}
		if code == http.StatusOK {
			line += ", output " + string(body.Output)
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch code {
		case http.StatusAccepted:
			running++
		case http.StatusOK:
			var out string
			if err := json.Unmarshal(body.Output, &out); err != nil || body.RuntimeStatus != "Completed" || out != "report-7.zip" || p.Done != exportParts {
				return "", fmt.Errorf("the export ended %s with output %s %s", body.RuntimeStatus, body.Output, body.Failure)
			}
			if running == 0 {
				return "", errors.New("the status URL never answered 202 while the export ran")
			}
			return fmt.Sprintf("%s after %d parts, polled over HTTP (202 while running, then 200)", out, p.Done), nil
		default:
			return "", fmt.Errorf("GET %s: %d", statusURL.Path, code)
		}
		select { // Poll every 50ms; a real API would say how often in Retry-After.
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// getStatus fetches and decodes a status URL.
func getStatus(ctx context.Context, hc *http.Client, url string) (int, statusBody, error) {
	var body statusBody
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, body, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, body, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return 0, body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, body, fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.StatusCode, body, nil
}
