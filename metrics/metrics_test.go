package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLabelsStayBounded(t *testing.T) {
	m := New(BuildInfo{Version: "v1", Revision: "abc", GoVersion: "go1.26"})
	m.RequestStarted()
	m.RequestDone("", "BREW", 418, time.Millisecond)
	m.RequestStarted()
	m.RequestDone("api", "GET", 200, time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("none", "OTHER", "418")); got != 1 {
		t.Errorf("unmatched route and odd method: %v", got)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight %v", got)
	}
	m.AuthDecision("api", "anonymous")
	m.AuthDecision("api", "expired")
	if testutil.ToFloat64(m.auth.WithLabelValues("api", "allowed", "anonymous")) != 1 || testutil.ToFloat64(m.auth.WithLabelValues("api", "denied", "expired")) != 1 {
		t.Error("auth results")
	}
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	m.JWKSFetch("https://keys", nil)
	m.JWKSFetch("https://keys", errors.New("down"))
	now = now.Add(90 * time.Second)
	err := testutil.CollectAndCompare(jwksAge{m}, strings.NewReader(`
# HELP tollgate_jwks_seconds_since_success Seconds since the last successful fetch of each remote JWKS.
# TYPE tollgate_jwks_seconds_since_success gauge
tollgate_jwks_seconds_since_success{source="https://keys"} 90
`))
	if err != nil {
		t.Error(err)
	}
	if testutil.ToFloat64(m.jwksFetches.WithLabelValues("https://keys", "error")) != 1 {
		t.Error("fetch errors")
	}
}
