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
//
// The harness MUST only listen on and send traffic to 127.0.0.1, and MUST
// stay bounded in time (-duration is at most a minute per scenario). It is
// a development tool: it is not part of the tollgate binary or its image.
package main
