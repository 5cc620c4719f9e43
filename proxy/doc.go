// Package proxy is tollgate's request path: it matches a request to a
// route, authenticates its Bearer token, turns the token's claims into
// identity headers and forwards it with httputil.ReverseProxy.
//
// Security rules:
//   - Every inbound header whose name is a mapped identity header MUST be
//     removed on every route, whatever its auth mode, before forwarding: a
//     client never chooses its identity.
//   - Identity headers MUST be set on the outbound request inside Rewrite,
//     after ReverseProxy has dropped hop-by-hop headers, so that a client's
//     "Connection: X-User-Id" cannot remove them.
//   - Error responses MUST NOT contain the token or internal error text; logs
//     MUST NOT contain the token, the Authorization header or the query string.
package proxy
