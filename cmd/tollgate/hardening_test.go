package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate/tollgate/internal/testkit"
)

// TestScopesComeFromTheRegistry: a client grants only registered scopes
// it lists (the default scope when it lists none), and a scope restricted
// to a role only to users holding it. A self-granted scope no longer
// passes a scope-protected route.
func TestScopesComeFromTheRegistry(t *testing.T) {
	g := startAuthGateway(t, `
upstreams:
  - {name: api, url: `+`"http://127.0.0.1:1"`+`}
routes:
  - {name: catalog, prefix: /catalog, upstream: api, scopes: [catalog]}
scopes:
  - {name: catalog, roles: [AGENT]}
  - {name: billing, users: ["2"]}
clients:
  - id: anonymous
    grants: [password, refresh_token]
  - id: tv-app
    grants: [password, refresh_token]
    scopes: [openid, profile, catalog, billing]
`)
	login := func(client, user, pw, scope string) (int, map[string]any) {
		resp, b := send(t, http.MethodPost, g.url+"/oauth/token", fmt.Sprintf("grant_type=password&client_id=%s&username=%s&password=%s&scope=%s", client, user, pw, scope))
		return resp.StatusCode, jsonObject(t, b)
	}
	for _, tc := range []struct {
		name, client, user, pw, scope string
		status                        int
		code                          string
	}{
		{"client without a list asks for a registered scope", "anonymous", "agent1", "******", "catalog", 400, "invalid_scope"},
		{"client without a list, default scope", "anonymous", "agent1", "******", "openid", 200, ""},
		{"unknown scope", "tv-app", "agent1", "******", "admin", 400, "invalid_scope"},
		{"scope restricted to AGENT, user without the role", "tv-app", "someuser@24i.com", "qwerty123", "catalog", 400, "invalid_scope"},
		{"scope restricted to AGENT, agent", "tv-app", "agent1", "******", "openid catalog", 200, ""},
		{"scope restricted to user 2, another user", "tv-app", "agent1", "******", "billing", 400, "invalid_scope"},
		{"scope restricted to user 2, user 2", "tv-app", "someuser@24i.com", "qwerty123", "billing", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := login(tc.client, tc.user, tc.pw, tc.scope)
			if status != tc.status || tc.code != "" && out["error"] != tc.code {
				t.Fatalf("%d %v, want %d %s", status, out, tc.status, tc.code)
			}
			if tc.code == "" && out["scope"] != tc.scope {
				t.Errorf("granted %v, asked %q", out["scope"], tc.scope)
			}
		})
	}
	// The granted scope opens the scope-protected route; the default does not.
	_, agent := login("tv-app", "agent1", "******", "catalog")
	resp, _ := send(t, http.MethodGet, g.url+"/catalog/1", "", "Authorization", "Bearer "+agent["access_token"].(string))
	if resp.StatusCode != http.StatusBadGateway { // the route's upstream is down: auth passed
		t.Errorf("catalog with the scope: %d", resp.StatusCode)
	}
	_, plain := login("anonymous", "agent1", "******", "")
	resp, _ = send(t, http.MethodGet, g.url+"/catalog/1", "", "Authorization", "Bearer "+plain["access_token"].(string))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("catalog without the scope: %d", resp.StatusCode)
	}
}

// TestProfileTokensNeverOutliveTheSession: a pair minted from an access
// token alone (the profile endpoint) ends when the session ends, however
// often it is chained; only a refresh with the refresh token extends it.
func TestProfileTokensNeverOutliveTheSession(t *testing.T) {
	g, _, _ := exchangeGateway(t)
	resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"qwerty123"}}`)
	if resp.StatusCode != 200 {
		t.Fatal(string(b))
	}
	first := decodeJSONAPI(t, b)
	_, firstRefresh := claimsOf(t, first.Data.Attributes.RefreshToken)
	sessionEnd := firstRefresh["exp"].(float64)
	access := first.Data.Attributes.AccessToken
	for hop := range 3 {
		g.clock.Add(4 * time.Minute) // within the 5-minute access token
		resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/profiles/kids-2/access_tokens", "", "Authorization", "Bearer "+access)
		if resp.StatusCode != 200 {
			t.Fatalf("hop %d: %d %s", hop, resp.StatusCode, b)
		}
		out := decodeJSONAPI(t, b)
		_, rc := claimsOf(t, out.Data.Attributes.RefreshToken)
		_, ac := claimsOf(t, out.Data.Attributes.AccessToken)
		if rc["exp"].(float64) > sessionEnd || ac["exp"].(float64) > sessionEnd || rc["session_exp"] != sessionEnd || ac["session_exp"] != sessionEnd {
			t.Errorf("hop %d: refresh exp %v, access exp %v, session_exp %v/%v; the session ends at %v", hop, rc["exp"], ac["exp"], rc["session_exp"], ac["session_exp"], sessionEnd)
		}
		access = out.Data.Attributes.AccessToken
	}
	// A refresh with the refresh token restarts the session's lifetime.
	resp, b = send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"refresh_token","refresh_token":"`+first.Data.Attributes.RefreshToken+`"}`)
	if resp.StatusCode != 200 {
		t.Fatal(string(b))
	}
	if _, rc := claimsOf(t, decodeJSONAPI(t, b).Data.Attributes.RefreshToken); rc["exp"].(float64) <= sessionEnd {
		t.Errorf("a refresh did not extend the session: %v", rc["exp"])
	}
}

// TestLoginLimits: wrong passwords for one login name are limited (429
// with Retry-After, in the endpoint's dialect), the right password too
// while limited, an unknown name answers exactly like a known one, other
// users keep logging in, and the limit lifts with time. Per client IP, the
// address comes from X-Forwarded-For only behind a trusted proxy.
func TestLoginLimits(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, []string{
		"TOLLGATE_LOGIN_ATTEMPTS_PER_USER=3", "TOLLGATE_LOGIN_USER_REFILL=1m",
		"TOLLGATE_LOGIN_ATTEMPTS_PER_IP=12", "TOLLGATE_LOGIN_IP_REFILL=1m",
	})
	login := func(user, pw string, hdr ...string) (*http.Response, []byte) {
		return send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username="+user+"&password="+pw, hdr...)
	}
	var limited [][]byte
	for _, user := range []string{"someuser@24i.com", "ghost@nowhere"} {
		for i := range 3 {
			if resp, b := login(user, "wrong"); resp.StatusCode != 400 {
				t.Fatalf("%s attempt %d: %d %s", user, i, resp.StatusCode, b)
			}
		}
		resp, b := login(user, "qwerty123")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" || !strings.Contains(string(b), `"too_many_requests"`) {
			t.Fatalf("%s after 3 failures: %d %q %s", user, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		limited = append(limited, b)
	}
	if string(limited[0]) != string(limited[1]) {
		t.Errorf("a limited known user and a limited unknown one answer differently:\n%s\n%s", limited[0], limited[1])
	}
	// The JSON:API dialect says it in its own words.
	resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"qwerty123"}}`)
	if out := decodeJSONAPI(t, b); resp.StatusCode != 429 || len(out.Errors) != 1 || out.Errors[0]["status"] != "429" || out.Errors[0]["code"] != "too_many_requests" {
		t.Errorf("JSON:API while limited: %d %s", resp.StatusCode, b)
	}
	if resp, b := login("agent1", "******"); resp.StatusCode != 200 {
		t.Errorf("another user is locked out: %d %s", resp.StatusCode, b)
	}
	g.clock.Add(time.Minute)
	if resp, b := login("someuser@24i.com", "qwerty123"); resp.StatusCode != 200 {
		t.Errorf("after a minute: %d %s", resp.StatusCode, b)
	}
	// Per IP: 12 attempts in all from this address were allowed (9 failed,
	// 3 refused by the user limit gave theirs back, 2 succeeded); spend the
	// rest, then the address is limited whatever the name.
	for i := 0; ; i++ {
		resp, _ := login(fmt.Sprintf("spray-%d", i), "x")
		if resp.StatusCode == 429 {
			break
		}
		if i > 20 {
			t.Fatal("the per-IP limit never came")
		}
	}
	// 127.0.0.1 is not a trusted proxy: X-Forwarded-For changes nothing.
	if resp, _ := login("agent1", "******", "X-Forwarded-For", "198.51.100.7"); resp.StatusCode != 429 {
		t.Errorf("X-Forwarded-For from an untrusted peer escaped the IP limit: %d", resp.StatusCode)
	}
}

// TestLoginLimitsBehindATrustedProxy: behind a trusted load balancer
// every client has its own per-IP budget.
func TestLoginLimitsBehindATrustedProxy(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, []string{
		"TOLLGATE_LOGIN_ATTEMPTS_PER_IP=2", "TOLLGATE_TRUSTED_PROXIES=127.0.0.1/32,::1",
	})
	login := func(xff string) int {
		resp, _ := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=nobody&password=x", "X-Forwarded-For", xff)
		return resp.StatusCode
	}
	if a, b, c := login("198.51.100.7"), login("198.51.100.7"), login("198.51.100.7"); a != 400 || b != 400 || c != 429 {
		t.Errorf("one client: %d %d %d", a, b, c)
	}
	if code := login("198.51.100.8"); code != 400 {
		t.Errorf("another client behind the same proxy: %d", code)
	}
	if code := login("1.2.3.4, 198.51.100.7"); code != 429 {
		t.Errorf("a forged first hop escaped the limit: %d", code)
	}
}

// TestForgedHS256Tokens: every legacy app holds the shared HMAC secret, so
// tokens forged with it must confer no more than the HS256 client's own
// tokens: no other client, no longer lifetime, no other scope or role, and
// never a refresh token.
func TestForgedHS256Tokens(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-legacy")
	g := startTokenGatewayEnv(t, `
upstreams:
  - {name: api, url: `+`"`+testkit.Echo(t, "api").URL+`"`+`}
routes:
  - {name: admin, prefix: /admin, upstream: api, roles: [ADMIN]}
  - {name: catalog, prefix: /catalog, upstream: api, scopes: [catalog]}
  - {name: rest, prefix: /, upstream: api}
scopes:
  - {name: catalog}
`+sourceDocClients+"  - {id: legacy-stb, grants: [password, refresh_token], signing_alg: HS256, roles: [VIEWER]}\n", true,
		[]string{"TOLLGATE_SESSION_STORE=memory"}, // HS256 clients need a store
		func(dir string) {
			jwk := `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `"}`
			if err := os.WriteFile(filepath.Join(dir, "legacy.jwk"), []byte(jwk), 0o600); err != nil {
				t.Fatal(err)
			}
		})
	// The genuine article first: its kid and claims are what a forger copies.
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=legacy-stb&username=someuser@24i.com&password=qwerty123")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	out := jsonObject(t, b)
	hdr, genuine := claimsOf(t, out["access_token"].(string))
	if strings.Count(out["refresh_token"].(string), ".") == 2 {
		t.Errorf("with a session store the refresh token is a JWT: %.40s…", out["refresh_token"])
	}
	forger := &testkit.Key{Alg: "HS256", KID: hdr["kid"].(string), Private: secret}
	now := g.clock.Now()
	forge := func(edit func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for k, v := range genuine {
			c[k] = v
		}
		c["role"], c["scope"] = "ADMIN", "openid catalog admin"
		c["iat"], c["exp"] = now.Unix(), now.Add(5*time.Minute).Unix()
		if edit != nil {
			edit(c)
		}
		return "Bearer " + forger.Access(t, c)
	}
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"another user in a live session", "/x", forge(func(c jwt.MapClaims) { c["sub"] = "bfeb45d7-50dc-416d-b3c8-35db64d288f3" }), 401},
		{"a made-up session", "/x", forge(func(c jwt.MapClaims) { c["sid"] = "forged-session" }), 401},
		{"role ADMIN the session never had", "/admin/users", forge(nil), 403},
		{"scope catalog the session never had", "/catalog/1", forge(nil), 403},
		{"a year's lifetime", "/x", forge(func(c jwt.MapClaims) { c["exp"] = now.Add(365 * 24 * time.Hour).Unix() }), 401},
		{"in the name of a client that does not sign with HS256", "/x", forge(func(c jwt.MapClaims) { c["client_id"] = "anonymous" }), 401},
		{"within the session's rights", "/x", forge(nil), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := callAPI(t, g, tc.path, tc.auth)
			if code != tc.want {
				t.Fatalf("%d, want %d", code, tc.want)
			}
			if code == 200 && (e.Headers["X-Scopes"] != "openid" || e.Headers["X-Client-Id"] != "legacy-stb" || e.Headers["X-User-Id"] != "2") {
				t.Errorf("the upstream was told %v", e.Headers)
			}
		})
	}
	// Once the session ends, even a token within its rights is refused.
	resp, b = send(t, http.MethodPost, g.url+"/oauth/logout", "client_id=legacy-stb&refresh_token="+out["refresh_token"].(string), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d %s", resp.StatusCode, b)
	}
	if code, _ := callAPI(t, g, "/y", forge(func(c jwt.MapClaims) { c["jti"] = "after-logout" })); code != 401 {
		t.Errorf("a forged token of an ended session: %d", code)
	}
	// A forged HS256 refresh token is no refresh token.
	c := jwt.MapClaims{"iss": genuine["iss"], "aud": genuine["iss"], "sub": "2", "client_id": "legacy-stb", "type": "refresh",
		"sid": "forged", "scope": "openid", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	refresh := forger.Sign(t, c, nil)
	resp, b = send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=refresh_token&client_id=legacy-stb&refresh_token="+refresh)
	if resp.StatusCode != 400 || jsonObject(t, b)["error"] != "invalid_grant" {
		t.Errorf("forged HS256 refresh token: %d %s", resp.StatusCode, b)
	}
	var warned bool
	for _, w := range g.m.warnings {
		warned = warned || strings.Contains(w, "legacy-stb") && strings.Contains(w, "forge")
	}
	if !warned {
		t.Errorf("no warning about the HS256 client: %v", g.m.warnings)
	}
}
