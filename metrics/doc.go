// Package metrics owns tollgate's Prometheus collectors. It is the only
// package that imports client_golang; the others report through small
// observer interfaces they declare themselves (edge.Observer,
// proxy.Observer, verifier.Observer, issuer.Observer,
// identity.BackendObserver), which *Metrics satisfies.
//
// Rules:
//   - Each Metrics has a registry of its own, made by New; main makes one
//     and passes it to every part. The default global registry MUST NOT be
//     used, so tests can run gateways side by side.
//   - Label values MUST be bounded: route, upstream and issuer names from
//     configuration, fixed reason strings. Never paths, users or tokens.
//   - The per-request methods MUST NOT allocate or take a lock once their
//     label set has been seen (children are resolved once).
//   - A counter whose increase an alert watches MUST be exported at 0 for
//     its known label values before their first event (New, SessionStore,
//     and Declare for the values only configuration knows): a series
//     that appears with its first increment has no earlier sample, and
//     increase() misses that event.
package metrics
