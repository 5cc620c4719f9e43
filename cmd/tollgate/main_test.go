package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate/tollgate/internal/testkit"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

const (
	testIssuer   = "https://login.example.test"
	testAudience = "video-api"
)

// gateway is a running Main with its signing key.
type gateway struct {
	m   *Main
	key *testkit.Key
	url string
}

// writeKey writes key's public half as PEM into dir and returns the path.
func writeKey(t *testing.T, dir string, key *testkit.Key) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "issuer.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startGateway runs the real wiring from environment variables plus an
// optional YAML file, on loopback :0 ports, and closes it at cleanup.
func startGateway(t *testing.T, yamlFile string, env ...string) *gateway {
	t.Helper()
	return startGatewayLogger(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), yamlFile, env...)
}

// startGatewayLogger is startGateway logging to logger.
func startGatewayLogger(t *testing.T, logger *zap.Logger, yamlFile string, env ...string) *gateway {
	t.Helper()
	key := testkit.NewKey(t, "ES256", "")
	dir := t.TempDir()
	environ := []string{
		"TOLLGATE_LISTEN=127.0.0.1:0",
		"TOLLGATE_ADMIN_LISTEN=127.0.0.1:0",
		"TOLLGATE_ISSUER=" + testIssuer,
		"TOLLGATE_AUDIENCE=" + testAudience,
		"TOLLGATE_VERIFY_KEYS=" + writeKey(t, dir, key),
		"TOLLGATE_SHUTDOWN_DELAY=0s",
	}
	if yamlFile != "" {
		path := filepath.Join(dir, "tollgate.yaml")
		if err := os.WriteFile(path, []byte(yamlFile), 0o600); err != nil {
			t.Fatal(err)
		}
		environ = append(environ, "TOLLGATE_CONFIG_FILE="+path)
	}
	environ = append(environ, env...)
	cfg, warnings, err := LoadConfig(environ)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if len(warnings) > 0 {
		t.Fatalf("unexpected warnings: %v", warnings)
	}
	m, err := NewMain(cfg, logger)
	if err != nil {
		t.Fatalf("NewMain: %v", err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &gateway{m: m, key: key, url: "http://" + m.PublicAddr()}
}

// token mints an access token (typ at+jwt, no kid) for user-42 with
// profile-7; edit adjusts the claims.
func (g *gateway) token(t *testing.T, edit func(jwt.MapClaims)) string {
	t.Helper()
	return g.key.Access(t, testkit.Claims(testIssuer, testAudience, time.Now(), func(c jwt.MapClaims) {
		c["sub"], c["profile"] = "user-42", "profile-7"
		if edit != nil {
			edit(c)
		}
	}))
}

func (g *gateway) do(t *testing.T, method, path, token string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

func twoUpstreams(t *testing.T) (string, *httptest.Server, *httptest.Server) {
	legacy, fresh := testkit.Echo(t, "legacy"), testkit.Echo(t, "new")
	return fmt.Sprintf(`
upstreams:
  - {name: legacy, url: %q}
  - {name: new, url: %q}
routes:
  - {name: legacy, prefix: /, upstream: legacy}
  - {name: new-api, prefix: /api/v2, upstream: new, strip_prefix: true, drop_authorization: true}
  - {name: catalog, prefix: /catalog, upstream: new, auth: optional}
  - {name: admin, prefix: /admin, upstream: new, scopes: [admin]}
  - {name: public, prefix: /public, upstream: new, auth: none}
headers:
  - {header: X-User-Id, claim: sub}
  - {header: X-Profile-Id, claim: profile}
  - {header: X-Session-Id, claim: sid}
  - {header: X-Client-Id, claim: client_id}
  - {header: X-Scopes, claim: scope}
  - {header: X-Legacy-User, claim: data.userId}
`, legacy.URL, fresh.URL), legacy, fresh
}

func TestEndToEndRoutingAndHeaders(t *testing.T) {
	yml, _, _ := twoUpstreams(t)
	g := startGateway(t, yml)
	tok := g.token(t, func(c jwt.MapClaims) { c["data"] = map[string]any{"userId": "2"} })

	tests := []struct {
		name, path       string
		token            string
		spoof            bool
		wantUpstream     string
		wantPath         string
		wantUser         string
		wantAuthForwards bool
	}{
		{"legacy catch-all", "/channels/1/relationships/streams", tok, false, "legacy", "/channels/1/relationships/streams", "user-42", true},
		{"new api with prefix stripped", "/api/v2/vms", tok, false, "new", "/vms", "user-42", false},
		{"spoofed headers replaced", "/channels", tok, true, "legacy", "/channels", "user-42", true},
		{"optional route without token", "/catalog/movies", "", true, "new", "/catalog/movies", "", false},
		{"optional route with token", "/catalog/movies", tok, false, "new", "/catalog/movies", "user-42", true},
		{"auth none drops spoofed identity", "/public/logo.png", "", true, "new", "/public/logo.png", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.spoof {
				hdr = []string{"X-User-Id", "admin", "x-profile-id", "p0", "X-Scopes", "admin", "X-Legacy-User", "1", "Connection", "X-User-Id"}
			}
			resp := g.do(t, http.MethodGet, tt.path, tt.token, hdr...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := decode[testkit.Echoed](t, resp)
			if got.Upstream != tt.wantUpstream || got.Path != tt.wantPath {
				t.Errorf("reached %s%s, want %s%s", got.Upstream, got.Path, tt.wantUpstream, tt.wantPath)
			}
			if got.Headers["X-User-Id"] != tt.wantUser {
				t.Errorf("X-User-Id = %q, want %q", got.Headers["X-User-Id"], tt.wantUser)
			}
			if tt.wantUser != "" {
				want := map[string]string{"X-Profile-Id": "profile-7", "X-Session-Id": "session-1", "X-Client-Id": "stb", "X-Scopes": "openid catalog"}
				for h, v := range want {
					if got.Headers[h] != v {
						t.Errorf("%s = %q, want %q", h, got.Headers[h], v)
					}
				}
			} else {
				for _, h := range []string{"X-Profile-Id", "X-Scopes", "X-Legacy-User"} {
					if v, ok := got.Headers[h]; ok {
						t.Errorf("%s = %q reached the upstream of an anonymous request", h, v)
					}
				}
			}
			if tt.spoof && tt.wantUser != "" && got.Headers["X-Legacy-User"] != "2" {
				t.Errorf("X-Legacy-User = %q, want the nested claim 2", got.Headers["X-Legacy-User"])
			}
			_, hasAuth := got.Headers["Authorization"]
			if hasAuth != tt.wantAuthForwards {
				t.Errorf("Authorization forwarded = %v, want %v", hasAuth, tt.wantAuthForwards)
			}
			if got.Headers["X-Request-Id"] == "" || resp.Header.Get("X-Request-Id") != got.Headers["X-Request-Id"] {
				t.Errorf("request id: upstream %q, response %q", got.Headers["X-Request-Id"], resp.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestEndToEndRefusals(t *testing.T) {
	yml, _, _ := twoUpstreams(t)
	g := startGateway(t, yml)
	valid := g.token(t, nil)
	forgedTok := testkit.NewKey(t, "ES256", "").Sign(t, jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "admin", "type": "access", "exp": time.Now().Add(time.Hour).Unix(),
	}, nil)

	tests := []struct {
		name      string
		path      string
		auth      string // the whole Authorization header; "" for none
		wantCode  int
		wantError string // error in body
		wantWWW   string
	}{
		{"missing", "/x", "", 401, "missing_token", `Bearer realm="tollgate"`},
		{"basic scheme", "/x", "Basic dXNlcjpwYXNz", 401, "invalid_request", `Bearer realm="tollgate", error="invalid_request"`},
		{"expired", "/x", "Bearer " + g.token(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), 401, "invalid_token", `Bearer realm="tollgate", error="invalid_token", error_description="token expired"`},
		{"wrong audience", "/x", "Bearer " + g.token(t, func(c jwt.MapClaims) { c["aud"] = "someone-else" }), 401, "invalid_token", `error="invalid_token"`},
		{"refresh token", "/x", "Bearer " + g.token(t, func(c jwt.MapClaims) { c["type"] = "refresh" }), 401, "invalid_token", `error="invalid_token"`},
		{"forged signature", "/x", "Bearer " + forgedTok, 401, "invalid_token", `error="invalid_token"`},
		{"garbage", "/x", "Bearer not.a.jwt", 401, "invalid_token", `error="invalid_token"`},
		{"missing scope", "/admin/users", "Bearer " + valid, 403, "insufficient_scope", `Bearer realm="tollgate", error="insufficient_scope"`},
		{"optional route with a bad token", "/catalog", "Bearer not.a.jwt", 401, "invalid_token", `error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			resp := g.do(t, http.MethodGet, tt.path, "", hdr...)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if www := resp.Header.Get("WWW-Authenticate"); !strings.Contains(www, tt.wantWWW) {
				t.Errorf("WWW-Authenticate %q does not contain %q", www, tt.wantWWW)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			body := decode[map[string]string](t, resp)
			if body["error"] != tt.wantError {
				t.Errorf("error %q, want %q", body["error"], tt.wantError)
			}
			if tt.auth != "" && strings.Contains(fmt.Sprint(body), strings.TrimPrefix(tt.auth, "Bearer ")) {
				t.Error("the token is echoed in the error body")
			}
		})
	}
}

func TestEndToEndUpstreamFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - {name: down, url: "http://%s"}
  - {name: slow, url: %q}
routes:
  - {prefix: /down, upstream: down}
  - {prefix: /slow, upstream: slow}
`, closedAddr, slow.URL), "TOLLGATE_UPSTREAM_TIMEOUT=100ms")
	tok := g.token(t, nil)

	for _, tt := range []struct {
		path      string
		wantCode  int
		wantError string
	}{
		{"/down/x", http.StatusBadGateway, "bad_gateway"},
		{"/slow/x", http.StatusGatewayTimeout, "gateway_timeout"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			resp := g.do(t, http.MethodGet, tt.path, tok)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if body := decode[map[string]string](t, resp); body["error"] != tt.wantError {
				t.Errorf("error %q, want %q", body["error"], tt.wantError)
			}
		})
	}
}

func TestEndToEndWebSocket(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			reply := append([]byte(r.Header.Get("X-User-Id")+": "), msg...)
			if err := c.Write(r.Context(), typ, reply); err != nil {
				return
			}
		}
	}))
	t.Cleanup(upstream.Close)
	g := startGateway(t, "", "TOLLGATE_UPSTREAM_URL="+upstream.URL)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+g.token(t, nil))
	h.Set("X-User-Id", "spoofed")
	c, resp, err := websocket.Dial(ctx, "ws://"+g.m.PublicAddr()+"/live", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, msg := range []string{"hello", "again"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := "user-42: " + msg; string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")

	// Without a token the upgrade is refused before reaching the upstream.
	_, resp, err = websocket.Dial(ctx, "ws://"+g.m.PublicAddr()+"/live", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated dial: err %v, resp %v", err, resp)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "finished")
	}))
	t.Cleanup(upstream.Close)
	g := startGateway(t, "", "TOLLGATE_UPSTREAM_URL="+upstream.URL, "TOLLGATE_DRAIN_TIMEOUT=10s")
	admin := "http://" + g.m.AdminAddr()
	if resp := get(t, admin+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz before shutdown: %d", resp.StatusCode)
	}

	type result struct {
		body string
		err  error
	}
	inflight := make(chan result, 1)
	req, _ := http.NewRequest(http.MethodGet, g.url+"/slow", nil)
	req.Header.Set("Authorization", "Bearer "+g.token(t, nil))
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{string(b), err}
	}()
	<-arrived

	closed := make(chan error, 1)
	go func() { closed <- g.m.Close() }()
	// Readiness fails as soon as shutdown begins; the admin listener stays
	// up while the public one drains.
	waitFor(t, func() bool {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	if r := <-inflight; r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(g.url + "/after"); err == nil {
		t.Error("the public listener still accepts after Close")
	}
}

// waitFor polls cond, bounded in count; each attempt is a real round trip,
// so no sleeping is needed.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
	}
	t.Fatal("condition never held")
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestAdminEndpoints(t *testing.T) {
	g := startGateway(t, "", "TOLLGATE_UPSTREAM_URL="+testkit.Echo(t, "u").URL)
	admin := "http://" + g.m.AdminAddr()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nope": 404} {
		if resp := get(t, admin+path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	body, _ := io.ReadAll(get(t, admin+"/metrics").Body)
	if !strings.Contains(string(body), "tollgate_build_info{") {
		t.Error("tollgate_build_info missing from /metrics")
	}
	// The admin endpoints are not reachable on the public listener.
	if resp := get(t, g.url+"/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("public /metrics: %d, want 401 from the proxy", resp.StatusCode)
	}
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("routes:\n  - {prefix: /x, upstream: nowhere, auth: sometimes}\n"), 0o600)
	var stdout, stderr strings.Builder
	err := run(t.Context(), []string{"check-config"}, []string{
		"TOLLGATE_LEEWAY=soon",
		"TOLLGATE_LOG_FORMAT=xml",
		"TOLLGATE_AUDIENCE=api",
		"TOLLGATE_AUDIANCE=typo",
	}, nil, &stdout, &stderr)
	if err == nil {
		t.Fatal("check-config accepted a broken configuration")
	}
	for _, want := range []string{"LEEWAY", "TOLLGATE_LOG_FORMAT", "TOLLGATE_ISSUER", "no route", "no trusted issuer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if !strings.Contains(stderr.String(), "TOLLGATE_AUDIANCE") {
		t.Errorf("no warning for the unknown variable: %q", stderr.String())
	}

	// Building the parts reports their problems too, all at once.
	err = run(t.Context(), []string{"check-config"}, []string{
		"TOLLGATE_CONFIG_FILE=" + bad,
		"TOLLGATE_ISSUER=" + testIssuer,
		"TOLLGATE_AUDIENCE=api",
		"TOLLGATE_VERIFY_KEYS=" + filepath.Join(dir, "missing.pem"),
	}, nil, &stdout, &stderr)
	if err == nil {
		t.Fatal("check-config accepted a broken configuration")
	}
	for _, want := range []string{"missing.pem", "nowhere", "sometimes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}

	key := testkit.NewKey(t, "ES256", "")
	stdout.Reset()
	err = run(t.Context(), []string{"check-config"}, []string{
		"TOLLGATE_UPSTREAM_URL=http://127.0.0.1:1",
		"TOLLGATE_ISSUER=" + testIssuer,
		"TOLLGATE_AUDIENCE=api",
		"TOLLGATE_VERIFY_KEYS=" + writeKey(t, dir, key),
	}, nil, &stdout, &stderr)
	if err != nil || !strings.Contains(stdout.String(), "configuration ok") {
		t.Fatalf("valid configuration refused: %v", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"frobnicate"}, nil, nil, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "usage") {
		t.Fatalf("err %v, stderr %q", err, errOut.String())
	}
	if err := run(t.Context(), []string{"version"}, nil, nil, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "tollgate ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
}

// TestTokenCacheSize checks TOLLGATE_TOKEN_CACHE_SIZE end to end: the
// default caches a verified token, 0 turns the cache off, and values out
// of range are refused by name.
func TestTokenCacheSize(t *testing.T) {
	for _, tt := range []struct {
		env                string
		wantHits, wantSize float64
	}{
		{"", 2, 1},
		{"TOLLGATE_TOKEN_CACHE_SIZE=500", 2, 1},
		{"TOLLGATE_TOKEN_CACHE_SIZE=0", 0, 0},
	} {
		t.Run(tt.env, func(t *testing.T) {
			env := []string{"TOLLGATE_UPSTREAM_URL=" + testkit.Echo(t, "u").URL}
			if tt.env != "" {
				env = append(env, tt.env)
			}
			g := startGateway(t, "", env...)
			tok := g.token(t, nil)
			for range 3 {
				if resp, b := send(t, http.MethodGet, g.url+"/x", "", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
					t.Fatalf("%d: %s", resp.StatusCode, b)
				}
			}
			after := scrape(t, g.m)
			if got := value(after, "tollgate_token_cache_hits_total", nil); got != tt.wantHits {
				t.Errorf("cache hits %v, want %v", got, tt.wantHits)
			}
			if got := value(after, "tollgate_token_cache_entries", nil); got != tt.wantSize {
				t.Errorf("cache entries %v, want %v", got, tt.wantSize)
			}
		})
	}
	// The documented default holds a replica's share of a large fleet.
	if cfg, _, err := LoadConfig([]string{"TOLLGATE_UPSTREAM_URL=http://127.0.0.1:1", "TOLLGATE_ISSUER=https://id.test",
		"TOLLGATE_AUDIENCE=api", "TOLLGATE_JWKS_URLS=https://id.test/jwks"}); err != nil {
		t.Error(err)
	} else if cfg.TokenCacheSize != 100_000 {
		t.Errorf("default TOLLGATE_TOKEN_CACHE_SIZE %d, want 100000", cfg.TokenCacheSize)
	}
	for _, bad := range []string{"-1", "10000001", "many"} {
		_, _, err := LoadConfig([]string{"TOLLGATE_UPSTREAM_URL=http://127.0.0.1:1", "TOLLGATE_TOKEN_CACHE_SIZE=" + bad})
		if err == nil || !strings.Contains(err.Error(), "TOKEN_CACHE_SIZE") {
			t.Errorf("TOLLGATE_TOKEN_CACHE_SIZE=%s: %v", bad, err)
		}
	}
}

// TestUpstreamKeepAlivePool checks TOLLGATE_UPSTREAM_IDLE_CONNS_PER_HOST:
// two rounds of 8 requests held concurrently at the upstream reuse the 8
// connections of the first round with the default pool, and open new ones
// with a pool of 1. The upstream answers with an empty body, for which the
// transport returns the connection to its pool before it hands over the
// response, so the counts are exact.
func TestUpstreamKeepAlivePool(t *testing.T) {
	const parallel = 8
	for _, tt := range []struct {
		env      string
		wantConn func(n int64) bool
	}{
		{"", func(n int64) bool { return n == parallel }},
		{"TOLLGATE_UPSTREAM_IDLE_CONNS_PER_HOST=1", func(n int64) bool { return n >= 2*parallel-1 }},
	} {
		t.Run(tt.env, func(t *testing.T) {
			var conns atomic.Int64
			var arrived sync.WaitGroup
			release := make(chan struct{})
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived.Done()
				<-release
			}))
			up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			up.Start()
			t.Cleanup(up.Close)
			env := []string{"TOLLGATE_UPSTREAM_URL=" + up.URL}
			if tt.env != "" {
				env = append(env, tt.env)
			}
			g := startGateway(t, "", env...)
			tok := "Bearer " + g.token(t, nil)
			for range 2 {
				arrived.Add(parallel)
				release = make(chan struct{})
				var done sync.WaitGroup
				for range parallel {
					done.Go(func() {
						if resp, b := send(t, http.MethodGet, g.url+"/x", "", "Authorization", tok); resp.StatusCode != 200 {
							t.Errorf("%d: %s", resp.StatusCode, b)
						}
					})
				}
				arrived.Wait() // all 8 are at the upstream at once, each on its own connection
				close(release)
				done.Wait()
			}
			if n := conns.Load(); !tt.wantConn(n) {
				t.Errorf("%d upstream connections opened for two rounds of %d", n, parallel)
			}
		})
	}
	_, _, err := LoadConfig([]string{"TOLLGATE_UPSTREAM_URL=http://127.0.0.1:1", "TOLLGATE_UPSTREAM_IDLE_CONNS_PER_HOST=300"})
	if err == nil || !strings.Contains(err.Error(), "IDLE_CONNS") {
		t.Errorf("a per-host pool larger than the whole pool was accepted: %v", err)
	}
}
