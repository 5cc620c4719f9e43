package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tollgate/tollgate/internal/testkit"
	"go.yaml.in/yaml/v3"
)

// scrape reads the admin /metrics in the text format.
func scrape(t *testing.T, m *Main) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + m.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// value returns the sample of family name whose labels include want (0 if
// absent). For histograms it returns the sample count.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	var sum float64
outer:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue outer
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// metricsGateway is an auth gateway with a second, remote-JWKS issuer and
// an upstream that is down, so that every collector has samples.
func metricsGateway(t *testing.T) (*authGateway, *testkit.Key) {
	remoteKey := testkit.NewKey(t, "ES256", "r1")
	set := remoteKey.JWKS(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(set) }))
	t.Cleanup(jwks.Close)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	g := startTokenGatewayEnv(t, sourceDocClients+fmt.Sprintf(`
upstreams:
  - {name: down, url: "http://%s"}
routes:
  - {name: down, prefix: /down, upstream: down}
trusted_issuers:
  - {issuer: https://partner.test, audiences: [partner-api], jwks_urls: [%q]}
`, down, jwks.URL), true, []string{"TOLLGATE_SESSION_STORE=memory"}) // so that the session collectors have samples
	// Readiness waits for the remote JWKS.
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + g.m.AdminAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g, remoteKey
}

func TestMetricsCountTraffic(t *testing.T) {
	g, remoteKey := metricsGateway(t)
	before := scrape(t, g.m)
	login(t, g)                    // tokens_issued{password,anonymous,oauth} +1
	g.clock.Add(-10 * time.Minute) // a 5-minute token minted 10 minutes ago has expired
	expired := login(t, g)
	g.clock.Add(10 * time.Minute)
	valid := login(t, g)

	for _, c := range []struct {
		path, auth string
		hdr        []string
		want       int
	}{
		{"/x", "Bearer " + valid, nil, 200},
		{"/x", "Bearer " + valid, []string{"X-User-Id", "admin"}, 200}, // spoofed
		{"/x", "Bearer " + expired, nil, 401},
		{"/x", "", nil, 401},
		{"/down/x", "Bearer " + valid, nil, 502},
	} {
		hdr := c.hdr
		if c.auth != "" {
			hdr = append(hdr, "Authorization", c.auth)
		}
		resp, _ := send(t, http.MethodGet, g.url+c.path, "", hdr...)
		if resp.StatusCode != c.want {
			t.Fatalf("%s: %d, want %d", c.path, resp.StatusCode, c.want)
		}
	}
	// Each grant and dialect, and a failed login.
	resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"qwerty123"}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("jsonapi login: %s", b)
	}
	var out struct {
		Data struct{ Attributes map[string]any }
	}
	json.Unmarshal(b, &out)
	refresh := out.Data.Attributes["refresh_token"].(string)
	if resp, b := send(t, http.MethodPost, g.url+"/auth/realms/x/protocol/openid-connect/token", "grant_type=refresh_token&client_id=anonymous&refresh_token="+refresh); resp.StatusCode != 200 {
		t.Fatalf("keycloak refresh: %s", b)
	}
	if resp, _ := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=wrong"); resp.StatusCode != 400 {
		t.Fatal("bad password accepted")
	}
	// Two made-up kids for the remote issuer: one refetch, one suppressed.
	for _, kid := range []string{"made-up-1", "made-up-1"} {
		s := remoteKey.Sign(t, jwt.MapClaims{"iss": "https://partner.test", "aud": "partner-api", "sub": "partner-user", "type": "access", "exp": g.clock.Now().Add(time.Hour).Unix()},
			map[string]any{"kid": kid})
		if resp, _ := send(t, http.MethodGet, g.url+"/x", "", "Authorization", "Bearer "+s); resp.StatusCode != 401 {
			t.Fatalf("made-up kid %s: %d", kid, resp.StatusCode)
		}
	}
	os.WriteFile(g.users, []byte("users: [broken"), 0o600)
	g.m.users.Reload()

	after := scrape(t, g.m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		delta  float64
	}{
		{"tollgate_http_requests_total", map[string]string{"route": "default", "method": "GET", "code": "200"}, 2},
		{"tollgate_http_requests_total", map[string]string{"route": "default", "method": "GET", "code": "401"}, 4},
		{"tollgate_http_requests_total", map[string]string{"route": "down", "method": "GET", "code": "502"}, 1},
		{"tollgate_http_requests_total", map[string]string{"route": "oauth_token", "method": "POST", "code": "200"}, 3},
		{"tollgate_http_requests_total", map[string]string{"route": "oauth_token", "method": "POST", "code": "400"}, 1},
		{"tollgate_http_requests_total", map[string]string{"route": "jsonapi_token", "code": "200"}, 1},
		{"tollgate_http_requests_total", map[string]string{"route": "keycloak_token", "code": "200"}, 1},
		{"tollgate_http_request_duration_seconds", map[string]string{"route": "default"}, 6},
		{"tollgate_auth_decisions_total", map[string]string{"route": "default", "result": "allowed", "reason": "ok"}, 2},
		{"tollgate_auth_decisions_total", map[string]string{"route": "down", "result": "allowed", "reason": "ok"}, 1},
		{"tollgate_auth_decisions_total", map[string]string{"route": "default", "result": "denied", "reason": "expired"}, 1},
		{"tollgate_auth_decisions_total", map[string]string{"route": "default", "result": "denied", "reason": "missing"}, 1},
		{"tollgate_auth_decisions_total", map[string]string{"route": "default", "result": "denied", "reason": "unknown_key"}, 2},
		{"tollgate_upstream_requests_total", map[string]string{"upstream": "default", "code": "200"}, 2},
		{"tollgate_upstream_requests_total", map[string]string{"upstream": "down", "code": "0"}, 1},
		{"tollgate_upstream_errors_total", map[string]string{"upstream": "down", "kind": "refused"}, 1},
		{"tollgate_upstream_duration_seconds", map[string]string{"upstream": "default"}, 2},
		{"tollgate_tokens_issued_total", map[string]string{"grant": "password", "client": "anonymous", "dialect": "oauth"}, 3},
		{"tollgate_tokens_issued_total", map[string]string{"grant": "password", "client": "anonymous", "dialect": "jsonapi"}, 1},
		{"tollgate_tokens_issued_total", map[string]string{"grant": "refresh_token", "client": "anonymous", "dialect": "keycloak"}, 1},
		{"tollgate_token_errors_total", map[string]string{"grant": "password", "error": "invalid_grant"}, 1},
		{"tollgate_login_failures_total", map[string]string{"reason": "invalid_credentials"}, 1},
		{"tollgate_jwks_fetches_total", map[string]string{"result": "success"}, 1},
		{"tollgate_jwks_unknown_kid_suppressed_total", nil, 1},
		{"tollgate_reloads_total", map[string]string{"what": "users", "result": "error"}, 1},
		// valid twice on /x and once on /down: one miss then two hits.
		{"tollgate_token_cache_hits_total", nil, 2},
	} {
		if got := value(after, c.name, c.labels) - value(before, c.name, c.labels); got != c.delta {
			t.Errorf("%s%v: delta %v, want %v", c.name, c.labels, got, c.delta)
		}
	}
	if _, ok := after["tollgate_http_requests_in_flight"]; !ok || value(after, "tollgate_http_requests_in_flight", nil) != 0 {
		t.Errorf("in flight after every public request finished: %v", value(after, "tollgate_http_requests_in_flight", nil))
	}
	if got := value(after, "tollgate_keys_loaded", map[string]string{"source": "self"}); got != 1 {
		t.Errorf("self keys loaded %v", got)
	}
	if _, ok := after["tollgate_jwks_seconds_since_success"]; !ok {
		t.Error("no JWKS freshness gauge")
	}
	// Bounded labels: no path, user or token ever becomes a label value.
	for name, mf := range after {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "/x") || strings.Contains(l.GetValue(), "eyJ") || l.GetValue() == "2" || l.GetValue() == "someuser@24i.com" {
					t.Errorf("%s has an unbounded label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestMetricsLintAndDashboards(t *testing.T) {
	g, _ := metricsGateway(t)
	// Some traffic, so that the vectors have samples.
	valid := login(t, g)
	_, refresh := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	send(t, http.MethodPost, g.url+"/oauth/logout", "client_id=anonymous&refresh_token="+refresh, "Content-Type", "application/x-www-form-urlencoded")
	send(t, http.MethodGet, g.url+"/x", "", "Authorization", "Bearer "+valid)
	send(t, http.MethodGet, g.url+"/down/x", "", "Authorization", "Bearer "+valid)
	send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=x&password=y")
	g.m.users.Reload()
	// HMAC-signed tokens whose header claims ES256, for unknown kids.
	forger := &testkit.Key{Alg: "HS256", Private: []byte("not-a-key-but-alg-is-checked-first-0123456789")}
	for _, kid := range []string{"a", "a"} {
		s := forger.Sign(t, jwt.MapClaims{"iss": "https://partner.test", "aud": "partner-api", "sub": "partner-user", "type": "access", "exp": g.clock.Now().Add(time.Hour).Unix()},
			map[string]any{"kid": kid, "alg": "ES256"})
		send(t, http.MethodGet, g.url+"/x", "", "Authorization", "Bearer "+s)
	}

	resp, err := http.Get("http://" + g.m.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(resp.Body).Lint()
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	exposed := scrape(t, g.m)
	dashboard, err := os.ReadFile("../../charts/tollgate/files/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(dashboard, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	collectExprs(dash, &exprs)
	rulesFile, err := os.ReadFile("../../charts/tollgate/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rulesFile, &rules); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	var alertNames []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alertNames = append(alertNames, r.Alert)
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 20 || len(alertNames) < 5 {
		t.Fatalf("%d expressions, alerts %v", len(exprs), alertNames)
	}
	for _, want := range []string{"TollgateHigh5xxRatio", "TollgateAuthFailureSpike", "TollgateJWKSStale", "TollgateUpstreamDown", "TollgateLatencySLOBurn"} {
		if !slices.Contains(alertNames, want) {
			t.Errorf("alert %s missing", want)
		}
	}
	nameRE := regexp.MustCompile(`\btollgate_[a-z0-9_]+`)
	for _, e := range exprs {
		for _, name := range nameRE.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && exposed[b] != nil && exposed[b].GetType() == dto.MetricType_HISTOGRAM {
					base = b
				}
			}
			if exposed[base] == nil {
				t.Errorf("%s is used in %q but tollgate does not expose it", name, e)
			}
		}
	}
}

// collectExprs finds every "expr" string in a dashboard.
func collectExprs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "expr" {
				*out = append(*out, s)
			} else {
				collectExprs(e, out)
			}
		}
	case []any:
		for _, e := range v {
			collectExprs(e, out)
		}
	}
}
