package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves the API on ln until ctx ends, then shuts the server down,
// giving requests in flight 10 seconds. It refuses a listener on anything
// but loopback (or a Unix socket) when the handler has no key: the API
// starts, ends and deletes instances.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	if h.cfg.Key == "" && !loopback(ln.Addr()) {
		ln.Close()
		return fmt.Errorf("httpapi: refusing to serve on %s without a key: set one, or listen on loopback", ln.Addr())
	}
	srv := h.Server()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdown)
	if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// Server returns an http.Server for the handler with timeouts: headers
// within 10 seconds, a body within a minute, and a response within the
// longest wait a start may ask for and a minute more.
func (h *Handler) Server() *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      h.cfg.MaxWait + time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// loopback reports whether addr can be reached from this machine alone.
func loopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}
