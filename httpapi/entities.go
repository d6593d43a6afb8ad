package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
)

// entityID reads {name}/{key}; it answers a bad one itself.
func entityID(w http.ResponseWriter, r *http.Request) (entities.ID, bool) {
	id := entities.NewID(r.PathValue("name"), r.PathValue("key"))
	if id.Key == "$" {
		badRequest(w, "entity keys cannot be empty (Durable Functions' $)")
		return id, false
	}
	if err := id.Validate(); err != nil {
		badRequest(w, err.Error())
		return id, false
	}
	return id, true
}

// signal handles POST /entities/{name}/{key}?op=: the body is the input,
// JSON with Content-Type application/json, else a string.
func (h *Handler) signal(w http.ResponseWriter, r *http.Request) {
	id, ok := entityID(w, r)
	if !ok {
		return
	}
	var input any
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		body, ok := readJSON(w, r)
		if !ok {
			return
		}
		input = body
	} else {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if len(body) > 0 {
			input = string(body)
		}
	}
	op := r.URL.Query().Get("op")
	if op == "" {
		badRequest(w, "the op parameter (the operation to signal) is required")
		return
	}
	if err := h.client.SignalEntity(r.Context(), id, op, input); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// deleteEntity handles DELETE /entities/{name}/{key}: a signal of its
// "delete" operation.
func (h *Handler) deleteEntity(w http.ResponseWriter, r *http.Request) {
	id, ok := entityID(w, r)
	if !ok {
		return
	}
	if err := h.client.SignalEntity(r.Context(), id, entities.DeleteOperation, nil); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// entityState handles GET /entities/{name}/{key}.
func (h *Handler) entityState(w http.ResponseWriter, r *http.Request) {
	id, ok := entityID(w, r)
	if !ok {
		return
	}
	var state json.RawMessage
	has, err := h.client.EntityState(r.Context(), id, &state)
	switch {
	case errors.Is(err, durable.ErrUnknownEntity):
		writeError(w, http.StatusNotFound, "NotFound", err.Error())
	case err != nil:
		h.fail(w, r, err)
	case !has:
		writeError(w, http.StatusNotFound, "NotFound", "entity "+id.String()+" has no state")
	default:
		writeJSON(w, http.StatusOK, state)
	}
}

// entityPayload is a list item.
type entityPayload struct {
	EntityID          entityIDPayload `json:"entityId"`
	LastOperationTime string          `json:"lastOperationTime"`
	State             json.RawMessage `json:"state,omitempty"`
	// LockedBy is the orchestration whose critical section holds it.
	LockedBy string `json:"lockedBy,omitempty"`
}

type entityIDPayload struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// listEntities handles GET /entities[/{name}].
func (h *Handler) listEntities(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	q := durable.EntityQuery{
		Name:              r.PathValue("name"),
		FetchState:        p.bool("fetchState", false),
		PageSize:          p.int("top", 100, 1, durable.MaxPageSize),
		LastModifiedFrom:  p.time("lastOperationTimeFrom"),
		LastModifiedTo:    p.time("lastOperationTimeTo"),
		ContinuationToken: r.Header.Get(continuationHeader),
	}
	if p.err != nil {
		badRequest(w, p.err.Error())
		return
	}
	page, err := h.client.ListEntities(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items := make([]entityPayload, 0, len(page.Entities))
	for _, e := range page.Entities {
		items = append(items, entityPayload{
			EntityID:          entityIDPayload{Name: e.ID.Name, Key: e.ID.Key},
			LastOperationTime: e.LastModified.UTC().Format(timeFormat),
			State:             raw(e.State),
			LockedBy:          e.LockedBy,
		})
	}
	if page.Next != "" {
		w.Header().Set(continuationHeader, page.Next)
	}
	writeJSON(w, http.StatusOK, items)
}
