// Package api is the HTTP API producers and consumers of conserver talk to
// (conserver's FastAPI server under /api), kept wire-compatible with it:
// same paths, query parameters, status codes, JSON shapes and Redis data
// model, so both can share one Redis during a migration. Where conserver is
// weak it is stricter: authentication is on unless turned off on purpose,
// health checks Redis, bad input is refused before anything is written, and
// a POST writes the body, indexes and queue pushes in one transaction (on a
// single server; a cluster writes the body first, see save).
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/queueops"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// Options configure a Server. OptionsFromEnv fills them from conserver's
// environment variables.
type Options struct {
	// HeaderName carries the API token (CONSERVER_HEADER_NAME).
	HeaderName string
	// Tokens are the accepted API tokens. Empty refuses to build a Server
	// unless InsecureNoAuth is set.
	Tokens         []string
	InsecureNoAuth bool
	// MaxBodyBytes bounds request bodies (VCON_MAX_BODY_BYTES,
	// --max-body-bytes; default DefaultMaxBodyBytes, 10 MiB); larger ones
	// get 413, before more than the limit is read.
	MaxBodyBytes int64
	// SortedSet is the listing index (VCON_SORTED_SET_NAME).
	SortedSet string
	// VconTTL is the TTL of bodies created or re-cached through the API
	// (VCON_REDIS_EXPIRY); IndexTTL of party index sets
	// (VCON_INDEX_EXPIRY); ContextTTL of trace-context lists
	// (VCON_CONTEXT_EXPIRY). Zero means no TTL.
	VconTTL, IndexTTL, ContextTTL time.Duration
	// QueuedRetention is the least TTL of a body the API queues
	// (VCON_QUEUED_RETENTION, ours): a backlog longer than VconTTL must
	// not expire bodies before a worker takes them. Zero keeps VconTTL.
	QueuedRetention time.Duration
	// EgressFormat "0.0.1" answers vCon reads in the 0.0.1 shape
	// (EGRESS_FORMAT_VERSION); anything else answers them as stored.
	EgressFormat string
	// ConfigFile is the conserver configuration (CONSERVER_CONFIG_FILE):
	// its storages serve read-through and DELETE, its ingress_auth the
	// external ingress. It is re-read when it changes. Empty: none.
	ConfigFile string
	// AllowConfigWrite lets POST /api/config overwrite ConfigFile.
	AllowConfigWrite bool
	// HealthTimeout bounds the Redis PING of /api/health.
	HealthTimeout time.Duration
	// DedupWindow is how long after queuing a uuid on a list a POST of the
	// same uuid does not queue it there again while it still waits (see
	// save). Default DefaultDedupWindow.
	DedupWindow time.Duration
	// WriteCheckTimeout bounds the read-back of a write whose reply was
	// lost. Default DefaultWriteCheckTimeout.
	WriteCheckTimeout time.Duration
	// ShowConfigSecrets answers GET /api/config with credentials as
	// written, as conserver does (VCON_CONFIG_SHOW_SECRETS,
	// --config-show-secrets); by default they are masked.
	ShowConfigSecrets bool
	// CORSAllowedOrigins are the origins browsers may call the API from
	// (--cors-allowed-origins): "*" for any, or exact origins such as
	// https://app.example.com. nil means DefaultCORSAllowedOrigins,
	// conserver's "*"; an empty list allows none.
	CORSAllowedOrigins []string
	// SupportedExtensions are the extensions a submitted vCon's critical
	// list may name (VCON_SUPPORTED_EXTENSIONS, --supported-extensions);
	// one naming another is answered 422 and not stored, because the
	// workers would only dead-letter it. nil means
	// vcon.DefaultSupportedExtensions.
	SupportedExtensions []string
	// Body configures the body codec (VCON_BODY_FORMAT).
	Body vconstore.Options
	// Registry receives the HTTP metrics; nil makes a private one. Either
	// way /metrics serves it.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Defaults, from conserver's settings.
const (
	DefaultMaxBodyBytes = 10 << 20
	DefaultIndexTTL     = 86400 * time.Second
	DefaultHealthWait   = 2 * time.Second
	// DefaultDedupWindow: producers retry within seconds to minutes.
	DefaultDedupWindow       = 10 * time.Minute
	DefaultWriteCheckTimeout = 5 * time.Second
)

// OptionsFromEnv reads conserver's environment: CONSERVER_HEADER_NAME,
// CONSERVER_API_TOKEN, CONSERVER_API_TOKEN_FILE, VCON_SORTED_SET_NAME,
// VCON_REDIS_EXPIRY, VCON_INDEX_EXPIRY, VCON_CONTEXT_EXPIRY,
// EGRESS_FORMAT_VERSION, CONSERVER_CONFIG_FILE and VCON_BODY_FORMAT; and
// ours: VCON_MAX_BODY_BYTES (the worker reads the same name for its own
// limit) and VCON_CONFIG_SHOW_SECRETS.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	o := Options{
		HeaderName:   getenv("CONSERVER_HEADER_NAME"),
		SortedSet:    getenv("VCON_SORTED_SET_NAME"),
		EgressFormat: strings.TrimSpace(getenv("EGRESS_FORMAT_VERSION")),
		ConfigFile:   getenv("CONSERVER_CONFIG_FILE"),
	}
	var errs []error
	tokens, err := LoadTokens(getenv("CONSERVER_API_TOKEN"), getenv("CONSERVER_API_TOKEN_FILE"))
	errs = append(errs, err)
	o.Tokens = tokens
	seconds := func(name string, def time.Duration) time.Duration {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, errors.New(name+"="+strconv.Quote(v)+": want a whole number of seconds, 0 or more"))
			return def
		}
		return time.Duration(n) * time.Second
	}
	if v := strings.TrimSpace(getenv("VCON_MAX_BODY_BYTES")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, errors.New("VCON_MAX_BODY_BYTES="+strconv.Quote(v)+": want a whole number of bytes, 1 or more"))
		}
		o.MaxBodyBytes = n
	}
	if v := strings.TrimSpace(getenv("VCON_CONFIG_SHOW_SECRETS")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, errors.New("VCON_CONFIG_SHOW_SECRETS="+strconv.Quote(v)+": want true or false"))
		}
		o.ShowConfigSecrets = b
	}
	o.VconTTL = seconds("VCON_REDIS_EXPIRY", apiwire.DefaultVconTTL)
	o.IndexTTL = seconds("VCON_INDEX_EXPIRY", DefaultIndexTTL)
	o.ContextTTL = seconds("VCON_CONTEXT_EXPIRY", queue.DefaultContextTTL)
	o.QueuedRetention = seconds("VCON_QUEUED_RETENTION", apiwire.DefaultQueuedRetention)
	if v := strings.TrimSpace(getenv("VCON_SUPPORTED_EXTENSIONS")); v != "" {
		exts, err := vcon.ParseExtensions(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("VCON_SUPPORTED_EXTENSIONS: %w", err))
		}
		o.SupportedExtensions = exts
	}
	o.Body, err = vconstore.OptionsFromEnv()
	errs = append(errs, err)
	return o, errors.Join(errs...)
}

// Server serves the API.
type Server struct {
	opts    Options
	rdb     redis.UniversalClient
	store   *vconstore.Store
	tokens  tokenSet // nil: authentication off
	config  *configSource
	metrics *httpMetrics
	tracer  trace.Tracer
	cors    corsPolicy
	mux     *http.ServeMux
	log     *slog.Logger
	ping    pinger
}

// New builds a Server on rdb. It fails when no token is configured and
// InsecureNoAuth is not set, and when the config file cannot be read.
func New(rdb redis.UniversalClient, opts Options) (*Server, error) {
	if opts.HeaderName == "" {
		opts.HeaderName = apiwire.DefaultHeaderName
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.SortedSet == "" {
		opts.SortedSet = apiwire.DefaultSortedSet
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = DefaultHealthWait
	}
	if opts.DedupWindow <= 0 {
		opts.DedupWindow = DefaultDedupWindow
	}
	if opts.WriteCheckTimeout <= 0 {
		opts.WriteCheckTimeout = DefaultWriteCheckTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.CORSAllowedOrigins == nil {
		opts.CORSAllowedOrigins = DefaultCORSAllowedOrigins
	}
	if opts.SupportedExtensions == nil {
		opts.SupportedExtensions = vcon.DefaultSupportedExtensions
	}
	cors, err := newCORSPolicy(opts.CORSAllowedOrigins)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:   opts,
		rdb:    rdb,
		store:  vconstore.New(rdb, opts.Body),
		tracer: otel.Tracer("github.com/vcon-operator/vcon-operator/internal/api"),
		cors:   cors,
		log:    opts.Logger,
	}
	switch tokens := newTokenSet(opts.Tokens); {
	case len(tokens) > 0:
		s.tokens = tokens
	case !opts.InsecureNoAuth:
		return nil, ErrNoToken
	}
	if s.config, err = newConfigSource(opts.ConfigFile, rdb, opts.Logger); err != nil {
		return nil, err
	}
	if s.metrics, err = newHTTPMetrics(opts.Registry); err != nil {
		return nil, err
	}
	s.mux = s.routes()
	return s, nil
}

// Close releases the storages' connections.
func (s *Server) Close() error { return s.config.close() }

// RootPath is conserver's API_ROOT_PATH default.
const RootPath = "/api"

// routes serves conserver's routes at both /api/X and /X. conserver's app
// is FastAPI(root_path=API_ROOT_PATH), "/api" by default, with its routers
// mounted without a prefix: Starlette strips the root path from a request
// path that starts with it and matches the rest, so conserver answers
// /api/vcon and /vcon alike, and its followers call {url}/vcon/egress and
// {url}/vcon/{uuid} with whichever base their configuration names.
// /metrics is ours and has no /api twin.
func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	auth := s.requireToken
	handle := func(pattern string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		m.HandleFunc(method+" "+RootPath+path, h)
		m.HandleFunc(method+" "+path, h)
	}
	// Open: health checks, monitoring and back-pressure.
	handle("GET /health", s.health)
	handle("GET /version", s.version)
	handle("GET /stats/queue", s.queueDepth)
	m.Handle("GET /metrics", s.metrics.handler(s.opts.Registry))
	// External ingress has its own per-list keys.
	handle("POST /vcon/external-ingress", s.externalIngress)

	handle("POST /vcon", auth(s.postVcon))
	handle("GET /vcon", auth(s.listVcons))
	handle("GET /vcon/{uuid}", auth(s.getVcon))
	handle("DELETE /vcon/{uuid}", auth(s.deleteVcon))
	handle("GET /vcons", auth(s.getVcons))
	handle("GET /vcons/search", auth(s.searchVcons))
	handle("POST /vcons/erase", auth(s.eraseParty))
	handle("POST /vcon/ingress", auth(s.ingress))
	handle("GET /vcon/egress", auth(s.egress))
	handle("GET /vcon/count", auth(s.count))
	handle("GET /dlq", auth(s.dlq))
	handle("POST /dlq/reprocess", auth(s.reprocess))
	handle("GET /dlq/storage", auth(s.storageDLQ))
	handle("POST /dlq/storage/reprocess", auth(s.storageReprocess))
	handle("GET /config", auth(s.getConfig))
	handle("POST /config", auth(s.postConfig))
	handle("GET /index_vcons", auth(s.indexVcons))
	// Ours, for kubectl vcon (queueops).
	handle("GET "+queueops.PathQueues, auth(s.opsQueues))
	handle("GET "+queueops.PathVcon+"{uuid}", auth(s.opsVcon))
	handle("POST "+queueops.PathReplay, auth(s.opsReplay))
	handle("POST "+queueops.PathPurge, auth(s.opsPurge))
	return m
}
