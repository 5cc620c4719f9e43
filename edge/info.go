package edge

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/tracing"
)

// StatusClientClosed is logged when the client went away before an answer
// (nginx's 499); nothing is sent.
const StatusClientClosed = 499

// Info is what the access log and the metrics learn about one request. The
// envelope creates it; the handler that serves the request fills in what
// it knows. It belongs to one request and is not safe for concurrent use.
type Info struct {
	requestID [1]string // [0] is the ID; the array is the header value

	// Route names the route or endpoint that served the request, a bounded
	// label; "" when none matched.
	Route string
	// Upstream names the upstream the request was forwarded to.
	Upstream string
	// User is the subject of the request's verified token.
	User string
	// Auth is the authentication decision: ok, anonymous, missing or a
	// refusal reason.
	Auth string
	// Status is logged when the handler wrote nothing on purpose (e.g.
	// StatusClientClosed); a written status takes precedence.
	Status int
	// Aborted says why a response was cut off after its headers:
	// "upstream_reset" or "client_gone"; "" when it was not.
	Aborted string
	// Token is the credential the handler verified (the proxy keeps its
	// *verifier.Token here), for later stages of the same request.
	Token any
	// UpstreamStart is when the upstream round trip began.
	UpstreamStart time.Time
	// Span is the request's server span: the trace it belongs to, which
	// calls made for it continue (tracing.FromContext finds it).
	Span tracing.Span
	// UpstreamSpan is the upstream call's span while spans are recorded;
	// nil otherwise.
	UpstreamSpan *tracing.Span
}

// RequestID is the request's ID, as sent back to the client and
// forwarded upstream.
func (i *Info) RequestID() string { return i.requestID[0] }

// RequestIDHeader returns the ID as a header value. The slice is shared
// by every header that carries the ID; its capacity of one makes an
// append copy it.
func (i *Info) RequestIDHeader() []string { return i.requestID[:] }

type infoKey struct{}

// infoCtx carries an Info in the same allocation as the context node that
// holds it.
type infoCtx struct {
	context.Context
	info Info
}

func (c *infoCtx) Value(key any) any {
	switch key {
	case infoKey{}:
		return &c.info
	case tracing.ContextKey{}:
		return &c.info.Span
	}
	return c.Context.Value(key)
}

// InfoFrom returns the Info of the request carrying ctx, or nil outside
// the envelope.
func InfoFrom(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}

// WithInfo returns ctx with a new, empty Info, for a handler that runs
// without the envelope (tests, benchmarks) and needs one.
func WithInfo(ctx context.Context) (context.Context, *Info) {
	c := &infoCtx{Context: ctx}
	return c, &c.info
}

// RequestID returns the ID of the request carrying ctx, or "".
func RequestID(ctx context.Context) string {
	if info := InfoFrom(ctx); info != nil {
		return info.requestID[0]
	}
	return ""
}

// SetRoute names the route or endpoint of the request carrying ctx.
func SetRoute(ctx context.Context, route string) {
	if info := InfoFrom(ctx); info != nil {
		info.Route = route
	}
}
