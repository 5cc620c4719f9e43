// Package edge is the per-request envelope of tollgate's public listener,
// shared by the proxy and the token endpoints: request IDs, the access log,
// the panic guard, status capture, the request's Info that handlers fill in
// (route, upstream, user, auth decision), the one Bearer-token parser, the
// RFC 6750 refusals, and the dispatch between in-process endpoints and the
// proxy.
//
// It sits below proxy and issuer and MUST NOT import either: what it needs
// from them is handed in.
//
// Security rules:
//   - The access log MUST NOT contain a query string, a token, a cookie or
//     an Authorization header.
//   - There is exactly one Bearer parser; the proxy and the token endpoints
//     MUST both use it, so a request refused on one path is refused on all.
//   - A panic MUST NOT reach the client as a stack trace: it gets a generic
//     500 JSON body, the stack goes to the log.
package edge
