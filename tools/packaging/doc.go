// Package packaging holds only tests: they check what tollgate ships
// besides its code, against the real binary built from the repository
// root. The Dockerfile's final stage must have no shell, run as non-root
// and start `/tollgate serve`; the Dockerfile's own go build flags must
// produce a working static binary; and the configuration the Helm chart
// renders (with every optional feature on) must pass `tollgate
// check-config`, with no environment variable tollgate does not know.
//
// They live in the tools module so that the product's go.mod carries
// neither BuildKit's Dockerfile parser nor Helm. The package MUST NOT
// import the product's packages: it checks the binary as it ships.
package packaging
