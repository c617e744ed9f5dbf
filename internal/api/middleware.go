package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/version"
)

// Response headers conserver sets on every answer.
const (
	HeaderVersion = "X-Vcon-Server-Version"
	HeaderCommit  = "X-Vcon-Server-Commit"
)

// unmatchedRoute labels requests no route matched, so that scanning a
// server with random paths cannot create new series.
const unmatchedRoute = "unmatched"

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_api_requests_total",
			Help: "HTTP requests answered by the vCon API, by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcon_api_request_duration_seconds",
			Help:    "Time to answer HTTP requests of the vCon API, by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Process and Go runtime metrics, unless the caller's registry has them.
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, nil
}

func (m *httpMetrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// knownMethods bounds the method label; anything else is "other".
var knownMethods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPost: http.MethodPost,
	http.MethodPut: http.MethodPut, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
	http.MethodOptions: http.MethodOptions,
}

// Handler is the whole API: version headers on every answer, a span and
// request metrics per request labelled by route template, CORS (preflights
// answered before routing and authentication, as conserver's middleware
// does), JSON answers for unknown paths and methods, and the routes.
func (s *Server) Handler() http.Handler {
	propagator := otel.GetTextMapPropagator
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set(HeaderVersion, version.Version)
		h.Set(HeaderCommit, version.GitCommit)

		preflight := isPreflight(r)
		lookup := r
		if preflight {
			// Label a preflight with the route it asks about.
			lookup = r.Clone(r.Context())
			lookup.Method = r.Header.Get("Access-Control-Request-Method")
		}
		_, pattern := s.mux.Handler(lookup)
		route := unmatchedRoute
		if pattern != "" {
			// The pattern is "METHOD /path/{var}"; the method has its own label.
			_, route, _ = strings.Cut(pattern, " ")
		}
		method, ok := knownMethods[r.Method]
		if !ok {
			method = "other"
		}

		ctx := propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", method),
				attribute.String("http.route", route),
			))
		sw := &statusWriter{ResponseWriter: w}
		switch {
		case preflight:
			s.cors.preflight(sw, r)
		case pattern == "":
			s.cors.simple(h, r)
			s.notFound(sw, r)
		default:
			s.cors.simple(h, r)
			s.mux.ServeHTTP(sw, r.WithContext(ctx))
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
		span.End()

		s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
	})
}

// notFound answers what the mux would, in FastAPI's JSON shape: 405 with
// Allow for a known path, else 404. A path with "..", "//" and the like is
// not redirected to its cleaned form (which the mux would do): the API has
// no such paths, and a client sending one has made a mistake.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.code {
	case http.StatusMethodNotAllowed:
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	default:
		writeDetail(w, http.StatusNotFound, "Not Found")
	}
}

// headerRecorder captures the mux's own answer for unmatched requests.
type headerRecorder struct {
	header http.Header
	code   int
}

func (r *headerRecorder) Header() http.Header { return r.header }
func (r *headerRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
