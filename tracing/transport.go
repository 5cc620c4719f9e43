package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
)

// Transport records a client span around each request it sends and sends
// the trace context with it: key fetches and exchange backends see the
// request that caused them (or a trace of their own when nothing did).
type Transport struct {
	// Base sends the requests. Nil means http.DefaultTransport.
	Base http.RoundTripper
	// Tracer starts the spans. Nil propagates a new trace per request.
	Tracer *Tracer
	// Name names the spans ("jwks", "exchange google", …): a bounded
	// name, never a URL.
	Name string
}

// RoundTrip implements http.RoundTripper. The request is not modified: the
// trace headers go on a copy.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	s := t.Tracer.StartClient(req.Context(), t.Name,
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", req.URL.Hostname()),
		attribute.String("url.path", req.URL.Path)) // never the query: it may carry a secret
	out := *req
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	s.Inject(out.Header)
	resp, err := base.RoundTrip(&out)
	if err != nil {
		s.End(0, errorType(err))
		return nil, err
	}
	s.End(resp.StatusCode, "")
	return resp, nil
}

// errorType names a transport failure without its message (which may
// quote a URL).
func errorType(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport"
}
