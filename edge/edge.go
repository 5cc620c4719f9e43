package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/tracing"
)

const requestIDHeader = "X-Request-Id"

// Observer receives every request the envelope answers, for metrics.
type Observer interface {
	RequestStarted(ctx context.Context)
	// RequestDone reports the route name ("" when none matched), the
	// method, the status and the time taken.
	RequestDone(ctx context.Context, route, method string, code int, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) RequestStarted(context.Context)                                  {}
func (nopObserver) RequestDone(context.Context, string, string, int, time.Duration) {}

// Edge wraps a handler with request IDs, panic recovery, status capture
// and one structured access-log line per request.
type Edge struct {
	next   http.Handler
	logger *zap.Logger
	obs    Observer
	prefix string        // random per process, so IDs are unique across replicas
	seq    atomic.Uint64 // request counter

	bodyIdle    time.Duration // 0: bodies are not guarded
	bodyMinRate int64

	tracer *tracing.Tracer // nil: trace context is propagated, nothing recorded
}

// Option configures optional Edge behaviour.
type Option func(*Edge)

// WithBodyTimeouts refuses request bodies that trickle in: a read that
// brings nothing for idle, or an average below minRate bytes/s once idle
// has passed (0: no rate check), fails with ErrBodyTooSlow. Zero idle
// turns it off.
func WithBodyTimeouts(idle time.Duration, minRate int64) Option {
	return func(e *Edge) { e.bodyIdle, e.bodyMinRate = idle, minRate }
}

// WithTracer records a server span per request with t. Without it the
// envelope still continues (or starts) each request's trace, for the
// upstream to see.
func WithTracer(t *tracing.Tracer) Option {
	return func(e *Edge) { e.tracer = t }
}

var _ http.Handler = (*Edge)(nil)

// New wraps next. An inbound X-Request-Id is kept if it is sane (1–128 of
// [A-Za-z0-9._:-]); otherwise one is generated. The ID is returned to the
// client and reachable by handlers through InfoFrom and RequestID. A nil
// logger logs nothing; a nil obs observes nothing.
func New(next http.Handler, logger *zap.Logger, obs Observer, opts ...Option) *Edge {
	if logger == nil {
		logger = zap.NewNop()
	}
	if obs == nil {
		obs = nopObserver{}
	}
	b := make([]byte, 6)
	rand.Read(b)
	e := &Edge{next: next, logger: logger.Named("access"), obs: obs, prefix: hex.EncodeToString(b) + "-"}
	for _, o := range opts {
		o(e)
	}
	return e
}

// exchange is everything Edge keeps per request, in one allocation: the
// context node carrying the Info, the status-recording writer and the body
// guard.
type exchange struct {
	ctx  infoCtx
	sw   statusWriter
	body bodyGuard
}

// ServeHTTP serves one request inside the envelope.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{ctx: infoCtx{Context: r.Context()}, sw: statusWriter{ResponseWriter: w}}
	info, sw := &x.ctx.info, &x.sw
	if ids := r.Header[requestIDHeader]; len(ids) > 0 && saneRequestID(ids[0]) {
		info.requestID[0] = ids[0]
	} else {
		info.requestID[0] = e.newID()
	}
	w.Header()[requestIDHeader] = info.requestID[:]
	e.tracer.StartServer(r.Context(), &info.Span, headerValue(r.Header, "Traceparent"), headerValue(r.Header, "Tracestate"))
	r = r.WithContext(&x.ctx)
	e.guardBody(w, r, &x.body)
	e.obs.RequestStarted(r.Context())
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { // the connection is already dead; let net/http close it quietly
				if info.Aborted == "" {
					info.Aborted = "client_gone" // the handler could not write: nobody is listening
				}
				e.log(r, sw, info, start)
				panic(v)
			}
			e.logger.Error("panic serving request", zap.String("request_id", info.requestID[0]), zap.Any("panic", v), zap.StackSkip("stack", 1))
			if sw.status == 0 {
				writeInternalError(sw)
			}
		}
		e.log(r, sw, info, start)
	}()
	e.next.ServeHTTP(sw, r)
}

// newID returns a request ID unique across replicas: the process's random
// prefix and a counter.
func (e *Edge) newID() string {
	var buf [32]byte
	b := append(buf[:0], e.prefix...)
	return string(strconv.AppendUint(b, e.seq.Add(1), 36))
}

func (e *Edge) log(r *http.Request, sw *statusWriter, info *Info, start time.Time) {
	status := sw.status
	if status == 0 {
		status = info.Status
	}
	if status == 0 {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	// A response cut off after its headers is counted as what it became.
	switch info.Aborted {
	case "upstream_reset":
		status = http.StatusBadGateway
	case "client_gone":
		status = StatusClientClosed
	}
	e.obs.RequestDone(r.Context(), info.Route, r.Method, status, time.Since(start))
	e.endSpan(r, info, status)
	ce := e.logger.Check(zap.InfoLevel, "request")
	if ce == nil {
		return
	}
	ce.Write(
		zap.String("request_id", info.requestID[0]),
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path), // never the query string: it may carry secrets
		zap.Int("status", status),
		zap.Int64("bytes", sw.bytes),
		zap.Duration("duration", time.Since(start)),
		zap.String("remote", r.RemoteAddr),
		zap.String("route", info.Route),
		zap.String("upstream", info.Upstream),
		zap.String("user", info.User),
		zap.String("auth", info.Auth),
		zap.String("aborted", info.Aborted),
		zap.String("trace_id", info.Span.TraceID()),
		zap.String("span_id", info.Span.SpanID()),
	)
}

// endSpan names the server span by its route and ends it with what the
// access log says — never the query string, a header or a token.
func (e *Edge) endSpan(r *http.Request, info *Info, status int) {
	s := &info.Span
	if !s.Recorded() {
		s.End(status, "") // returns at once when not recording
		return
	}
	name := r.Method
	if info.Route != "" {
		name += " " + info.Route
	}
	s.SetName(name)
	s.SetAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("http.route", info.Route),
		attribute.String("url.path", r.URL.Path),
		attribute.String("tollgate.request_id", info.requestID[0]),
		attribute.String("tollgate.auth", info.Auth),
	)
	if info.Upstream != "" {
		s.SetAttributes(attribute.String("tollgate.upstream", info.Upstream))
	}
	if info.Aborted != "" {
		s.SetAttributes(attribute.String("tollgate.aborted", info.Aborted))
	}
	if info.User != "" && e.tracer.UserID() {
		s.SetAttributes(attribute.String("enduser.id", info.User))
	}
	s.End(status, "")
}

// headerValue is the first value of a canonical header name, without
// the allocation of Header.Get's canonicalisation.
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// LogFields returns the fields that tie a log line to the request
// carrying ctx (its request ID), so error logs join the access log.
func LogFields(ctx context.Context) []zap.Field {
	info := InfoFrom(ctx)
	if info == nil || info.requestID[0] == "" {
		return nil
	}
	fields := []zap.Field{zap.String("request_id", info.requestID[0])}
	if id := info.Span.TraceID(); id != "" {
		fields = append(fields, zap.String("trace_id", id), zap.String("span_id", info.Span.SpanID()))
	}
	return fields
}

func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// internalError is the body of every 500: nothing about the cause.
var internalError = []byte(`{"error":"server_error","error_description":"internal error"}` + "\n")

// writeInternalError answers 500 with a generic JSON body.
func writeInternalError(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(internalError))}
	w.WriteHeader(http.StatusInternalServerError)
	w.Write(internalError)
}
