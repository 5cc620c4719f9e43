// Package tracing carries W3C Trace Context (traceparent, tracestate)
// through the gateway and, when an exporter is configured, records
// OpenTelemetry spans for every hop: the request, the upstream call, key
// fetches, exchange backends and the session store.
//
// Propagation is always on and costs no allocation on the proxied path:
// a request's Span lives inside the request's envelope (edge.Info), and
// its traceparent header value is formatted once into the Span's own
// buffer. Without an exporter nothing is recorded, but every hop still
// gets a span ID of its own, so upstreams that trace see one trace.
//
// Spans MUST NOT carry a token, a password, a cookie or a claim that is
// personal data; the user's ID is added only when Config.UserID says so.
// A traceparent from the client is a hint, never a credential: it
// chooses nothing but the trace a request is recorded in.
package tracing
