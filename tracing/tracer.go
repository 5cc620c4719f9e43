package tracing

import (
	"context"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config configures recording. The zero Config records nothing; trace
// context is propagated all the same.
type Config struct {
	// Exporter receives the recorded spans (OTLP in production, the SDK's
	// in-memory exporter in tests). Nil records nothing.
	Exporter sdktrace.SpanExporter
	// Sampler decides which traces are recorded. Nil means the SDK's
	// default: parent-based, always on for a new trace.
	Sampler sdktrace.Sampler
	// Resource describes the process (service.name, service.version, …).
	// Nil means the SDK's default.
	Resource *resource.Resource
	// UserID adds the verified user's ID (enduser.id) to request spans.
	// Off by default: it is personal data.
	UserID bool
	// Synchronous exports each span as it ends, for tests; by default
	// spans are exported in batches from a goroutine of the SDK's.
	Synchronous bool
}

// Tracer starts spans. A nil *Tracer, like one without an exporter,
// propagates trace context and records nothing.
type Tracer struct {
	tp      *sdktrace.TracerProvider // nil: nothing is recorded
	tracer  trace.Tracer
	sampler sdktrace.Sampler // asked first, so a trace left out costs what propagation costs
	userID  bool
}

// New returns a Tracer for cfg.
func New(cfg Config) *Tracer {
	t := &Tracer{userID: cfg.UserID}
	if cfg.Exporter == nil {
		return t
	}
	t.sampler = cfg.Sampler
	if t.sampler == nil {
		t.sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(t.sampler), sdktrace.WithIDGenerator(presetIDs{})}
	if cfg.Synchronous {
		opts = append(opts, sdktrace.WithSyncer(cfg.Exporter))
	} else {
		opts = append(opts, sdktrace.WithBatcher(cfg.Exporter))
	}
	if cfg.Resource != nil {
		opts = append(opts, sdktrace.WithResource(cfg.Resource))
	}
	t.tp = sdktrace.NewTracerProvider(opts...)
	t.tracer = t.tp.Tracer("github.com/tollgate/tollgate")
	return t
}

// Recording reports whether spans are exported.
func (t *Tracer) Recording() bool { return t != nil && t.tp != nil }

// UserID reports whether request spans carry the user's ID.
func (t *Tracer) UserID() bool { return t != nil && t.userID }

// Shutdown exports the spans still queued and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if !t.Recording() {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Span is one hop of a trace as tollgate sees it: the identity it
// propagates and, when recording, the SDK's span. A request's Span lives
// in its envelope (edge.Info) and is filled in place by StartServer.
type Span struct {
	t     *Tracer
	sc    SpanContext
	otel  trace.Span // nil when not recorded
	state [1]string  // the tracestate forwarded; [0] is "" when none
	// traceparent holds sc as a header value; header[0] is a string over
	// it, formatted once, so forwarding it allocates nothing.
	traceparent [TraceparentLen]byte
	header      [1]string
}

// StartServer begins the server span of a request in s, continuing the
// client's trace when traceparent is valid (tracestate is kept only then)
// and starting a new one otherwise. The span is named "request" until
// End names it by its route.
func (t *Tracer) StartServer(ctx context.Context, s *Span, traceparent, tracestate string) {
	parent, ok := ParseTraceparent(traceparent)
	s.t = t
	if ok && tracestate != "" && ValidTracestate(tracestate) {
		s.state[0] = tracestate
	}
	s.sc = SpanContext{TraceID: newTraceID(), SpanID: newSpanID()}
	if ok {
		s.sc.TraceID, s.sc.Flags = parent.TraceID, parent.Flags
	}
	if !t.Recording() {
		s.format()
		return
	}
	if ok {
		remote := trace.SpanContextConfig{TraceID: parent.TraceID, SpanID: parent.SpanID, TraceFlags: trace.TraceFlags(parent.Flags), Remote: true}
		if state, err := trace.ParseTraceState(s.state[0]); err == nil {
			remote.TraceState = state
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(remote))
	}
	// The sampler is asked before the SDK: a trace it leaves out (99 of
	// 100 at 1%) is propagated as when nothing is recorded, without the
	// SDK's span and context allocations. One it keeps gets the trace ID
	// it was judged on.
	if t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: s.sc.TraceID, Name: "request",
		Kind: trace.SpanKindServer}).Decision == sdktrace.Drop {
		s.sc.Flags &^= FlagSampled
		s.format()
		return
	}
	_, s.otel = t.tracer.Start(context.WithValue(ctx, presetTraceID{}, s.sc.TraceID), "request", trace.WithSpanKind(trace.SpanKindServer))
	s.adopt()
}

// presetTraceID carries the trace ID a new trace was sampled on to the
// SDK's ID generator.
type presetTraceID struct{}

// presetIDs is the SDK's IDGenerator: random IDs, except the trace ID
// StartServer chose for a new trace.
type presetIDs struct{}

func (presetIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if id, ok := ctx.Value(presetTraceID{}).([16]byte); ok {
		return id, newSpanID()
	}
	return newTraceID(), newSpanID()
}

func (presetIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

// StartClient begins a client span for a call made on behalf of the
// request carrying ctx (a child of its span), or a new trace when ctx
// carries none (a background key refresh).
func (t *Tracer) StartClient(ctx context.Context, name string, attrs ...attribute.KeyValue) *Span {
	if parent := FromContext(ctx); parent != nil && parent.header[0] != "" {
		return parent.StartChild(ctx, name, trace.SpanKindClient, attrs...)
	}
	root := &Span{t: t}
	return root.start(ctx, name, trace.SpanKindClient, attrs, SpanContext{})
}

// StartChild begins a span of kind under s.
func (s *Span) StartChild(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) *Span {
	c := &Span{t: s.t, state: s.state}
	if s.otel == nil { // s is not recorded: neither are its children
		c.sc = SpanContext{TraceID: s.sc.TraceID, SpanID: newSpanID(), Flags: s.sc.Flags}
		c.format()
		return c
	}
	return c.start(trace.ContextWithSpan(ctx, s.otel), name, kind, attrs, s.sc)
}

// start fills c as a child of parent (the zero SpanContext: a new trace).
func (c *Span) start(ctx context.Context, name string, kind trace.SpanKind, attrs []attribute.KeyValue, parent SpanContext) *Span {
	if !c.t.Recording() {
		c.sc = SpanContext{TraceID: parent.TraceID, SpanID: newSpanID(), Flags: parent.Flags}
		if parent.TraceID == [16]byte{} {
			c.sc.TraceID = newTraceID()
		}
		c.format()
		return c
	}
	_, c.otel = c.t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	c.adopt()
	return c
}

// adopt takes the identity of the SDK's span.
func (s *Span) adopt() {
	sc := s.otel.SpanContext()
	s.sc = SpanContext{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags())}
	s.format()
}

func (s *Span) format() {
	s.sc.AppendTraceparent(s.traceparent[:0])
	s.header[0] = unsafe.String(&s.traceparent[0], TraceparentLen)
}

// Context returns the span's identity.
func (s *Span) Context() SpanContext { return s.sc }

// Recorded reports whether the span is exported (recording and sampled):
// only then is its trace ID worth linking to, as an exemplar.
func (s *Span) Recorded() bool { return s != nil && s.otel != nil && s.sc.Sampled() }

// TraceID returns the trace ID in hex. The string shares the span's
// memory; it is valid as long as the span is.
func (s *Span) TraceID() string {
	if s == nil || s.header[0] == "" {
		return ""
	}
	return s.header[0][3:35]
}

// SpanID returns the span ID in hex, like TraceID.
func (s *Span) SpanID() string {
	if s == nil || s.header[0] == "" {
		return ""
	}
	return s.header[0][36:52]
}

// Inject sets the traceparent (and tracestate) of a call this span makes,
// replacing whatever h carried: the callee's parent is this span.
func (s *Span) Inject(h http.Header) {
	if s == nil || s.header[0] == "" {
		return // not started: the call goes out as it came
	}
	h["Traceparent"] = s.header[:]
	if s.state[0] != "" {
		h["Tracestate"] = s.state[:]
	} else {
		delete(h, "Tracestate")
	}
}

// SetName names the span.
func (s *Span) SetName(name string) {
	if s != nil && s.otel != nil {
		s.otel.SetName(name)
	}
}

// SetAttributes adds attributes to a recorded span; it costs nothing
// when the span is not recorded.
func (s *Span) SetAttributes(attrs ...attribute.KeyValue) {
	if s != nil && s.otel != nil {
		s.otel.SetAttributes(attrs...)
	}
}

// End ends the span. status is the HTTP status it answered or received
// (0: none); err, when the call failed, is recorded by its type only —
// an error message may quote what it failed on.
func (s *Span) End(status int, errType string) {
	if s == nil || s.otel == nil {
		return
	}
	if status != 0 {
		s.otel.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case errType != "":
		s.otel.SetAttributes(attribute.String("error.type", errType))
		s.otel.SetStatus(codes.Error, errType)
	case status >= 500:
		s.otel.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		s.otel.SetStatus(codes.Error, "")
	}
	s.otel.End()
}

// RecordChild records a finished child span of s that began at start and
// ends now: an operation timed by its caller (a session store call) that
// needs no span of its own while it runs. It does nothing when s is not
// recorded.
func (s *Span) RecordChild(ctx context.Context, name string, start time.Time, errType string, attrs ...attribute.KeyValue) {
	if !s.Recorded() {
		return
	}
	_, c := s.t.tracer.Start(trace.ContextWithSpan(ctx, s.otel), name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if errType != "" {
		c.SetAttributes(attribute.String("error.type", errType))
		c.SetStatus(codes.Error, errType)
	}
	c.End()
}

// ContextKey is the context key under which a request's *Span is found.
// The envelope answers it from its own context node, so carrying the
// span costs no allocation.
type ContextKey struct{}

// FromContext returns the span of the request carrying ctx, or nil.
func FromContext(ctx context.Context) *Span {
	s, _ := ctx.Value(ContextKey{}).(*Span)
	return s
}

// ContextWith returns ctx carrying s, for calls made under s.
func ContextWith(ctx context.Context, s *Span) context.Context {
	return context.WithValue(ctx, ContextKey{}, s)
}
