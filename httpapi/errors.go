package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/durableactor/durable"
	"github.com/durableactor/durable/entities"
)

// ErrorBody is the shape of every error the API answers; clients decode
// it.
type ErrorBody struct {
	// Code names the kind of error, stable for scripts: BadRequest,
	// Unauthorized, NotFound, MethodNotAllowed, Conflict, Gone,
	// PayloadTooLarge, NotImplemented, Unavailable, Internal.
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, ErrorBody{Code: code, Message: message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// badRequest answers a request that breaks a validation rule.
func badRequest(w http.ResponseWriter, message string) {
	writeError(w, http.StatusBadRequest, "BadRequest", message)
}

// fail answers with the status an error of the client means; one it does
// not know is logged and answered 500 without its text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var maxBytes *http.MaxBytesError
	var badID *entities.InvalidIDError
	switch {
	case errors.Is(err, durable.ErrInstanceNotFound):
		writeError(w, http.StatusNotFound, "NotFound", err.Error())
	case errors.Is(err, durable.ErrInstanceNotRunning):
		writeError(w, http.StatusGone, "Gone", err.Error())
	case errors.Is(err, durable.ErrInstanceExists), errors.Is(err, durable.ErrInstanceRunning):
		writeError(w, http.StatusConflict, "Conflict", err.Error())
	case errors.Is(err, durable.ErrInvalidInstanceID), errors.Is(err, durable.ErrUnknownOrchestrator),
		errors.Is(err, durable.ErrBadQuery), errors.Is(err, durable.ErrUnknownEntity), errors.As(err, &badID):
		badRequest(w, err.Error())
	case errors.Is(err, durable.ErrPayloadTooLarge), errors.As(err, &maxBytes):
		writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", err.Error())
	case errors.Is(err, durable.ErrStopped), errors.Is(err, durable.ErrIndexStopped),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "Unavailable", err.Error())
	default:
		h.log.Error("an HTTP API request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "Internal", "the request failed; the server's log says why")
	}
}
