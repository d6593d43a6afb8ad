package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/durableactor/durable/httpapi"
)

// api is a client of the HTTP management API.
type api struct {
	base string // the server's URL and the API's base path
	key  string
	http *http.Client
}

// apiError is an error answer of the API: its HTTP status and body.
type apiError struct {
	Status int
	httpapi.ErrorBody
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// exitCode is the exit code an answer of the API means.
func (e *apiError) exitCode() int {
	switch e.Status {
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusConflict, http.StatusGone:
		return exitState
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitUnauthorized
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return exitUnavailable
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusNotImplemented:
		return exitInvalid
	}
	return exitFailed
}

// request is one call of the API.
type request struct {
	method, path string
	query        url.Values
	body         []byte
	// contentType of the body; JSON when empty.
	contentType string
	header      http.Header
}

// response is an answer of the API that is not an error.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; an error answer is an *exitError with its code.
func (a *api) do(ctx context.Context, r request) (*response, error) {
	u := a.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if a.key != "" {
		req.Header.Set("x-functions-key", a.key)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, &exitError{exitUnavailable, fmt.Errorf("cannot reach %s: %w", a.base, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &exitError{exitUnavailable, fmt.Errorf("reading the answer of %s: %w", a.base, err)}
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode}
		json.Unmarshal(data, e) // a body that is not the API's error shape leaves the status alone
		return nil, &exitError{e.exitCode(), e}
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// newAPI returns a client of the server at serverURL.
func newAPI(serverURL, basePath, key string) (*api, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: --url %q is not an http(s) URL", errUsage, serverURL)
	}
	return &api{
		base: strings.TrimSuffix(serverURL, "/") + "/" + strings.Trim(basePath, "/"),
		key:  key,
		http: &http.Client{Timeout: 5 * time.Minute},
	}, nil
}

// ended reports whether a runtime status is one an instance ends in.
func ended(status string) bool {
	switch status {
	case "Completed", "Failed", "Terminated", "Canceled":
		return true
	}
	return false
}

func decodeJSON(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("the server answered something that is not the API's JSON: %w", err)
	}
	return nil
}

var errNotJSON = errors.New("not JSON")

// jsonArg checks that a command-line payload is JSON.
func jsonArg(what, s string) ([]byte, error) {
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("%w: the %s %q is %w (a string needs quotes: '\"text\"')", errUsage, what, s, errNotJSON)
	}
	return []byte(s), nil
}
