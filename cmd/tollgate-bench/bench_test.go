package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// EdDSA also measures each fleet target twice (-repeat 2), each with
	// its baselines in turns, in two slices (-interleave 2).
	for _, c := range []struct {
		alg    string
		repeat int
	}{{"ES256", 1}, {"EdDSA", 2}} {
		alg := c.alg
		t.Run(alg, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, "-alg", alg, "-duration", "300ms", "-conns", "4", "-tokens", "200", "-fleet", "50,400", "-idle", "50",
				"-repeat", strconv.Itoa(c.repeat), "-interleave", strconv.Itoa(c.repeat))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("tollgate-bench: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
			}
			checkBenchTable(t, string(out), alg)
			checkFleet(t, string(out), alg, c.repeat)
			checkInterleaved(t, stderr.String(), alg, c.repeat)
		})
	}
	// The session store and tracing scenarios, in the same run as the
	// others, with refresh tokens that are one-time handles chained per
	// connection. The gateways inherit the harness's environment: with a reuse
	// interval of 1ms, a connection that presented a used handle again
	// instead of its successor would revoke its session and see errors.
	t.Run("store", func(t *testing.T) {
		if _, err := exec.LookPath("redis-server"); err != nil {
			t.Fatal("redis-server is not installed (apt-get install -y redis-server; test.sh does it): " + err.Error())
		}
		cmd := exec.CommandContext(ctx, bin, "-store", "all", "-no-id-token", "-duration", "300ms", "-conns", "4", "-tokens", "200", "-fleet", "", "-idle", "50", "-tracing")
		cmd.Env = append(os.Environ(), "TOLLGATE_REFRESH_REUSE_INTERVAL=1ms")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tollgate-bench: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
		}
		table := string(out)
		checkBenchTable(t, table, "ES256")
		for _, row := range []string{"(e) refresh grant, ES256, no id_token", "(c-revoked) tollgate, one hot token, store on with 10k revoked sessions",
			"(e-memory) refresh grant, memory store", "(e-redis) refresh grant, Redis store on a unix socket",
			"sessions: refresh grant tokens/s ×(e) stateless: memory ", ", Redis ", "sessions: one hot token with 10000 revoked sessions: ",
			"(c-trace1) tollgate, one hot token, spans exported, 1% sampled", "(c-trace100) tollgate, one hot token, spans exported, 100% sampled",
			"tracing: one hot token, requests/s ×(c) tracing off: 1% sampled "} {
			if !strings.Contains(table, row) {
				t.Errorf("no %q in:\n%s", row, table)
			}
		}
	})
}

// checkBenchTable checks that table has every scenario's row and the idle
// connection measurement, and that no scenario had errors.
func checkBenchTable(t *testing.T, table, alg string) {
	t.Helper()
	for _, row := range []string{"(a) direct upstream", "(b) bare httputil.ReverseProxy", "(bp) bare httputil.ReverseProxy with a BufferPool",
		"(c) tollgate, one hot token, fresh process", "(d) tollgate, cold: 200 distinct " + alg + " tokens, each new", "(e) refresh grant, " + alg,
		"(f) password grant", "idle keep-alive connections: 50 held open"} {
		if !strings.Contains(table, row) {
			t.Errorf("no %q in:\n%s", row, table)
		}
	}
	// The bare proxies' collector is measured as tollgate's is: cycles and
	// a share of their CPU, and no cache hit rate ("–").
	for _, row := range []string{"(b) bare httputil.ReverseProxy ", "(bp) bare httputil.ReverseProxy with a BufferPool"} {
		if f := strings.Fields(lineWith(table, row)); len(f) < 4 || f[len(f)-4] != "–" || !strings.HasSuffix(f[len(f)-2], "%") {
			t.Errorf("no GC figures for %s: %q", row, f)
		}
	}
	// (bh) adds what the upstream received from tollgate and not from
	// (bp): the identity headers of the hot token, the request id and the
	// trace context. On the default route tollgate removes nothing (it
	// forwards the Authorization header, as (bp) does).
	if !strings.Contains(table, "(bh) (bp) adding tollgate's ") {
		t.Errorf("no (bh) row in:\n%s", table)
	}
	added := lineWith(table, "same upstream headers: (bh) adds ")
	for _, h := range []string{"X-User-Id", "X-Session-Id", "X-Client-Id", "X-Request-Id", "Traceparent"} {
		if !strings.Contains(added, h) {
			t.Errorf("(bh) does not add %s: %q", h, added)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(added), "; tollgate removes none") || !strings.Contains(table, "same upstream headers: tollgate requests/s ×(bh): (c) ") ||
		!strings.Contains(table, "same upstream headers: (bh) requests/s ×(bp): first ") {
		t.Errorf("no ratios to (bh), or tollgate removes a header (bp) forwards: %q", added)
	}
	// The cold scenario sends each token once: the cache answers none.
	if line := lineWith(table, "(d) tollgate, cold: "); !strings.Contains(line, " 0.0% ") {
		t.Errorf("the cold scenario's tokens were not all new: %s", line)
	}
	// Every scenario served requests without errors (last column 0).
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "(") && !strings.HasSuffix(strings.TrimSpace(line), " 0") {
			t.Errorf("scenario with errors: %s", line)
		}
	}
}

// checkFleet checks the fleet scenarios of a run with -fleet 50,400: the
// rows, the token cache answering every request after the warm-up (the
// hit-rate column), the memory per cached token, and the summary against
// the targets.
func checkFleet(t *testing.T, table, alg string, repeat int) {
	t.Helper()
	for _, n := range []string{"50", "400"} {
		row := "(g) tollgate, fleet of " + n + " distinct " + alg + " tokens after warm-up"
		line := lineWith(table, row)
		if line == "" {
			t.Errorf("no %q in:\n%s", row, table)
			continue
		}
		// Each fleet token was verified in the warm-up: every lookup hits.
		if !strings.Contains(line, " 100.0% ") {
			t.Errorf("fleet of %s: not every request answered by the cache: %s", n, line)
		}
		if !strings.Contains(table, "fleet of "+n+": "+n+" tokens cached, heap +") {
			t.Errorf("no memory figure for the fleet of %s in:\n%s", n, table)
		}
	}
	for _, row := range []string{"(c-full) tollgate, one hot token, the fleet in the cache", "fleet: requests/s ×(bp) after warm-up",
		"fleet: one hot token with the cache full: ", "cold: every token new: ",
		// Each fleet target's baseline is measured again just before it.
		"(bp) again, before (g)", "(bp) again, before (c-full)", "(bp) again, before (d)"} {
		if !strings.Contains(table, row) {
			t.Errorf("no %q in:\n%s", row, table)
		}
	}
	// (bh) is measured again after each of those (bp), and tollgate's
	// fleet targets are compared with it too.
	n := 0
	for line := range strings.Lines(table) {
		if strings.HasPrefix(strings.TrimSpace(line), "(bh) again, before ") && !strings.Contains(line, "#") {
			n++
		}
	}
	if n != 4 {
		t.Errorf("want four repeated (bh), got %d:\n%s", n, table)
	}
	same := lineWith(table, "same upstream headers: tollgate requests/s ×(bh): ")
	for _, s := range []string{"50 tokens ", "400 tokens ", "(c-full) ", "(d) ", "CPU "} {
		if !strings.Contains(same, s) {
			t.Errorf("no %q in %q", s, same)
		}
	}
	// With -repeat each fleet and (c-full) is measured again, with its
	// baselines, and the summary gives the median; (d) is not repeated.
	if repeat > 1 {
		for _, row := range []string{"(g) tollgate, fleet of 50 distinct " + alg + " tokens after warm-up, #2", "(g) tollgate, fleet of 400 distinct " + alg + " tokens after warm-up, #2",
			"(c-full) tollgate, one hot token, the fleet in the cache, #2", "(bp) again, before (c-full), #2", "(bh) again, before (g) 400 tokens, #2"} {
			if !strings.Contains(table, row) {
				t.Errorf("no %q in:\n%s", row, table)
			}
		}
		for _, line := range []string{"fleet: requests/s ×(bp) after warm-up", "fleet: one hot token with the cache full: ", "same upstream headers: tollgate requests/s ×(bh): "} {
			if l := lineWith(table, line); !strings.Contains(l, "(median of 2: ") {
				t.Errorf("no median of the repeats in %q", l)
			}
		}
		if strings.Contains(table, "cold: every token new, #2") || strings.Contains(table, "each new, #2") {
			t.Error("the cold scenario was repeated")
		}
	} else if strings.Contains(table, "median of") || strings.Contains(table, "#2") {
		t.Errorf("repeats without -repeat:\n%s", table)
	}
	again := strings.TrimSpace(lineWith(table, "baseline: (bp) again before each fleet, (c-full) and (d): "))
	if again = again[strings.LastIndexByte(again, ':')+1:]; len(strings.Split(again, ",")) != 4 {
		t.Errorf("want four repeated baselines (two fleets, (c-full), (d)): %q", again)
	}
}

// checkInterleaved checks from the harness's progress lines that with
// -interleave 2 each fleet and (c-full) was measured in two slices with
// its baselines, in turns, and nothing else was; without, nothing was.
func checkInterleaved(t *testing.T, progress, alg string, interleave int) {
	t.Helper()
	sliced := 0
	for line := range strings.Lines(progress) {
		if strings.Contains(line, " in 2 slices, in turns") {
			sliced++
			if strings.Contains(line, "(d)") || strings.Contains(line, "(c) ") || strings.Contains(line, "(e") {
				t.Errorf("measured in slices: %s", line)
			}
		}
	}
	// Two fleets and (c-full), twice each (-repeat 2), with their (bp) and (bh).
	if want := map[int]int{1: 0, 2: 3 * 2 * 3}[interleave]; sliced != want {
		t.Errorf("%d scenarios measured in slices, want %d:\n%s", sliced, want, progress)
	}
	if interleave > 1 && !strings.Contains(progress, "(g) tollgate, fleet of 400 distinct "+alg+" tokens after warm-up, #2: 300ms in 2 slices") {
		t.Errorf("the second fleet's repeat not in slices:\n%s", progress)
	}
}

func lineWith(table, s string) string {
	for line := range strings.Lines(table) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
