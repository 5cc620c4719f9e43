package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/proxy"
	"github.com/tollgate/tollgate/verifier"
)

const (
	iss = "https://issuer.test"
	aud = "api"
)

type fixture struct {
	key *testkit.Key
	v   *verifier.Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key := testkit.NewKey(t, "ES256", "k1")
	v, err := verifier.New(verifier.Config{Leeway: time.Minute, Issuers: []verifier.IssuerConfig{{
		Issuer: iss, Audiences: []string{aud},
		Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: key.KID, Algorithms: []string{key.Alg}, Public: key.Public()})},
	}}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{key: key, v: v}
}

// token mints an access token (typ at+jwt, kid k1); edit adjusts the
// claims, whose scope is a JSON array.
func (f *fixture) token(t testing.TB, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": "u-1", "sid": "s-1", "profile": "p-1", "client_id": "stb",
		"scope": []any{"openid", "catalog"}, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return f.key.Access(t, c)
}

func newProxy(t testing.TB, cfg proxy.Config, v proxy.Verifier, opts ...proxy.Option) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(cfg, v, zap.NewNop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRoutingAndRewrite(t *testing.T) {
	f := newFixture(t)
	a, b := testkit.Echo(t, "a"), testkit.Echo(t, "b")
	p := newProxy(t, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: a.URL}, {Name: "b", URL: b.URL + "/base"}},
		Routes: []proxy.Route{
			{Prefix: "/", Upstream: "a", Auth: proxy.AuthNone},
			{Prefix: "/api", Upstream: "b", Auth: proxy.AuthNone},
			{Prefix: "/api/v2/", Upstream: "b", Auth: proxy.AuthNone, StripPrefix: true},
			{Prefix: "/exact", Upstream: "b", Auth: proxy.AuthNone, StripPrefix: true},
		},
	}, f.v)
	tests := []struct {
		target, wantHost, wantPath, wantQuery string
	}{
		{"/", a.Listener.Addr().String(), "/", ""},
		{"/apix", a.Listener.Addr().String(), "/apix", ""},
		{"/api", b.Listener.Addr().String(), "/base/api", ""},
		{"/api/v1/x?q=1", b.Listener.Addr().String(), "/base/api/v1/x", "q=1"},
		{"/api/v2", b.Listener.Addr().String(), "/base/", ""},
		{"/api/v2/vms/7", b.Listener.Addr().String(), "/base/vms/7", ""},
		{"/api/v2x", b.Listener.Addr().String(), "/base/api/v2x", ""},
		{"/exact/a%20b", b.Listener.Addr().String(), "/base/a b", ""},
		{"/EXACT/c", b.Listener.Addr().String(), "/base/c", ""}, // prefixes match in any case
		{"/API/V2/vms/8", b.Listener.Addr().String(), "/base/vms/8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := serve(p, httptest.NewRequest(http.MethodGet, tt.target, nil))
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var got testkit.Echoed
			json.Unmarshal(rec.Body.Bytes(), &got)
			if got.Host != tt.wantHost || got.Path != tt.wantPath || got.Query != tt.wantQuery {
				t.Errorf("upstream saw host %s path %s query %q; want %s %s %q", got.Host, got.Path, got.Query, tt.wantHost, tt.wantPath, tt.wantQuery)
			}
			if got.Header.Get("X-Forwarded-For") == "" || got.Header.Get("X-Forwarded-Host") != "example.com" || got.Header.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("X-Forwarded-*: %v", got.Header)
			}
		})
	}
}

// TestNoRouteAndNonCanonicalPaths: every path an upstream could read
// differently from the route table is refused before routing — the attack
// paths of a penetration test among them — and prefixes match in any case
// unless a route asks for exact case.
func TestNoRouteAndNonCanonicalPaths(t *testing.T) {
	f := newFixture(t)
	p := newProxy(t, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: testkit.Echo(t, "a").URL}},
		Routes: []proxy.Route{
			{Prefix: "/public", Upstream: "a", Auth: proxy.AuthNone},
			{Prefix: "/open", Upstream: "a", Auth: proxy.AuthNone, StripPrefix: true},
			{Prefix: "/admin", Upstream: "a", Roles: []string{"ADMIN"}},
			{Prefix: "/Exact", Upstream: "a", Auth: proxy.AuthNone, CaseSensitive: true},
			{Prefix: "/", Upstream: "a"},
		},
	}, f.v)
	user := "Bearer " + f.token(t, nil) // no ADMIN role
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/public/ok", 200},
		{"/public/..hidden-but-fine", 200},
		{"/public/a%20b", 200},
		{"/ADMIN/users", 403}, // the admin route in another case
		{"/Admin/users", 403},
		{"/admin/users", 403},
		{"/public/../admin/users", 400},
		{"/public/%2e%2e/admin/users", 400},
		{"/public/./x", 400},
		{"/public//x", 400},
		{"/public/%2E%2E%2Fadmin%2Fx", 400},
		{"/admin/users/../../public/x", 400},
		{"/admin;x/users", 400},
		{"/admin%3Bx/users", 400},
		{"/admin%5Cusers", 400},
		{"/admin\\users", 400},
		{"/admin%20/users", 400},
		{"/%20admin/users", 400},
		{"/admin%00/users", 400},
		{"/admin%0a/users", 400},
		{"/public/..;/admin/users", 400},
		{"/public/..%5Cadmin", 400},
		{"/public/%252e%252e/admin", 400},
		{"/open/..;/secret", 400},
		{"/public/a%2Fb", 400},
		{"/public/a%2eb", 400},
	} {
		req := httptest.NewRequest(http.MethodGet, "http://gw.test"+tc.target, nil)
		req.Header.Set("Authorization", user)
		if rec := serve(p, req); rec.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.target, rec.Code, tc.want, rec.Body)
		}
	}
	// Without a token: /Exact (auth none, exact case) serves /Exact/x but
	// not /exact/x, which falls to the catch-all and its auth.
	for target, want := range map[string]int{"/Exact/x": 200, "/exact/x": 401, "/other": 401, "/PUBLIC/x": 200} {
		if rec := serve(p, httptest.NewRequest(http.MethodGet, target, nil)); rec.Code != want {
			t.Errorf("%s without a token: %d, want %d", target, rec.Code, want)
		}
	}
}

func TestIdentityHeaders(t *testing.T) {
	f := newFixture(t)
	p := newProxy(t, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: testkit.Echo(t, "a").URL}},
		Routes: []proxy.Route{
			{Prefix: "/req", Upstream: "a"},
			{Prefix: "/opt", Upstream: "a", Auth: proxy.AuthOptional},
			{Prefix: "/none", Upstream: "a", Auth: proxy.AuthNone},
			{Prefix: "/drop", Upstream: "a", DropAuthorization: true},
			{Prefix: "/none-fwd", Upstream: "a", Auth: proxy.AuthNone, ForwardAuthorization: true},
		},
		Headers: []proxy.HeaderMapping{
			{Header: "X-User-Id", Claim: "sub"},
			{Header: "x-legacy-user", Claim: "data.userId"},
			{Header: "X-Site-Id", Claim: "siteId"},
			{Header: "X-Scopes", Claim: "scope"},
			{Header: "X-Roles", Claim: "roles"},
			{Header: "X-Flag", Claim: "flag"},
			{Header: "X-Evil", Claim: "evil"},
			{Header: "X-Obj", Claim: "data"},
		},
	}, f.v)
	tok := f.token(t, func(c jwt.MapClaims) {
		c["data"] = map[string]any{"userId": "2"}
		c["siteId"] = 10115
		c["roles"] = []any{"AGENT", "ADMIN"}
		c["flag"] = true
		c["evil"] = "x\r\nX-User-Id: admin"
	})
	spoof := func(r *http.Request) {
		for _, h := range []string{"X-User-Id", "X-Legacy-User", "X-Site-Id", "X-Scopes", "X-Roles", "X-Flag", "X-Evil", "X-Obj",
			"X-Original-URL", "X-Rewrite-URL", "X-Remote-User", "X-Forwarded-User", "X-Authenticated-User", "X-Real-IP", "X-Forwarded-Prefix", "X-Forwarded-Port"} {
			r.Header.Add(h, "spoofed")
		}
		r.Header["X_Remote_User"] = []string{"admin"}
		r.Header["x-user-id"] = []string{"lowercase-spoof"}  // non-canonical key
		r.Header["X_User_Id"] = []string{"underscore-spoof"} // CGI-style servers read it as X-User-Id
		r.Header.Set("Connection", "X-User-Id, X-Legacy-User")
		r.Header.Set("X-Device-Serial", "STB-0042") // an ordinary header: forwarded as it is
		r.Header.Add("Accept", "application/json")
		r.Header.Add("Accept", "text/plain")
	}
	tests := []struct {
		path     string
		token    string
		want     map[string]string // "" = absent
		wantAuth bool
	}{
		{"/req", tok, map[string]string{"X-User-Id": "u-1", "X-Legacy-User": "2", "X-Site-Id": "10115", "X-Scopes": "openid catalog", "X-Roles": "AGENT ADMIN", "X-Flag": "true", "X-Evil": "", "X-Obj": ""}, true},
		{"/opt", "", map[string]string{"X-User-Id": "", "X-Legacy-User": "", "X-Site-Id": "", "X-Scopes": "", "X-Obj": ""}, false},
		{"/opt", tok, map[string]string{"X-User-Id": "u-1", "X-Legacy-User": "2"}, true},
		{"/none", tok, map[string]string{"X-User-Id": "", "X-Legacy-User": "", "X-Scopes": ""}, false}, // unverified: not forwarded
		{"/none-fwd", tok, map[string]string{"X-User-Id": ""}, true},
		{"/drop", tok, map[string]string{"X-User-Id": "u-1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.path+map[bool]string{true: " with token", false: " anonymous"}[tt.token != ""], func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			spoof(req)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := serve(p, req)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var got testkit.Echoed
			json.Unmarshal(rec.Body.Bytes(), &got)
			for h, want := range tt.want {
				vals := got.Header.Values(h)
				if want == "" && len(vals) > 0 {
					t.Errorf("%s reached the upstream: %q", h, vals)
				}
				if want != "" && (len(vals) != 1 || vals[0] != want) {
					t.Errorf("%s = %q, want [%s]", h, vals, want)
				}
			}
			if len(got.Header["x-user-id"])+len(got.Header["X_user_id"])+len(got.Header["X_User_Id"])+len(got.Header["X_Remote_User"]) > 0 {
				t.Errorf("non-canonical spoof reached the upstream")
			}
			for _, h := range []string{"X-Original-URL", "X-Rewrite-URL", "X-Remote-User", "X-Forwarded-User", "X-Authenticated-User", "X-Real-IP", "X-Forwarded-Prefix", "X-Forwarded-Port"} {
				if v := got.Header.Values(h); len(v) > 0 {
					t.Errorf("%s reached the upstream: %q", h, v)
				}
			}
			if got.Header.Get("X-Device-Serial") != "STB-0042" || !slices.Equal(got.Header["Accept"], []string{"application/json", "text/plain"}) ||
				got.Header.Get("X-Forwarded-For") == "" || got.Header.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("ordinary and forwarding headers: %v", got.Header)
			}
			if has := got.Header.Get("Authorization") != ""; has != tt.wantAuth {
				t.Errorf("Authorization forwarded = %v, want %v", has, tt.wantAuth)
			}
		})
	}
}

// TestRouteIssuers: identity headers say which issuer vouched for them
// (X-User-Issuer), and a route may accept only some issuers, so a partner's
// identity provider cannot assert roles for a route meant for tollgate's own
// users.
func TestRouteIssuers(t *testing.T) {
	own, partner := testkit.NewKey(t, "ES256", "own"), testkit.NewKey(t, "ES256", "partner")
	v, err := verifier.New(verifier.Config{Issuers: []verifier.IssuerConfig{
		{Issuer: "https://own.test", Audiences: []string{"api"}, Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: "own", Algorithms: []string{"ES256"}, Public: own.Public()})}},
		{Issuer: "https://partner.test", Audiences: []string{"api"}, Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: "partner", Algorithms: []string{"ES256"}, Public: partner.Public()})}},
	}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: testkit.Echo(t, "a").URL}},
		Routes: []proxy.Route{
			{Prefix: "/admin", Upstream: "a", Roles: []string{"ADMIN"}, Issuers: []string{"https://own.test"}},
			{Prefix: "/", Upstream: "a"},
		},
	}, v)
	admin := func(k *testkit.Key, iss string) string {
		return "Bearer " + k.Access(t, testkit.Claims(iss, "api", time.Now(), func(c jwt.MapClaims) { c["role"] = "ADMIN" }))
	}
	for _, tc := range []struct {
		path, auth, iss string
		want            int
	}{
		{"/admin/x", admin(own, "https://own.test"), "https://own.test", 200},
		{"/admin/x", admin(partner, "https://partner.test"), "", 401},
		{"/other", admin(partner, "https://partner.test"), "https://partner.test", 200},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("Authorization", tc.auth)
		req.Header.Set("X-User-Issuer", "https://own.test") // spoofed
		rec := serve(p, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.path, rec.Code, tc.want, rec.Body)
			continue
		}
		if tc.want == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), "untrusted issuer") {
			t.Errorf("refusal: %q", rec.Header().Get("WWW-Authenticate"))
		}
		if tc.want == 200 {
			var got testkit.Echoed
			json.Unmarshal(rec.Body.Bytes(), &got)
			if iss := got.Header.Values("X-User-Issuer"); len(iss) != 1 || iss[0] != tc.iss {
				t.Errorf("%s: X-User-Issuer %q, want %s", tc.path, iss, tc.iss)
			}
		}
	}
}

// authObserver records auth decisions and upstream outcomes.
type authObserver struct {
	mu        sync.Mutex
	decisions []string // route:reason
	upstreams []string // upstream:code:kind
}

func (o *authObserver) AuthDecision(_ context.Context, route, reason string) {
	o.mu.Lock()
	o.decisions = append(o.decisions, route+":"+reason)
	o.mu.Unlock()
}

func (o *authObserver) Upstream(_ context.Context, upstream string, code int, _ time.Duration, kind string) {
	o.mu.Lock()
	o.upstreams = append(o.upstreams, upstream+":"+http.StatusText(code)+":"+kind)
	o.mu.Unlock()
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	obs := &authObserver{}
	p := newProxy(t, proxy.Config{
		Realm:     `video "api"`,
		Upstreams: []proxy.Upstream{{Name: "a", URL: testkit.Echo(t, "a").URL}},
		Routes: []proxy.Route{
			{Name: "api", Prefix: "/", Upstream: "a"},
			{Name: "admin", Prefix: "/admin", Upstream: "a", Scopes: []string{"admin", "write"}},
			{Name: "agents", Prefix: "/agents", Upstream: "a", Roles: []string{"AGENT"}},
		},
	}, f.v, proxy.WithObserver(obs))
	realm := `Bearer realm="video \"api\""`
	tests := []struct {
		name, path string
		auth       []string
		code       int
		www        string
		errCode    string
		decision   string
	}{
		{"missing", "/x", nil, 401, realm, "missing_token", "api:missing"},
		{"empty bearer", "/x", []string{"Bearer "}, 401, realm + `, error="invalid_request", error_description="the Authorization header is not one Bearer token"`, "invalid_request", "api:invalid_request"},
		{"two headers", "/x", []string{"Bearer a.b.c", "Bearer d.e.f"}, 401, realm + `, error="invalid_request"`, "invalid_request", "api:invalid_request"},
		{"basic", "/x", []string{"Basic dTpw"}, 401, realm + `, error="invalid_request"`, "invalid_request", "api:invalid_request"},
		{"not a b64token", "/x", []string{"Bearer a.b,c.d"}, 401, realm + `, error="invalid_request"`, "invalid_request", "api:invalid_request"},
		{"valid token then a space", "/x", []string{"Bearer " + f.token(t, nil) + " "}, 401, realm + `, error="invalid_request"`, "invalid_request", "api:invalid_request"},
		{"padding inside", "/x", []string{"Bearer a=.b.c"}, 401, realm + `, error="invalid_request"`, "invalid_request", "api:invalid_request"},
		{"b64token, not a jwt", "/x", []string{"Bearer abc=="}, 401, realm + `, error="invalid_token", error_description="malformed token"`, "invalid_token", "api:malformed"},
		{"expired", "/x", []string{"Bearer " + f.token(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })}, 401,
			realm + `, error="invalid_token", error_description="token expired"`, "invalid_token", "api:expired"},
		{"wrong audience", "/x", []string{"bearer " + f.token(t, func(c jwt.MapClaims) { c["aud"] = "x" })}, 401,
			realm + `, error="invalid_token", error_description="wrong audience"`, "invalid_token", "api:wrong_audience"},
		{"refresh token", "/x", []string{"Bearer " + f.token(t, func(c jwt.MapClaims) { c["type"] = "refresh" })}, 401,
			realm + `, error="invalid_token", error_description="not an access token"`, "invalid_token", "api:wrong_type"},
		{"scope missing", "/admin", []string{"Bearer " + f.token(t, func(c jwt.MapClaims) { c["scope"] = "admin read" })}, 403,
			realm + `, error="insufficient_scope", error_description="the token lacks a required scope", scope="admin write"`, "insufficient_scope", "admin:insufficient_scope"},
		{"scopes granted", "/admin", []string{"Bearer " + f.token(t, func(c jwt.MapClaims) { c["scope"] = "write admin" })}, 200, "", "", "admin:ok"},
		{"role missing", "/agents", []string{"Bearer " + f.token(t, nil)}, 403, realm + `, error="insufficient_scope"`, "insufficient_scope", "agents:insufficient_scope"},
		{"role claim", "/agents", []string{"Bearer " + f.token(t, func(c jwt.MapClaims) { c["role"] = "AGENT" })}, 200, "", "", "agents:ok"},
		{"keycloak roles", "/agents", []string{"Bearer " + f.token(t, func(c jwt.MapClaims) { c["realm_access"] = map[string]any{"roles": []any{"x", "AGENT"}} })}, 200, "", "", "agents:ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs.mu.Lock()
			obs.decisions = nil
			obs.mu.Unlock()
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			rec := serve(p, req)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if www := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(www, tt.www) || (tt.www == "" && www != "") {
				t.Errorf("WWW-Authenticate = %s\nwant prefix   %s", www, tt.www)
			}
			if tt.errCode != "" {
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != tt.errCode || body["error_description"] == "" {
					t.Errorf("body %s (%v)", rec.Body, err)
				}
				if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != "application/json" {
					t.Errorf("headers %v", rec.Header())
				}
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.decisions) != 1 || obs.decisions[0] != tt.decision {
				t.Errorf("decisions %v, want [%s]", obs.decisions, tt.decision)
			}
		})
	}
}

func TestUpstreamErrorKinds(t *testing.T) {
	f := newFixture(t)
	obs := &authObserver{}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	p := newProxy(t, proxy.Config{
		ResponseHeaderTimeout: 50 * time.Millisecond,
		Upstreams:             []proxy.Upstream{{Name: "down", URL: down.URL}, {Name: "slow", URL: slow.URL}},
		Routes:                []proxy.Route{{Prefix: "/down", Upstream: "down", Auth: proxy.AuthNone}, {Prefix: "/slow", Upstream: "slow", Auth: proxy.AuthNone}},
	}, f.v, proxy.WithObserver(obs))
	for path, want := range map[string]struct {
		code int
		obs  string
	}{
		"/down": {502, "down::refused"},
		"/slow": {504, "slow::timeout"},
	} {
		obs.mu.Lock()
		obs.upstreams = nil
		obs.mu.Unlock()
		rec := serve(p, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want.code {
			t.Errorf("%s: %d, want %d", path, rec.Code, want.code)
		}
		obs.mu.Lock()
		if len(obs.upstreams) != 1 || obs.upstreams[0] != want.obs {
			t.Errorf("%s: observed %v, want [%s]", path, obs.upstreams, want.obs)
		}
		obs.mu.Unlock()
	}
}

// TestAccessLogInsideEdge: inside the envelope, the proxy names the route,
// upstream, user and auth decision in the access log, forwards the request
// ID upstream, and no log line holds the token or the query string.
func TestAccessLogInsideEdge(t *testing.T) {
	f := newFixture(t)
	core, logs := observer.New(zapcore.DebugLevel)
	p, err := proxy.New(proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "legacy", URL: testkit.Echo(t, "legacy").URL}},
		Routes:    []proxy.Route{{Name: "all", Prefix: "/", Upstream: "legacy"}},
	}, f.v, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	h := edge.New(p, zap.New(core), nil)
	tok := f.token(t, nil)
	for _, auth := range []string{"Bearer " + tok, "Bearer " + tok + "x"} {
		logs.TakeAll()
		req := httptest.NewRequest(http.MethodGet, "/channels?access_token=secret-in-query", nil)
		req.Header.Set("Authorization", auth)
		rec := serve(h, req)
		id := rec.Header().Get("X-Request-Id")
		entries := logs.FilterMessage("request").All()
		if len(entries) != 1 || id == "" {
			t.Fatalf("%d access log lines, id %q", len(entries), id)
		}
		want := map[string]any{"route": "all", "upstream": "legacy", "user": "u-1", "status": int64(200), "request_id": id, "auth": "ok"}
		if rec.Code == 200 {
			var got testkit.Echoed
			json.Unmarshal(rec.Body.Bytes(), &got)
			if got.Header.Get("X-Request-Id") != id {
				t.Errorf("upstream saw id %q, response %q", got.Header.Get("X-Request-Id"), id)
			}
		} else {
			want["user"], want["status"], want["auth"] = "", int64(401), "bad_signature"
		}
		fields := entries[0].ContextMap()
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("log field %s = %v, want %v", k, fields[k], v)
			}
		}
		for _, e := range logs.All() {
			line, _ := json.Marshal(e.ContextMap())
			if strings.Contains(string(line), tok) || strings.Contains(string(line), "secret-in-query") || strings.Contains(e.Message, tok) {
				t.Errorf("a log line holds the token or the query: %s", line)
			}
		}
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := proxy.New(proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: "ftp://x"}, {Name: "", URL: "http://x"}, {Name: "b", URL: "http://b"}, {Name: "b", URL: "http://b"}, {Name: "a", URL: "http://a"}},
		Routes: []proxy.Route{
			{Prefix: "api", Upstream: "b"},
			{Prefix: "/x", Upstream: "nowhere"},
			{Prefix: "/x/", Upstream: "b"},
			{Prefix: "/y", Upstream: "b", Auth: "sometimes"},
			{Prefix: "/z", Upstream: "b", Auth: proxy.AuthNone, Scopes: []string{"s"}},
		},
		Headers: []proxy.HeaderMapping{{Header: "Bad Header", Claim: "sub"}, {Header: "Authorization", Claim: "sub"}, {Header: "X-A", Claim: "a..b"}},
	}, nil, zap.NewNop())
	if !errors.Is(err, proxy.ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`"ftp://x"`, "name is empty", `"b": defined twice`, `"a": defined twice`, "must start with /", `unknown upstream "nowhere"`,
		"routed twice", `auth "sometimes"`, "scopes, roles or issuers need auth", `"Bad Header" is not a valid header name`, "Authorization cannot carry", `"a..b" is invalid`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

// FuzzAuthorizationRefusal checks that the proxy, which verifies before it
// looks at a token's characters, refuses exactly as BearerToken reads the
// header: invalid_request for anything that is not one RFC 6750 Bearer
// credential, invalid_token for a well-formed one that does not verify,
// and only the signed token passes.
func FuzzAuthorizationRefusal(f *testing.F) {
	fx := newFixture(f)
	valid := fx.token(f, nil)
	p := newProxy(f, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: "http://upstream.invalid"}},
		Routes:    []proxy.Route{{Prefix: "/", Upstream: "a"}},
	}, fx.v, proxy.WrapTransport(func(http.RoundTripper) http.RoundTripper { return answer204{} }))
	for _, s := range []string{"Bearer " + valid, "Bearer " + valid + ",", "Bearer " + valid + " x", "bearer  " + valid,
		"Bearer a.b,c.d", "Bearer abc==", "Bearer a=.b.c", "Bearer ~~~", "Bearer \x00", "Basic dTpw", "Bearer "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header["Authorization"] = []string{value}
		rec := serve(p, req)
		tok, status := edge.BearerToken(req.Header)
		var body struct{ Error string }
		json.Unmarshal(rec.Body.Bytes(), &body)
		switch {
		case status == edge.TokenFound && tok == valid:
			if rec.Code != 204 {
				t.Fatalf("the valid token was refused: %d %s", rec.Code, rec.Body)
			}
		case status == edge.TokenFound:
			if rec.Code != 401 || body.Error != "invalid_token" {
				t.Fatalf("%q: %d %s, want 401 invalid_token", value, rec.Code, rec.Body)
			}
		default:
			if rec.Code != 401 || body.Error != "invalid_request" {
				t.Fatalf("%q: %d %s, want 401 invalid_request", value, rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkProxyWithToken(b *testing.B) {
	f := newFixture(b)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	b.Cleanup(up.Close)
	p := newProxy(b, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: up.URL}},
		Routes:    []proxy.Route{{Prefix: "/", Upstream: "a"}},
	}, f.v)
	tok := "Bearer " + f.token(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/channels/1", nil)
		req.Header.Set("Authorization", tok)
		if rec := serve(p, req); rec.Code != 204 {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkBareReverseProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	b.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() }}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/channels/1", nil)
		req.Header.Set("Authorization", "Bearer x")
		if rec := serve(rp, req); rec.Code != 204 {
			b.Fatal(rec.Code)
		}
	}
}

// revokedSessions is a SessionCheck over a fixed set of session ids.
type revokedSessions map[string]bool

func (r revokedSessions) Check(tok *verifier.Token) error {
	if r[tok.SessionID] {
		return verifier.ErrRevoked
	}
	return nil
}

// TestSessionCheck: a token whose session ended is refused as revoked,
// cached or not; other sessions pass.
func TestSessionCheck(t *testing.T) {
	f := newFixture(t)
	obs := &authObserver{}
	p := newProxy(t, proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: testkit.Echo(t, "a").URL}},
		Routes:    []proxy.Route{{Name: "api", Prefix: "/", Upstream: "a"}},
	}, f.v, proxy.WithSessionCheck(revokedSessions{"s-gone": true}), proxy.WithObserver(obs))
	live, gone := f.token(t, nil), f.token(t, func(c jwt.MapClaims) { c["sid"] = "s-gone" })
	for range 2 { // the second time from the verified-token cache
		for tok, want := range map[string]int{live: 200, gone: 401} {
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := serve(p, req)
			if rec.Code != want {
				t.Fatalf("%d, want %d", rec.Code, want)
			}
			if want == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error_description="token revoked"`) {
				t.Errorf("refusal %q", rec.Header().Get("WWW-Authenticate"))
			}
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if !slices.Contains(obs.decisions, "api:revoked") {
		t.Errorf("decisions %v", obs.decisions)
	}
}

// TestSecondProxyOnOneVerifierFailsClosed: the verifier keeps the header
// values of the first proxy that asks (its Memo key) and drops a cached
// token's claims. A second proxy on the same verifier then has no claims
// to map: it must refuse with 500, never forward the request without the
// identity headers, while the first keeps working.
func TestSecondProxyOnOneVerifierFailsClosed(t *testing.T) {
	f := newFixture(t)
	cfg := proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: testkit.Echo(t, "a").URL}},
		Routes:    []proxy.Route{{Prefix: "/", Upstream: "a"}},
		Headers:   []proxy.HeaderMapping{{Header: "X-User-Id", Claim: "sub"}},
	}
	first, second := newProxy(t, cfg, f.v), newProxy(t, cfg, f.v)
	tok := f.token(t, nil)
	call := func(p *proxy.Proxy) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/channels", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := serve(p, req)
		var got testkit.Echoed
		json.Unmarshal(rec.Body.Bytes(), &got)
		return rec.Code, got.Headers["X-User-Id"]
	}
	for i := range 3 { // a miss, then hits
		if code, user := call(first); code != http.StatusOK || user != "u-1" {
			t.Fatalf("first proxy, request %d: %d, X-User-Id %q", i, code, user)
		}
	}
	if code, user := call(second); code != http.StatusInternalServerError || user != "" {
		t.Errorf("second proxy on the same verifier: %d, X-User-Id %q; want 500 and nothing forwarded", code, user)
	}
	if code, user := call(first); code != http.StatusOK || user != "u-1" {
		t.Errorf("first proxy afterwards: %d, X-User-Id %q", code, user)
	}
}
