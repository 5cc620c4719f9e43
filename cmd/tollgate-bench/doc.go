// Command tollgate-bench is tollgate's load harness. It builds the real
// tollgate binary (or takes one with -tollgate), starts an upstream that
// answers 204, a bare httputil.ReverseProxy and `tollgate serve`, each in
// its own process on loopback, drives each in turn with the same
// closed-loop load and prints one table with ratios against the bare
// proxy (docs/PERFORMANCE.md explains the scenarios and the figures).
//
// Usage:
//
//	go run ./cmd/tollgate-bench [-duration 5s] [-conns 32] [-tokens 100000] [-idle 10000]
//	                            [-profile DIR] [-alg ES256|EdDSA|RS256] [-tollgate PATH]
//	                            [-store memory|redis|all] [-no-id-token] [-redis-server PATH]
//
// -store adds, to the same run, the refresh grant against a gateway with a
// session store (memory, and Redis: a redis-server the harness starts on a
// unix socket in its temporary directory) and the hot token against the
// Redis gateway once 10,000 revoked sessions are in its revoked set.
// Refresh tokens are then one-time handles: each load connection logs in
// once and presents, each time, the refresh token the previous answer
// returned. -no-id-token logs in without openid for the refresh scenarios.
//
// The harness MUST only listen on and send traffic to 127.0.0.1 and the
// unix socket of its own redis-server, and MUST stay bounded in time
// (-duration is at most a minute per scenario). It is a development tool:
// it is not part of the tollgate binary or its image.
package main
