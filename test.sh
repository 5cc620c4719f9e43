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

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...
