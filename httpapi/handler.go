package httpapi

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/durableactor/durable"
)

// DefaultBasePath is where Durable Functions serves its management API.
const DefaultBasePath = "/runtime/webhooks/durabletask"

// Config configures a Handler.
type Config struct {
	// Client is the engine's client; required.
	Client *durable.Client
	// BasePath prefixes every route; DefaultBasePath when empty.
	BasePath string
	// Key, when set, is required on every request (see the package doc).
	Key string
	// MaxBodyBytes bounds a request body; 4 MiB when zero.
	MaxBodyBytes int64
	// MaxWait bounds how long a start or restart with ?timeout= waits for
	// the instance to end; 2 minutes when zero.
	MaxWait time.Duration
	// Logger receives a line per request at Debug and failures at Error;
	// slog.Default() when nil.
	Logger *slog.Logger
}

// Handler serves the management API. It is an http.Handler; mount it at
// the root of a server, or anywhere the paths keep BasePath.
type Handler struct {
	cfg    Config
	client *durable.Client
	log    *slog.Logger
	mux    *http.ServeMux
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Client == nil {
		return nil, errors.New("httpapi: Config.Client is nil")
	}
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	if !strings.HasPrefix(cfg.BasePath, "/") {
		return nil, errors.New("httpapi: Config.BasePath must start with /")
	}
	cfg.BasePath = strings.TrimSuffix(cfg.BasePath, "/")
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, client: cfg.Client, log: cfg.Logger, mux: http.NewServeMux()}
	h.routes()
	return h, nil
}

// route is one path with a handler per method.
type route map[string]http.HandlerFunc

// routes registers every path. Methods are dispatched here rather than by
// the mux so that a wrong one gets a JSON 405, like every other error.
func (h *Handler) routes() {
	b := h.cfg.BasePath
	for pattern, r := range map[string]route{
		"/orchestrators/{name}":              {http.MethodPost: h.start},
		"/orchestrators/{name}/{id}":         {http.MethodPost: h.start},
		"/instances":                         {http.MethodGet: h.list, http.MethodDelete: h.purgeMany},
		"/instances/{$}":                     {http.MethodGet: h.list, http.MethodDelete: h.purgeMany},
		"/instances/{id}":                    {http.MethodGet: h.status, http.MethodDelete: h.purge},
		"/instances/{id}/{operation}":        {http.MethodPost: h.operation},
		"/instances/{id}/raiseEvent/{event}": {http.MethodPost: h.raiseEvent},
		"/entities":                          {http.MethodGet: h.listEntities},
		"/entities/{$}":                      {http.MethodGet: h.listEntities},
		"/entities/{name}":                   {http.MethodGet: h.listEntities},
		"/entities/{name}/{key}":             {http.MethodGet: h.entityState, http.MethodPost: h.signal, http.MethodDelete: h.deleteEntity},
	} {
		h.mux.Handle(b+pattern, r)
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "no route for "+r.URL.Path)
	})
}

func (rt route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f, ok := rt[r.Method]; ok {
		f(w, r)
		return
	}
	allowed := make([]string, 0, len(rt))
	for m := range rt {
		allowed = append(allowed, m)
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not allowed on "+r.URL.Path)
}

// ServeHTTP checks the key, limits the body and serves the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		h.log.Debug("http", "method", r.Method, "path", r.URL.Path, "status", rec.code, "took", time.Since(began))
	}()
	if !h.authorized(r) {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="durable"`)
		writeError(rec, http.StatusUnauthorized, "Unauthorized",
			"a key is required: the x-functions-key header, a bearer token or the code parameter")
		return
	}
	r.Body = http.MaxBytesReader(rec, r.Body, h.cfg.MaxBodyBytes)
	h.mux.ServeHTTP(rec, r)
}

// authorized reports whether r carries the key (or none is needed).
func (h *Handler) authorized(r *http.Request) bool {
	if h.cfg.Key == "" {
		return true
	}
	given := r.Header.Get("x-functions-key")
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && given == "" {
		given = bearer
	}
	if given == "" {
		given = r.URL.Query().Get("code")
	}
	return given != "" && subtle.ConstantTimeCompare([]byte(given), []byte(h.cfg.Key)) == 1
}

// statusRecorder keeps the status code for the request log line.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
