// Package monitoring holds only tests: they check the Grafana dashboard
// and the Prometheus alerting rules the Helm chart ships
// (charts/tollgate/files) against what the real binary exposes, as
// Prometheus would store it.
//
// The binary is built from the repository root, run with token endpoints,
// a remote JWKS, a session store and an upstream that is down, given
// traffic, and scraped a few times in the two formats Prometheus
// negotiates: OpenMetrics text when native histograms are off (classic
// _bucket, _count and _sum series) and protobuf when they are on (the
// native histogram, its classic series dropped). Prometheus' own parser
// turns each scrape into samples, its TSDB stores them and its PromQL
// engine evaluates every dashboard and alert expression in each mode: each
// must return data, since the traffic gave every one something to show.
//
// Every alert must also have unit tests (alerts_test.yaml) in which it
// fires and in which it stays quiet; test.sh runs them with promtool.
//
// The package MUST NOT import the product's packages: it checks the
// binary as it ships.
package monitoring
