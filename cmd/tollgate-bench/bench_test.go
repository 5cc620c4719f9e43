package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchHarnessRuns runs the load harness briefly, as the README tells
// people to (so building tollgate itself and starting `tollgate serve`), and
// checks that every scenario produced figures without errors.
func TestBenchHarnessRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "tollgate-bench")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, "-alg", alg, "-duration", "300ms", "-conns", "4", "-tokens", "200", "-idle", "50")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("tollgate-bench: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
			}
			checkBenchTable(t, string(out), alg)
		})
	}
}

// checkBenchTable checks that table has every scenario's row and the idle
// connection measurement, and that no scenario had errors.
func checkBenchTable(t *testing.T, table, alg string) {
	t.Helper()
	for _, row := range []string{"(a) direct upstream", "(b) bare httputil.ReverseProxy", "(c) tollgate, one hot token",
		"(d) tollgate, 200 distinct " + alg + " tokens", "(e) refresh grant, " + alg, "(f) password grant", "idle keep-alive connections: 50 held open"} {
		if !strings.Contains(table, row) {
			t.Errorf("no %q in:\n%s", row, table)
		}
	}
	// Every scenario served requests without errors (last column 0).
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "(") && !strings.HasSuffix(strings.TrimSpace(line), " 0") {
			t.Errorf("scenario with errors: %s", line)
		}
	}
}
