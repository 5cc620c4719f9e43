// Package tracing holds only tests: they check that the spans tollgate
// exports reach a real tracing backend as one trace with the client's and
// the upstream's. Jaeger (pinned in tools/jaeger/go.mod) and the tollgate binary
// are built from source; tollgate, configured only by the standard OTEL_*
// variables, exports over OTLP/HTTP and OTLP/gRPC to Jaeger's in-memory
// store, and the traces are read back through Jaeger's query API: a
// proxied request continues the client's traceparent, its server span is
// named by the route and carries the authentication decision, and the
// upstream span under it is the parent the upstream was sent; a login
// starts its own trace, found by a search as an operator would, whose ID
// is the one in the access log. No span may carry the password or the
// token. The spans still queued when tollgate is stopped are flushed on
// SIGTERM: the traces are read only once it has exited.
//
// Every process the tests start, and every port they listen on, MUST be
// on the loopback interface (127.0.0.1); Jaeger's configuration names
// each of its listeners so that none falls back to a default on all
// interfaces, and Jaeger sends no telemetry of its own. The package MUST
// NOT import the product's packages: it checks the binary as it ships.
package tracing
