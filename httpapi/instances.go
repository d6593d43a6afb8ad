package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/orchestration"
)

// continuationHeader carries list continuation tokens both ways.
const continuationHeader = "x-ms-continuation-token"

// readJSON reads a body that must be JSON (empty: null). It answers the
// request itself when the body is not, and returns ok false.
func readJSON(w http.ResponseWriter, r *http.Request) (json.RawMessage, bool) {
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("the body is over %d bytes", tooLarge.Limit))
		return nil, false
	case err != nil:
		badRequest(w, "reading the body: "+err.Error())
		return nil, false
	case len(body) == 0:
		return json.RawMessage("null"), true
	case !json.Valid(body):
		badRequest(w, "the body is not valid JSON")
		return nil, false
	}
	return body, true
}

// start handles POST /orchestrators/{name}[/{id}].
func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	timeout := p.seconds("timeout", h.cfg.MaxWait)
	p.seconds("pollingInterval", h.cfg.MaxWait) // durable is told when an instance ends; it does not poll
	internalError := p.bool("returnInternalServerErrorOnFailure", false)
	if p.err != nil {
		badRequest(w, p.err.Error())
		return
	}
	input, ok := readJSON(w, r)
	if !ok {
		return
	}
	var opts []durable.StartOption
	if id := r.PathValue("id"); id != "" {
		opts = append(opts, durable.WithInstanceID(id))
	}
	id, err := h.client.Start(r.Context(), r.PathValue("name"), input, opts...)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.waitOrCheck(w, r, id, timeout, internalError)
}

// waitOrCheck answers a start: at once with the check-status response, or
// after waiting up to timeout for the instance to end.
func (h *Handler) waitOrCheck(w http.ResponseWriter, r *http.Request, id string, timeout time.Duration, internalError bool) {
	if timeout <= 0 {
		h.CheckStatusResponse(w, r, id)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	st, err := h.client.Wait(ctx, id)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		h.CheckStatusResponse(w, r, id)
	case err != nil:
		h.fail(w, r, err)
	case st.RuntimeStatus == orchestration.StatusCompleted:
		writeJSON(w, http.StatusOK, raw(st.Output))
	case st.RuntimeStatus == orchestration.StatusFailed && internalError:
		writeJSON(w, http.StatusInternalServerError, statusOf(st, true))
	default:
		writeJSON(w, http.StatusOK, statusOf(st, true))
	}
}

// status handles GET /instances/{id}.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	showHistory := p.bool("showHistory", false)
	showHistoryOutput := p.bool("showHistoryOutput", false)
	showInput := p.bool("showInput", true)
	internalError := p.bool("returnInternalServerErrorOnFailure", false)
	if p.err != nil {
		badRequest(w, p.err.Error())
		return
	}
	id := r.PathValue("id")
	st, err := h.client.Status(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body := statusOf(st, showInput)
	if showHistory && st.RuntimeStatus != orchestration.StatusPending {
		events, err := h.client.History(r.Context(), id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		body.HistoryEvents = ShapeHistory(events, showInput, showHistoryOutput)
	}
	code := http.StatusOK
	switch {
	case !st.RuntimeStatus.IsTerminal():
		w.Header().Set("Location", requestURL(r))
		w.Header().Set("Retry-After", "5")
		code = http.StatusAccepted
	case st.RuntimeStatus == orchestration.StatusFailed && internalError:
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, body)
}

// requestURL is the absolute URL of a request.
func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// list handles GET /instances.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	q := durable.Query{
		RuntimeStatus:     p.statuses("runtimeStatus"),
		CreatedFrom:       p.time("createdTimeFrom"),
		CreatedTo:         p.time("createdTimeTo"),
		PageSize:          p.int("top", 100, 1, durable.MaxPageSize),
		FetchInputs:       p.bool("showInput", false),
		Name:              r.URL.Query().Get("name"),
		CustomStatus:      r.URL.Query().Get("customStatus"),
		ContinuationToken: r.Header.Get(continuationHeader),
	}
	q.InstanceIDPrefix = r.URL.Query().Get("instanceIdPrefix")
	if p.err != nil {
		badRequest(w, p.err.Error())
		return
	}
	page, err := h.client.List(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items := make([]*StatusPayload, 0, len(page.Instances))
	for _, st := range page.Instances {
		items = append(items, statusOf(st, q.FetchInputs))
	}
	if page.ContinuationToken != "" {
		w.Header().Set(continuationHeader, page.ContinuationToken)
	}
	writeJSON(w, http.StatusOK, items)
}

// purged is the body of a purge.
type purged struct {
	InstancesDeleted int `json:"instancesDeleted"`
}

// purge handles DELETE /instances/{id}.
func (h *Handler) purge(w http.ResponseWriter, r *http.Request) {
	if err := h.client.Purge(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, purged{InstancesDeleted: 1})
}

// purgeMany handles DELETE /instances.
func (h *Handler) purgeMany(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	f := durable.PurgeFilter{CreatedFrom: p.time("createdTimeFrom"), CreatedTo: p.time("createdTimeTo"), RuntimeStatus: p.statuses("runtimeStatus")}
	switch {
	case p.err != nil:
		badRequest(w, p.err.Error())
		return
	case f.CreatedFrom.IsZero():
		badRequest(w, "the createdTimeFrom parameter is required")
		return
	}
	n, err := h.client.PurgeMany(r.Context(), f)
	switch {
	case err != nil:
		h.fail(w, r, err)
	case n == 0:
		writeError(w, http.StatusNotFound, "NotFound", "no ended instance matches")
	default:
		writeJSON(w, http.StatusOK, purged{InstancesDeleted: n})
	}
}

// operation handles POST /instances/{id}/{operation}.
func (h *Handler) operation(w http.ResponseWriter, r *http.Request) {
	id, reason := r.PathValue("id"), r.URL.Query().Get("reason")
	var err error
	switch r.PathValue("operation") {
	case "terminate":
		err = h.client.Terminate(r.Context(), id, reason)
	case "suspend":
		err = h.client.Suspend(r.Context(), id, reason)
	case "resume":
		err = h.client.Resume(r.Context(), id, reason)
	case "restart":
		h.restart(w, r, id)
		return
	case "rewind":
		writeError(w, http.StatusNotImplemented, "NotImplemented",
			"rewind is not supported: it would remove recorded outcomes from an append-only history; restart the instance instead")
		return
	default:
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no operation %q on instances (terminate, suspend, resume, restart, raiseEvent)", r.PathValue("operation")))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// restart handles POST /instances/{id}/restart.
func (h *Handler) restart(w http.ResponseWriter, r *http.Request, id string) {
	p := params{r: r}
	newID := p.bool("restartWithNewInstanceId", true)
	timeout := p.seconds("timeout", h.cfg.MaxWait)
	p.seconds("pollingInterval", h.cfg.MaxWait)
	if p.err != nil {
		badRequest(w, p.err.Error())
		return
	}
	started, err := h.client.Restart(r.Context(), id, durable.RestartOptions{NewInstanceID: newID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.waitOrCheck(w, r, started, timeout, false)
}

// raiseEvent handles POST /instances/{id}/raiseEvent/{event}.
func (h *Handler) raiseEvent(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		badRequest(w, "the event's body must be JSON, sent with Content-Type: application/json")
		return
	}
	payload, ok := readJSON(w, r)
	if !ok {
		return
	}
	if err := h.client.RaiseEvent(r.Context(), r.PathValue("id"), r.PathValue("event"), payload); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
