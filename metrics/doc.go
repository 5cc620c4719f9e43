// Package metrics owns tollgate's Prometheus registry and collectors. It is
// the only package that imports client_golang; the others report through
// small observer interfaces they declare themselves.
//
// Rules:
//   - The registry MUST be created by the caller (main) and passed around;
//     the default global registry MUST NOT be used.
//   - Label values MUST be bounded: route, upstream and issuer names from
//     configuration, fixed reason strings. Never paths, users or tokens.
package metrics
