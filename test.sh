#!/usr/bin/env bash
# test.sh runs tollgate's whole test suite: formatting, vet, and every test
# with the race detector (fuzz tests run their seed corpus). It installs
# nothing it does not need; later suites add their own prerequisites here.
set -euo pipefail
cd "$(dirname "$0")"

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "these files need gofmt:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...
(cd tools && go vet ./...)

echo "== helm chart: lint, template, kubeconform -strict"
# helm and kubeconform are pinned in tools/go.mod and built by `go tool`;
# the Kubernetes schemas are generated from the pinned k8s.io/api types, so
# nothing is downloaded outside the Go module proxy.
helm() { go tool -modfile=tools/go.mod helm "$@"; }
kubeconform() { go tool -modfile=tools/go.mod kubeconform "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd tools && go run ./k8sschema "$work/schemas")
for values in "" "charts/tollgate/ci/full-values.yaml"; do
	flags=()
	name=default
	if [ -n "$values" ]; then
		flags=(-f "$values")
		name=full
	fi
	helm lint --strict charts/tollgate "${flags[@]}"
	helm template tollgate charts/tollgate "${flags[@]}" > "$work/$name.yaml"
done
# ServiceMonitor and PrometheusRule are Prometheus Operator CRDs with no
# schema here: skipped explicitly.
kubeconform -strict -summary -skip ServiceMonitor,PrometheusRule \
	-schema-location "$work/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
	"$work/default.yaml" "$work/full.yaml"

# need installs Debian packages for commands the tests run for real; a
# missing one fails the run here, it never turns into a skipped test.
need() {
	local cmd=$1 pkg=$2
	if command -v "$cmd" >/dev/null; then
		return
	fi
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo=sudo
	fi
	if [ -z "${apt_updated:-}" ]; then
		$sudo apt-get update
		apt_updated=1
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg"
}

echo "== alert rules: promtool check rules, test rules"
# promtool is pinned in tools/go.mod (the Prometheus module, whose scrape
# parser and PromQL engine tools/monitoring also uses) and built here
# without the service discoveries (remove_all_sd): rule checks use none,
# and they are two thirds of its build time. Debian's promtool (2.42)
# cannot read the native histograms in alerts_test.yaml.
go build -modfile=tools/go.mod -tags remove_all_sd -o "$work/promtool" github.com/prometheus/prometheus/cmd/promtool
echo "promtool of github.com/prometheus/prometheus $(go list -modfile=tools/go.mod -m -f '{{.Version}}' github.com/prometheus/prometheus)"
"$work/promtool" check rules charts/tollgate/files/alerts.yaml
"$work/promtool" test rules charts/tollgate/files/alerts_test.yaml

echo "== redis-server (the session store's tests run a real one)"
need redis-server redis-server
# The package's own server is not used: each test starts its own.
redis-server --version

echo "== chromium (the device sign-in page is tested in a real browser)"
need chromium chromium
chromium --version

echo "== jaeger (the trace backend of tools/tracing)"
# Pinned in a module of its own (tools/jaeger/go.mod: it cannot share
# tools/go.mod's dependencies) and built as a `go tool`, whose binary the
# build cache keeps: built here, outside go test's timeout (a cold build
# takes ~8 minutes on 2 cores), the test then finds it ready.
time go tool -modfile=tools/jaeger/go.mod -n jaeger

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...
# The tools module's tests check the packaging (Dockerfile, the image's
# build flags, the chart against check-config), the monitoring (the
# dashboard's and the alerts' queries in both histogram modes) and the
# tracing (spans in a real Jaeger) on the built binary.
(cd tools && go test -race -count=1 -timeout 15m ./...)
