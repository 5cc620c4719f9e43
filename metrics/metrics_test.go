package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tollgate/tollgate/session"
)

func TestLabelsStayBounded(t *testing.T) {
	ctx := t.Context()
	m := New(BuildInfo{Version: "v1", Revision: "abc", GoVersion: "go1.26"})
	m.RequestStarted(ctx)
	m.RequestDone(ctx, "", "BREW", 418, time.Millisecond)
	m.RequestStarted(ctx)
	m.RequestDone(ctx, "api", "GET", 200, time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("none", "OTHER", "418")); got != 1 {
		t.Errorf("unmatched route and odd method: %v", got)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight %v", got)
	}
	m.AuthDecision(ctx, "api", "anonymous")
	m.AuthDecision(ctx, "api", "expired")
	if testutil.ToFloat64(m.auth.WithLabelValues("api", "allowed", "anonymous")) != 1 || testutil.ToFloat64(m.auth.WithLabelValues("api", "denied", "expired")) != 1 {
		t.Error("auth results")
	}
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	m.JWKSFetch(ctx, "https://keys", nil)
	m.JWKSFetch(ctx, "https://keys", errors.New("down"))
	now = now.Add(90 * time.Second)
	err := testutil.CollectAndCompare(jwksAge{m}, strings.NewReader(`
# HELP tollgate_jwks_seconds_since_success Seconds since the last successful fetch of each remote JWKS (since startup while none has succeeded).
# TYPE tollgate_jwks_seconds_since_success gauge
tollgate_jwks_seconds_since_success{source="https://keys"} 90
`))
	if err != nil {
		t.Error(err)
	}
	if testutil.ToFloat64(m.jwksFetches.WithLabelValues("https://keys", "error")) != 1 {
		t.Error("fetch errors")
	}
	for _, stale := range []bool{false, true, true, false, true} {
		m.KeysStale(ctx, "https://keys", stale)
		want := 0.0
		if stale {
			want = 1
		}
		if got := testutil.ToFloat64(m.jwksStale.WithLabelValues("https://keys")); got != want {
			t.Errorf("after KeysStale(%v): tollgate_jwks_stale = %v, want %v", stale, got, want)
		}
	}
	err = testutil.CollectAndCompare(m.jwksStale, strings.NewReader(`
# HELP tollgate_jwks_stale 1 while a remote JWKS's keys are past their maximum staleness and its tokens are refused, 0 after a successful fetch.
# TYPE tollgate_jwks_stale gauge
tollgate_jwks_stale{source="https://keys"} 1
`))
	if err != nil {
		t.Error(err)
	}
}

// BenchmarkRequestPath is what one proxied request reports: in flight,
// the auth decision, the upstream round trip and the answer.
func BenchmarkRequestPath(b *testing.B) {
	ctx := b.Context()
	m := New(BuildInfo{})
	b.ReportAllocs()
	for b.Loop() {
		m.RequestStarted(ctx)
		m.AuthDecision(ctx, "api", "ok")
		m.Upstream(ctx, "legacy", 200, 3*time.Millisecond, "")
		m.RequestDone(ctx, "api", "GET", 200, 4*time.Millisecond)
	}
}

// TestChildrenConcurrent checks that the per-request children cache
// counts every observation exactly while new label sets appear from many
// goroutines at once.
func TestChildrenConcurrent(t *testing.T) {
	ctx := t.Context()
	m := New(BuildInfo{})
	const workers, each = 8, 500
	codes := []int{200, 204, 404, 502}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.RequestStarted(ctx)
				m.RequestDone(ctx, "api", "GET", codes[(w+i)%len(codes)], time.Millisecond)
				m.AuthDecision(ctx, fmt.Sprintf("r%d", i%3), "ok")
				m.Upstream(ctx, "legacy", codes[i%len(codes)], time.Millisecond, "")
			}
		})
	}
	wg.Wait()
	want := float64(workers * each / len(codes))
	for _, code := range codes {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("api", "GET", strconv.Itoa(code))); got != want {
			t.Errorf("requests code %d = %v, want %v", code, got, want)
		}
		if got := testutil.ToFloat64(m.upstream.WithLabelValues("legacy", strconv.Itoa(code))); got != want {
			t.Errorf("upstream code %d = %v", code, got)
		}
	}
	var auth float64
	for r := range 3 {
		auth += testutil.ToFloat64(m.auth.WithLabelValues(fmt.Sprintf("r%d", r), "allowed", "ok"))
	}
	if auth != workers*each {
		t.Errorf("auth decisions %v, want %d", auth, workers*each)
	}
	if n := len(*m.requestChildren.m.Load()); n != len(codes) {
		t.Errorf("%d request children, want %d", n, len(codes))
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight %v", got)
	}
}

// TestDeclareStartsAtZero checks that the label values configuration
// makes known are exported at zero before their first event (so that an
// increase() sees that event) and that declaring keeps earlier counts.
func TestDeclareStartsAtZero(t *testing.T) {
	ctx := t.Context()
	m := New(BuildInfo{})
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	m.Upstream(ctx, "api", 0, time.Millisecond, "refused")
	m.Declare(Subjects{Upstreams: []string{"api", "legacy"}, JWKSSources: []string{"https://keys"}, TokenEndpoints: true})
	m.Declare(Subjects{Upstreams: []string{"api"}})

	for _, c := range []struct {
		name      string
		collector prometheus.Collector
		want      int
	}{
		{"reloads: what × result", m.reloads, 4},
		{"upstream errors: upstream × kind", m.upstreamErrors, 8},
		{"jwks fetches: source × result", m.jwksFetches, 2},
		{"unknown kid suppressed", m.kidSuppressed, 1},
		{"jwks stale", m.jwksStale, 1},
		{"jwks seconds since success", jwksAge{m}, 1},
		{"login failures", m.loginFailures, len(loginFailureReasons)},
		{"token errors: grant × code", m.tokenErrors, 2 * len(tokenErrorCodes)},
	} {
		if got := testutil.CollectAndCount(c.collector); got != c.want {
			t.Errorf("%s: %d series, want %d", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"reloads error", testutil.ToFloat64(m.reloads.WithLabelValues("users", "error")), 0},
		{"api refused, counted before Declare", testutil.ToFloat64(m.upstreamErrors.WithLabelValues("api", "refused")), 1},
		{"legacy timeout", testutil.ToFloat64(m.upstreamErrors.WithLabelValues("legacy", "timeout")), 0},
		{"jwks fetch errors", testutil.ToFloat64(m.jwksFetches.WithLabelValues("https://keys", "error")), 0},
		{"jwks stale", testutil.ToFloat64(m.jwksStale.WithLabelValues("https://keys")), 0},
		{"login failures", testutil.ToFloat64(m.loginFailures.WithLabelValues("invalid_credentials")), 0},
		{"token errors", testutil.ToFloat64(m.tokenErrors.WithLabelValues("refresh_token", "invalid_grant")), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// A source that never answers ages from its declaration, so that the
	// staleness alert fires after a start too.
	now = now.Add(2 * time.Hour)
	if err := testutil.CollectAndCompare(jwksAge{m}, strings.NewReader(`
# HELP tollgate_jwks_seconds_since_success Seconds since the last successful fetch of each remote JWKS (since startup while none has succeeded).
# TYPE tollgate_jwks_seconds_since_success gauge
tollgate_jwks_seconds_since_success{source="https://keys"} 7200
`)); err != nil {
		t.Error(err)
	}
	m.JWKSFetch(ctx, "https://keys", nil)
	m.Declare(Subjects{JWKSSources: []string{"https://keys"}})
	now = now.Add(time.Minute)
	if got := testutil.ToFloat64(jwksAge{m}); got != 60 {
		t.Errorf("seconds since success after a fetch and a second Declare: %v, want 60", got)
	}

	// Without token endpoints, nothing of theirs is exported.
	proxyOnly := New(BuildInfo{})
	proxyOnly.Declare(Subjects{Upstreams: []string{"api"}})
	if n := testutil.CollectAndCount(proxyOnly.tokenErrors) + testutil.CollectAndCount(proxyOnly.loginFailures); n != 0 {
		t.Errorf("%d token error and login failure series without token endpoints", n)
	}
}

// TestStoreErrorsAreFailuresOnly: the store's answers (a handle not
// found, a device still pending) are not failures; an unavailable store
// is, however it is wrapped.
func TestStoreErrorsAreFailuresOnly(t *testing.T) {
	m := New(BuildInfo{})
	ctx := t.Context()
	m.StoreCall(ctx, "lookup", time.Millisecond, session.ErrNotFound)
	m.StoreCall(ctx, "device_poll", time.Millisecond, session.ErrAuthorizationPending)
	m.StoreCall(ctx, "device_poll", time.Millisecond, nil)
	if n := testutil.CollectAndCount(m.storeErrors); n != 0 {
		t.Errorf("answers counted as store errors: %d series", n)
	}
	m.StoreCall(ctx, "device_poll", time.Millisecond, fmt.Errorf("poll: %w", session.ErrUnavailable))
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("device_poll")); got != 1 {
		t.Errorf("an unavailable store counted %v times, want 1", got)
	}
	if got := testutil.CollectAndCount(m.storeTime); got != 2 {
		t.Errorf("store durations for %d operations, want 2", got)
	}
}
