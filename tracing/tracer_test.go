package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func recording(t *testing.T, sampler sdktrace.Sampler) (*Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tr := New(Config{Exporter: exp, Synchronous: true, Sampler: sampler})
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr, exp
}

// TestPropagationWithoutExporter: nothing is recorded, but the trace is
// continued with a span ID of tollgate's own, or started when the client
// sent none (or an invalid one), and tracestate follows only a valid
// traceparent.
func TestPropagationWithoutExporter(t *testing.T) {
	for _, tr := range []*Tracer{nil, New(Config{})} {
		var s Span
		tr.StartServer(t.Context(), &s, clientTraceparent, "rojo=1")
		client, _ := ParseTraceparent(clientTraceparent)
		if s.Context().TraceID != client.TraceID || s.Context().SpanID == client.SpanID || !s.Context().Sampled() {
			t.Errorf("continued: %+v", s.Context())
		}
		h := http.Header{"Traceparent": {"forged"}, "Tracestate": {"x=y"}}
		s.Inject(h)
		if got, _ := ParseTraceparent(h.Get("Traceparent")); got != s.Context() || h.Get("Tracestate") != "rojo=1" {
			t.Errorf("injected %v", h)
		}
		if s.TraceID() != "4bf92f3577b34da6a3ce929d0e0e4736" || len(s.SpanID()) != 16 || s.Recorded() {
			t.Errorf("ids %q %q recorded %v", s.TraceID(), s.SpanID(), s.Recorded())
		}

		var fresh Span
		tr.StartServer(t.Context(), &fresh, "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "rojo=1")
		h = http.Header{"Tracestate": {"rojo=1"}}
		fresh.Inject(h)
		if !fresh.Context().Valid() || fresh.Context().TraceID == client.TraceID || fresh.Context().Sampled() || h["Tracestate"] != nil {
			t.Errorf("an invalid traceparent: %+v %v", fresh.Context(), h)
		}
		child := tr.StartClient(ContextWith(t.Context(), &s), "jwks")
		if child.Context().TraceID != s.Context().TraceID || child.Context().SpanID == s.Context().SpanID {
			t.Errorf("child %+v of %+v", child.Context(), s.Context())
		}
	}
}

// TestPropagationAllocatesNothing: continuing a trace and forwarding it
// costs no allocation when nothing is recorded.
func TestPropagationAllocatesNothing(t *testing.T) {
	tr := New(Config{})
	h := http.Header{"Traceparent": nil}
	s := new(Span)
	if n := testing.AllocsPerRun(100, func() {
		*s = Span{}
		tr.StartServer(context.Background(), s, clientTraceparent, "")
		s.Inject(h)
		_ = s.TraceID()
	}); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// TestRecordedSpans: with an exporter, the server span continues the
// client's trace, a client span is its child, and the upstream is told
// the client span as its parent.
func TestRecordedSpans(t *testing.T) {
	tr, exp := recording(t, nil)
	var s Span
	tr.StartServer(t.Context(), &s, clientTraceparent, "rojo=1")
	upstream := s.StartChild(t.Context(), "upstream api", trace.SpanKindClient)
	h := http.Header{}
	upstream.Inject(h)
	if got, _ := ParseTraceparent(h.Get("Traceparent")); got.SpanID != upstream.Context().SpanID || got.TraceID != s.Context().TraceID {
		t.Errorf("the upstream's parent %v, want the client span %+v", h, upstream.Context())
	}
	upstream.End(502, "")
	s.SetName("GET api")
	s.SetAttributes(attribute.String("tollgate.auth", "ok"))
	s.End(200, "")
	if !s.Recorded() {
		t.Error("a sampled recorded span says it is not")
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	up, server := spans[0], spans[1]
	client, _ := ParseTraceparent(clientTraceparent)
	switch {
	case server.Name != "GET api" || server.SpanKind != trace.SpanKindServer:
		t.Errorf("server span %q %v", server.Name, server.SpanKind)
	case server.Parent.SpanID() != client.SpanID || !server.Parent.IsRemote() || server.SpanContext.TraceID() != client.TraceID:
		t.Errorf("server span's parent %v", server.Parent)
	case server.SpanContext.TraceState().Get("rojo") != "1":
		t.Errorf("tracestate lost: %v", server.SpanContext.TraceState())
	case up.Parent.SpanID() != server.SpanContext.SpanID() || up.SpanKind != trace.SpanKindClient:
		t.Errorf("upstream span's parent %v, server %v", up.Parent.SpanID(), server.SpanContext.SpanID())
	case up.Status.Code != codes.Error || server.Status.Code == codes.Error:
		t.Errorf("statuses: upstream %v, server %v", up.Status, server.Status)
	}
	if !hasAttr(server.Attributes, "tollgate.auth", "ok") || !hasAttr(server.Attributes, "http.response.status_code", "200") {
		t.Errorf("server attributes %v", server.Attributes)
	}
}

// TestSampling: a trace the sampler leaves out is propagated, not
// recorded, and says so in its flags.
func TestSampling(t *testing.T) {
	tr, exp := recording(t, sdktrace.NeverSample())
	var s Span
	tr.StartServer(t.Context(), &s, "", "")
	h := http.Header{}
	s.Inject(h)
	s.End(200, "")
	if got, ok := ParseTraceparent(h.Get("Traceparent")); !ok || got.Sampled() || s.Recorded() || len(exp.GetSpans()) != 0 {
		t.Errorf("unsampled: %v recorded %v, %d spans", h, s.Recorded(), len(exp.GetSpans()))
	}
}

// TestTransport: a backend call made for a request carries the request's
// trace with the client span as parent; the span names no query string.
func TestTransport(t *testing.T) {
	tr, exp := recording(t, nil)
	var seen http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	defer backend.Close()
	var s Span
	tr.StartServer(t.Context(), &s, clientTraceparent, "")
	req, _ := http.NewRequestWithContext(ContextWith(t.Context(), &s), http.MethodGet, backend.URL+"/keys?secret=hunter2", nil)
	resp, err := (&http.Client{Transport: &Transport{Tracer: tr, Name: "jwks"}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("Traceparent") != "" {
		t.Error("the caller's request was modified")
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	got, _ := ParseTraceparent(seen.Get("Traceparent"))
	if got.TraceID != s.Context().TraceID || got.SpanID != spans[0].SpanContext.SpanID() || spans[0].Parent.SpanID() != s.Context().SpanID {
		t.Errorf("backend saw %v; span %v parent %v", seen.Get("Traceparent"), spans[0].SpanContext.SpanID(), spans[0].Parent.SpanID())
	}
	for _, a := range spans[0].Attributes {
		if strings.Contains(a.Value.Emit(), "hunter2") {
			t.Errorf("the query string in %v", a)
		}
	}
	// With no request behind it (a background refresh), a trace of its own.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, backend.URL, nil)
	resp, err = (&http.Client{Transport: &Transport{Tracer: tr, Name: "jwks"}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if root := exp.GetSpans()[1]; root.Parent.IsValid() || root.SpanContext.TraceID() == s.Context().TraceID {
		t.Errorf("background call: parent %v", root.Parent)
	}
}

func hasAttr(attrs []attribute.KeyValue, key, value string) bool {
	for _, a := range attrs {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}

// TestRecordChild: an operation timed by its caller becomes a child span
// with its start, and a failure is marked; nothing when not recorded.
func TestRecordChild(t *testing.T) {
	tr, exp := recording(t, nil)
	var s Span
	tr.StartServer(t.Context(), &s, "", "")
	start := time.Now().Add(-time.Millisecond)
	s.RecordChild(t.Context(), "session rotate", start, "unavailable", attribute.String("db.operation.name", "rotate"))
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	c := spans[0]
	if c.Name != "session rotate" || !c.StartTime.Equal(start) || c.Parent.SpanID() != s.Context().SpanID || c.Status.Code != codes.Error {
		t.Errorf("child %q start %v parent %v status %v", c.Name, c.StartTime, c.Parent.SpanID(), c.Status)
	}
	var off Span
	New(Config{}).StartServer(t.Context(), &off, "", "")
	off.RecordChild(t.Context(), "session rotate", start, "")
	if len(exp.GetSpans()) != 1 {
		t.Error("a span recorded without an exporter")
	}
}

// BenchmarkPropagation is what tracing adds to a proxied request when
// nothing is recorded: continue (or start) the trace, forward it, and
// name it in the access log.
func BenchmarkPropagation(b *testing.B) {
	tr := New(Config{})
	for _, c := range []struct{ name, traceparent string }{{"continued", clientTraceparent}, {"new", ""}} {
		b.Run(c.name, func(b *testing.B) {
			h := http.Header{}
			s := new(Span)
			b.ReportAllocs()
			for b.Loop() {
				*s = Span{}
				tr.StartServer(context.Background(), s, c.traceparent, "")
				s.Inject(h)
				_, _ = s.TraceID(), s.SpanID()
			}
		})
	}
}

// TestUnsampledChildren: the calls of a request the sampler left out are
// not recorded either (no stray root spans), and carry its trace.
func TestUnsampledChildren(t *testing.T) {
	tr, exp := recording(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	var s Span
	tr.StartServer(t.Context(), &s, "", "")
	c := tr.StartClient(ContextWith(t.Context(), &s), "jwks")
	c.End(200, "")
	s.RecordChild(t.Context(), "session get", time.Now(), "")
	s.End(200, "")
	if n := len(exp.GetSpans()); n != 0 || c.Context().TraceID != s.Context().TraceID || c.Context().Sampled() {
		t.Errorf("%d spans; child %+v of %+v", n, c.Context(), s.Context())
	}
	// A client's sampled decision is followed by the parent-based sampler.
	var sampled Span
	tr.StartServer(t.Context(), &sampled, clientTraceparent, "")
	sampled.End(200, "")
	if spans := exp.GetSpans(); len(spans) != 1 || spans[0].SpanContext.TraceID() != trace.TraceID(sampled.Context().TraceID) {
		t.Errorf("the client's sampled trace: %d spans", len(spans))
	}
}

// TestRatioSamplingKeepsTheTraceID: a new trace sampled by ratio is
// recorded under the trace ID it was judged on, the one the upstream
// sees.
func TestRatioSamplingKeepsTheTraceID(t *testing.T) {
	tr, exp := recording(t, sdktrace.TraceIDRatioBased(0.5))
	kept := 0
	for range 200 {
		var s Span
		tr.StartServer(t.Context(), &s, "", "")
		h := http.Header{}
		s.Inject(h)
		sent, _ := ParseTraceparent(h.Get("Traceparent"))
		s.End(200, "")
		if s.Recorded() {
			kept++
			last := exp.GetSpans()[len(exp.GetSpans())-1]
			if last.SpanContext.TraceID() != trace.TraceID(sent.TraceID) || !sent.Sampled() {
				t.Fatalf("recorded %v, sent %+v", last.SpanContext.TraceID(), sent)
			}
		} else if sent.Sampled() {
			t.Fatalf("an unrecorded trace sent as sampled: %+v", sent)
		}
	}
	if kept != len(exp.GetSpans()) || kept < 50 || kept > 150 {
		t.Errorf("kept %d of 200 at 0.5, %d spans", kept, len(exp.GetSpans()))
	}
}
