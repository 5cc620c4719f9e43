// Command tollgate-bench is tollgate's load harness. It builds the real
// tollgate binary (or takes one with -tollgate), starts an upstream that
// answers 204, two bare httputil.ReverseProxy baselines (b: without a
// BufferPool, bp: with one, as tollgate has) and `tollgate serve`, each in
// its own process on loopback, drives each in turn with the same
// closed-loop load and prints one table with ratios against both bare
// proxies (docs/PERFORMANCE.md explains the scenarios and the figures).
//
// A third bare proxy, (bh), is (bp) adding to every upstream request the
// headers tollgate adds to it — the identity headers, X-Request-Id and
// traceparent, learnt at start from what the upstream receives from each
// (it echoes a request's header when asked) and sent with the hot token's
// values. Tollgate's scenarios are also given against it: the part of the
// gap to (bp) that is not the cost of carrying those headers through the
// proxy, the kernel and the upstream.
//
// Usage:
//
//	go run ./cmd/tollgate-bench [-duration 5s] [-conns 32] [-tokens 100000] [-fleet 10000,100000]
//	                            [-idle 10000] [-profile DIR] [-alg ES256|EdDSA|RS256] [-tollgate PATH]
//	                            [-store memory|redis|all] [-no-id-token] [-redis-server PATH] [-tracing]
//	                            [-repeat N] [-interleave N]
//
// -repeat measures each fleet and (c-full) N times in a row, each time
// after its own (bp) and (bh), and the summary gives the median ratio and
// the range: on a shared machine one measurement of a target can land in
// a slow moment of its baseline or of itself. A fleet's repeats go on
// through its tokens where the one before stopped.
//
// -interleave N (6 unless set) measures each fleet and (c-full) together
// with its (bp) and (bh): N slices of -duration/N each, in turns, the
// order rotating each round, so that over three rounds each of the three
// is measured first, second and last once. A slow moment of the machine
// then falls on all three rather than on one of them; a scenario's
// figures are its slices' added up. The load client keeps every process's
// connections open between turns. With -profile, a profile covers a
// scenario's first slice. -interleave 1 measures each scenario whole, one
// after another.
//
// -tracing adds the hot token on two more gateways that export their spans
// over OTLP/HTTP (to the upstream, which discards them), sampling 1% and
// 100% of new traces, compared with (c), whose spans go nowhere.
//
// -fleet adds, for each size, a fleet of that many distinct tokens cycling
// after a warm-up pass that sends each once (what set-top boxes coming
// online do), then the hot token once the fleet fills the cache. For
// tollgate's scenarios the table gives the token cache's hit rate, and for
// them and the bare proxies' the garbage collector's cycles and share of
// the process's CPU (from the runtime's CPU classes: tollgate's /metrics,
// a bare proxy's own statistics listener), and after the table the heap
// each cached token takes
// (measured across the warm-ups, after collections). Scenario (d) is the
// cold path: tokens the gateway has not seen, each sent once while -tokens
// exceeds its requests (its hit rate shows when it does not).
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
