package main

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/issuer"
)

// authGateway is a running gateway with its token endpoints on.
type authGateway struct {
	m       *Main
	url     string
	clock   *testkit.Clock
	keysDir string
	users   string // users file path
	// logs holds every log line, debug included.
	logs *observer.ObservedLogs
}

const client003 = "1d29e6d7-18cf-407d-a064-e4f8c4baefab"

func bcryptHash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// sourceDocUsers are the users the fielded clients log in as (docs/CLIENTS.md).
func sourceDocUsers(t testing.TB) string {
	return `users:
  - id: "2"
    username: someuser@24i.com
    email: someuser@24i.com
    password_hash: "` + bcryptHash(t, "qwerty123") + `"
    profiles: ["4f3d8946-4423-11ea-bbb8-b7af30354b4a", "kids-2"]
  - id: bfeb45d7-50dc-416d-b3c8-35db64d288f3
    username: agent1
    email: client1@company.com
    password_hash: "` + bcryptHash(t, "******") + `"
    profiles: [p-agent]
    role: AGENT
    partner_id: "10000"
    claims: {agentId: "f9683b7b-e332-4864-b725-ac6cdc207dbd", siteId: 10115}
  - id: vm-1
    username: <---USERNAME--->
    password_hash: "` + bcryptHash(t, "<---PASSWORD--->") + `"
    profiles: [vm-profile]
`
}

func startAuthGateway(t *testing.T, clients string, extraKeys ...func(dir string)) *authGateway {
	t.Helper()
	return startTokenGateway(t, clients, true, extraKeys...)
}

// startTokenGateway starts the token endpoints with the YAML config given,
// with or without the users file of the fielded clients.
func startTokenGateway(t *testing.T, clients string, usersFile bool, extraKeys ...func(dir string)) *authGateway {
	t.Helper()
	return startTokenGatewayEnv(t, clients, usersFile, nil, extraKeys...)
}

// startTokenGatewayEnv is startTokenGateway with more TOLLGATE_ variables.
func startTokenGatewayEnv(t *testing.T, clients string, usersFile bool, extraEnv []string, extraKeys ...func(dir string)) *authGateway {
	t.Helper()
	return startTokenGatewayWith(t, clients, usersFile, extraEnv, nil, extraKeys...)
}

// startTokenGatewayWith is startTokenGatewayEnv with options of Main's.
func startTokenGatewayWith(t *testing.T, clients string, usersFile bool, extraEnv []string, opts []mainOption, extraKeys ...func(dir string)) *authGateway {
	t.Helper()
	dir := t.TempDir()
	g := &authGateway{clock: testkit.NewClock(time.Now()), keysDir: filepath.Join(dir, "keys"), users: filepath.Join(dir, "users.yaml")}
	if _, _, err := issuer.GenerateKey(g.keysDir, "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, f := range extraKeys {
		f(g.keysDir)
	}
	if err := os.WriteFile(g.users, []byte(sourceDocUsers(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfgFile, []byte(clients), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.url = "http://" + ln.Addr().String()
	env := []string{
		"TOLLGATE_LISTEN=" + ln.Addr().String(),
		"TOLLGATE_ADMIN_LISTEN=127.0.0.1:0",
		"TOLLGATE_UPSTREAM_URL=" + testkit.Echo(t, "api").URL,
		"TOLLGATE_PUBLIC_URL=" + g.url,
		"TOLLGATE_SIGNING_KEYS_DIR=" + g.keysDir,
		"TOLLGATE_CONFIG_FILE=" + cfgFile,
		"TOLLGATE_SHUTDOWN_DELAY=0s",
		"TOLLGATE_ACCESS_TOKEN_TTL=5m",
		"TOLLGATE_REFRESH_TOKEN_TTL=1h",
		"TOLLGATE_RELOAD_INTERVAL=1h", // tests reload explicitly
	}
	if usersFile {
		env = append(env, "TOLLGATE_USERS_FILE="+g.users)
	}
	env = append(env, extraEnv...)
	cfg, warnings, err := LoadConfig(env)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("LoadConfig: %v %v", err, warnings)
	}
	core, logs := observer.New(zap.DebugLevel) // every line, debug included: tests look for secrets in them
	g.logs = logs
	logger := zap.New(zapcore.NewTee(zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)).Core(), core))
	m, err := NewMain(cfg, logger, append([]mainOption{withClock(g.clock.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.publicLn = ln
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	g.m = m
	return g
}

const sourceDocClients = `
clients:
  - id: anonymous
    grants: [password, refresh_token]
  - id: ` + client003 + `
    grants: [password]
    partner_id: "10000"
  - id: backend
    secret: s3cret-backend
    grants: [password, refresh_token]
`

// send posts body to path exactly as given, with the headers given.
func send(t *testing.T, method, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func jsonObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s", b)
	}
	return m
}

// claimsOf decodes a JWT's payload without verifying it (the tests verify
// through the gateway).
func claimsOf(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("not a JWT: %v", err)
	}
	return p.Header, p.Claims.(jwt.MapClaims)
}

func checkNoStore(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("Cache-Control %q Pragma %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
	}
}

// callAPI calls a proxied route with a token and returns the status and
// what the upstream saw.
func callAPI(t *testing.T, g *authGateway, path, authHeader string) (int, testkit.Echoed) {
	t.Helper()
	resp, b := send(t, http.MethodGet, g.url+path, "", "Authorization", authHeader, "cache-control", "no-cache")
	var e testkit.Echoed
	if resp.StatusCode == 200 {
		json.Unmarshal(b, &e)
	}
	return resp.StatusCode, e
}

// docs/CLIENTS.md §1.1: the JSON:API password login, sent as printed (a JSON
// body labelled form-urlencoded), then the API call with its token; 001:
// renewal with grant_type=refresh_token.
func TestSourceDoc000And001JSONAPI(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	body := `{
"grant_type": "password",
"credentials": {
"username": "someuser@24i.com",
"password": "qwerty123"
}
}`
	resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", body,
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	checkNoStore(t, resp)
	var out struct {
		Data struct {
			Type       string
			ID         string
			Attributes map[string]any
		}
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	a := out.Data.Attributes
	if out.Data.Type != "AuthenticationTokens" || out.Data.ID == "" {
		t.Errorf("data %+v", out.Data)
	}
	if a["user_id"] != "2" || a["user_profile_id"] != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" {
		t.Errorf("attributes %v", a)
	}
	for _, k := range []string{"login_timestamp", "expires_at_timestamp"} {
		if _, ok := a[k].(float64); !ok {
			t.Errorf("%s = %#v, want a number", k, a[k])
		}
	}
	access, _ := a["access_token"].(string)
	refresh, _ := a["refresh_token"].(string)
	if a["expires_at_timestamp"].(float64)-a["login_timestamp"].(float64) != 300 {
		t.Errorf("access lifetime %v", a["expires_at_timestamp"].(float64)-a["login_timestamp"].(float64))
	}
	hdr, c := claimsOf(t, access)
	if hdr["typ"] != "at+jwt" || hdr["kid"] == nil || c["type"] != "access" || c["sub"] != "2" || c["iss"] != g.url ||
		c["profile"] != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" || c["client_id"] != "anonymous" || c["sid"] != out.Data.ID || c["jti"] == nil {
		t.Errorf("access token header %v claims %v", hdr, c)
	}
	if _, rc := claimsOf(t, refresh); rc["type"] != "refresh" || rc["sid"] != c["sid"] || rc["aud"] != g.url {
		t.Errorf("refresh token claims %v", rc)
	}

	// "GET /channels/{channel_id}/relationships/streams" with the token.
	code, seen := callAPI(t, g, "/channels/1/relationships/streams", "Bearer "+access)
	if code != 200 || seen.Headers["X-User-Id"] != "2" || seen.Headers["X-Profile-Id"] != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" {
		t.Fatalf("API call: %d %v", code, seen.Headers)
	}
	// A refresh token is never an access token.
	if code, _ := callAPI(t, g, "/channels/1", "Bearer "+refresh); code != 401 {
		t.Errorf("refresh token as access: %d", code)
	}

	// 001: renew.
	g.clock.Add(time.Minute)
	resp, b = send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens",
		`{"grant_type":"refresh_token","refresh_token":"`+refresh+`"}`, "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %s", resp.StatusCode, b)
	}
	var renewed struct {
		Data struct{ Attributes map[string]any }
	}
	json.Unmarshal(b, &renewed)
	ra := renewed.Data.Attributes
	if ra["access_token"] == access || ra["refresh_token"] == refresh || ra["user_profile_id"] != a["user_profile_id"] || ra["user_id"] != "2" {
		t.Errorf("renewed %v", ra)
	}
	if _, c2 := claimsOf(t, ra["access_token"].(string)); c2["sid"] != c["sid"] || c2["scope"] != c["scope"] {
		t.Errorf("renewal changed the session or scope: %v", c2)
	}
	// An access token is not a refresh token.
	resp, b = send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"refresh_token","refresh_token":"`+access+`"}`)
	if resp.StatusCode != 401 || !strings.Contains(string(b), `"code":"invalid_grant"`) || strings.Contains(string(b), access) {
		t.Errorf("access token as refresh: %d %s", resp.StatusCode, b)
	}

	// JSON:API errors: wrong password, and 000's body exactly as the
	// document prints it (its closing brace lost in the copy) is a 400.
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"nope"}}`, 401, "invalid_grant"},
		{`{"grant_type":"password","credentials":{"username":"nobody@24i.com","password":"qwerty123"}}`, 401, "invalid_grant"},
		{"{\n\"grant_type\": \"password\",\n\"credentials\": {\n\"username\": \"someuser@24i.com\",\n\"password\": \"qwerty123\"\n}", 400, "invalid_request"},
		{`{"grant_type":"client_credentials"}`, 400, "unsupported_grant_type"},
		{`{"grant_type":"password","credentials":{"username":"someuser@24i.com"}}`, 400, "invalid_request"},
	} {
		resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", tc.body, "Content-Type", "application/x-www-form-urlencoded")
		var e struct{ Errors []map[string]string }
		json.Unmarshal(b, &e)
		if resp.StatusCode != tc.status || len(e.Errors) != 1 || e.Errors[0]["code"] != tc.code ||
			e.Errors[0]["status"] != fmt.Sprint(tc.status) || e.Errors[0]["title"] == "" {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, b)
		}
		if strings.Contains(string(b), "qwerty123") {
			t.Error("the password is echoed")
		}
	}
}

// docs/CLIENTS.md §3.2, §3.4: the Keycloak password grant with the spaces its curl
// puts after each &, the refresh request with its leading space, and the
// API call.
func TestSourceDoc002Keycloak(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	tokenURL := g.url + "/auth/realms/platform/protocol/openid-connect/token"
	resp, b := send(t, http.MethodPost, tokenURL,
		`client_id=anonymous& grant_type=password& response_type=token& scope=openid& username=<---USERNAME--->& password=<---PASSWORD--->`,
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 200 {
		t.Fatalf("password grant: %d %s", resp.StatusCode, b)
	}
	checkNoStore(t, resp)
	out := jsonObject(t, b)
	for k, want := range map[string]any{"expires_in": 300.0, "refresh_expires_in": 3600.0, "token_type": "Bearer", "not-before-policy": 0.0, "scope": "openid"} {
		if out[k] != want {
			t.Errorf("%s = %#v, want %#v", k, out[k], want)
		}
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token", "session_state"} {
		if s, _ := out[k].(string); s == "" {
			t.Errorf("%s missing: %s", k, b)
		}
	}
	if _, idc := claimsOf(t, out["id_token"].(string)); idc["aud"] != "anonymous" || idc["sub"] != "vm-1" || idc["sid"] != out["session_state"] {
		t.Errorf("id_token claims %v", idc)
	}

	// The refresh request as printed, leading space included; also at the
	// path without /auth.
	for _, url := range []string{tokenURL, g.url + "/realms/platform/protocol/openid-connect/token"} {
		resp, b = send(t, http.MethodPost, url,
			` grant_type=refresh_token& client_id=anonymous& refresh_token=`+out["refresh_token"].(string),
			"Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode != 200 {
			t.Fatalf("refresh at %s: %d %s", url, resp.StatusCode, b)
		}
		renewed := jsonObject(t, b)
		if renewed["refresh_token"] == out["refresh_token"] || renewed["session_state"] != out["session_state"] || renewed["access_token"] == "" {
			t.Errorf("renewed %v", renewed)
		}
	}
	// "curl -X GET -H "Authorization: Bearer <ACCESS_TOKEN>" …/v1/vms"
	if code, seen := callAPI(t, g, "/v1/vms", "Bearer "+out["access_token"].(string)); code != 200 || seen.Headers["X-User-Id"] != "vm-1" {
		t.Errorf("API call: %d %v", code, seen.Headers)
	}
}

// docs/CLIENTS.md §4.1, §4.2: password grant with email and the partnerId query
// parameter, then userinfo with "Authorization:Bearer" (no space).
func TestSourceDoc003PartnerAndUserinfo(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	body := `client_id=1d29e6d7-18cf-407d-a064-e4f8c4baefab&grant_type=password&email=client1@company.com&password=******`
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token?partnerId=10000", body, "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 200 {
		t.Fatalf("003 login: %d %s", resp.StatusCode, b)
	}
	out := jsonObject(t, b)
	access, _ := out["access_token"].(string)
	if out["token_type"] != "Bearer" || out["expires_in"] != 300.0 || access == "" {
		t.Errorf("token response %v", out)
	}
	if _, c := claimsOf(t, access); c["partnerId"] != "10000" || c["role"] != "AGENT" || c["client_id"] != client003 || c["siteId"] != 10115.0 {
		t.Errorf("claims %v", c)
	}

	// Another partner's id, or none of the client's: invalid_grant.
	resp, b = send(t, http.MethodPost, g.url+"/oauth/token?partnerId=10001", body, "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 400 || jsonObject(t, b)["error"] != "invalid_grant" {
		t.Errorf("wrong partner: %d %s", resp.StatusCode, b)
	}
	// The client allows only the password grant.
	resp, b = send(t, http.MethodPost, g.url+"/oauth/token", "client_id="+client003+"&grant_type=refresh_token&refresh_token="+out["access_token"].(string))
	if resp.StatusCode != 400 || jsonObject(t, b)["error"] != "unauthorized_client" {
		t.Errorf("refresh for a password-only client: %d %s", resp.StatusCode, b)
	}

	resp, b = send(t, http.MethodGet, g.url+"/oauth/userinfo", "", "Authorization", "Bearer "+access)
	if resp.StatusCode != 200 {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, b)
	}
	info := jsonObject(t, b)
	if info["agentId"] != "f9683b7b-e332-4864-b725-ac6cdc207dbd" || info["siteId"] != 10115.0 || info["role"] != "AGENT" || info["sub"] != "bfeb45d7-50dc-416d-b3c8-35db64d288f3" {
		t.Errorf("userinfo %v", info)
	}
	// 003's header has no space after the colon; net/http reads it the same.
	raw, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "GET /oauth/userinfo HTTP/1.1\r\nHost: x\r\nAuthorization:Bearer %s\r\nConnection: close\r\n\r\n", access)
	reply, _ := io.ReadAll(raw)
	if !strings.HasPrefix(string(reply), "HTTP/1.1 200") || !strings.Contains(string(reply), `"agentId"`) {
		t.Errorf("userinfo with Authorization:Bearer: %.200s", reply)
	}
	resp, _ = send(t, http.MethodGet, g.url+"/oauth/userinfo", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("userinfo without a token: %d", resp.StatusCode)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
	}{
		{"unknown grant", "grant_type=client_credentials&client_id=anonymous", nil, 400, "unsupported_grant_type"},
		{"no grant", "client_id=anonymous", nil, 400, "invalid_request"},
		{"missing password", "grant_type=password&client_id=anonymous&username=someuser@24i.com", nil, 400, "invalid_request"},
		{"wrong password", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=x", nil, 400, "invalid_grant"},
		{"unknown user", "grant_type=password&client_id=anonymous&username=ghost&password=x", nil, 400, "invalid_grant"},
		{"unknown client", "grant_type=password&client_id=intruder&username=someuser@24i.com&password=qwerty123", nil, 401, "invalid_client"},
		{"wrong secret", "grant_type=password&client_id=backend&client_secret=guess&username=someuser@24i.com&password=qwerty123", nil, 401, "invalid_client"},
		{"wrong basic secret", "grant_type=password&username=someuser@24i.com&password=qwerty123", []string{"Authorization", "Basic YmFja2VuZDpndWVzcw=="}, 401, "invalid_client"},
		{"right basic secret", "grant_type=password&username=someuser@24i.com&password=qwerty123", []string{"Authorization", "Basic YmFja2VuZDpzM2NyZXQtYmFja2VuZA=="}, 200, ""},
		{"duplicate parameter", "grant_type=password&grant_type=password&client_id=anonymous", nil, 400, "invalid_request"},
		{"bad refresh token", "grant_type=refresh_token&client_id=anonymous&refresh_token=not.a.jwt", nil, 400, "invalid_grant"},
		{"body too large", "grant_type=password&x=" + strings.Repeat("a", 70<<10), nil, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := send(t, http.MethodPost, g.url+"/oauth/token", tt.body, append([]string{"Content-Type", form}, tt.hdr...)...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			checkNoStore(t, resp)
			if tt.code == "" {
				return
			}
			e := jsonObject(t, b)
			if e["error"] != tt.code || e["error_description"] == "" {
				t.Errorf("body %s", b)
			}
			if strings.Contains(string(b), "qwerty123") || strings.Contains(string(b), "guess") {
				t.Error("a secret is echoed")
			}
			if tt.status == 401 && len(tt.hdr) > 0 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate for a Basic client failure")
			}
		})
	}
}

// A real OAuth client (golang.org/x/oauth2) logs in, calls the API, and
// refreshes once the server's clock has passed the access token's expiry;
// a real OIDC library (go-oidc) discovers the issuer and verifies the
// id_token and the access token's signature from the published JWKS.
func TestOAuth2AndOIDCClients(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	ctx := t.Context()
	conf := &oauth2.Config{
		ClientID: "anonymous",
		Endpoint: oauth2.Endpoint{TokenURL: g.url + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{"openid", "profile"},
	}
	tok, err := conf.PasswordCredentialsToken(ctx, "someuser@24i.com", "qwerty123")
	if err != nil {
		t.Fatalf("PasswordCredentialsToken: %v", err)
	}
	if tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.Extra("id_token") == nil {
		t.Fatalf("token %+v", tok)
	}
	api := func(c *http.Client) int {
		resp, err := c.Get(g.url + "/catalog/movies")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := api(oauth2.NewClient(ctx, conf.TokenSource(ctx, tok))); code != 200 {
		t.Fatalf("API with the first token: %d", code)
	}

	// Ten minutes on, the 5-minute access token has expired at the server;
	// the client sees that too and its TokenSource refreshes.
	g.clock.Add(10 * time.Minute)
	if code := api(oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))); code != 401 {
		t.Fatalf("expired access token: %d, want 401", code)
	}
	tok.Expiry = time.Now().Add(-time.Second)
	src := conf.TokenSource(ctx, tok)
	if code := api(oauth2.NewClient(ctx, src)); code != 200 {
		t.Fatalf("API after refresh: %d", code)
	}
	fresh, err := src.Token()
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh did not rotate: %v", err)
	}

	// OIDC discovery and verification.
	provider, err := oidc.NewProvider(ctx, g.url)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	// A refresh that does not ask for openid gets no ID token (the cheap
	// renewal, OIDC Core §12.2); the login's is verified.
	if fresh.Extra("id_token") != nil {
		t.Errorf("a refresh without scope=openid got an id_token")
	}
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=refresh_token&client_id=anonymous&scope=openid+profile&refresh_token="+fresh.RefreshToken)
	idToken, _ := jsonObject(t, b)["id_token"].(string)
	if resp.StatusCode != 200 || idToken == "" {
		t.Fatalf("a refresh asking for openid: %d %s", resp.StatusCode, b)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "anonymous", Now: g.clock.Now}).Verify(ctx, idToken)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	if idt.Subject != "2" || idt.Issuer != g.url {
		t.Errorf("id_token %s %s", idt.Subject, idt.Issuer)
	}
	var endpoints struct {
		JWKS string `json:"jwks_uri"`
	}
	provider.Claims(&endpoints)
	payload, err := oidc.NewRemoteKeySet(ctx, endpoints.JWKS).VerifySignature(ctx, fresh.AccessToken)
	if err != nil || !strings.Contains(string(payload), `"type":"access"`) {
		t.Fatalf("access token signature via JWKS: %v", err)
	}
	if _, err := oidc.NewRemoteKeySet(ctx, endpoints.JWKS).VerifySignature(ctx, fresh.AccessToken[:len(fresh.AccessToken)-4]+"AAAA"); err == nil {
		t.Error("a tampered signature verified")
	}
}

// jwksKids returns the kids the gateway publishes.
func jwksKids(t *testing.T, g *authGateway) []string {
	_, b := send(t, http.MethodGet, g.url+"/.well-known/jwks.json", "")
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func login(t *testing.T, g *authGateway) string {
	t.Helper()
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	return jsonObject(t, b)["access_token"].(string)
}

func TestKeyRotation(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	old := login(t, g)
	oldHdr, _ := claimsOf(t, old)
	_, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
	oldRefresh := jsonObject(t, b)["refresh_token"].(string)
	refreshWith := func(rt string) int {
		resp, _ := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=refresh_token&client_id=anonymous&refresh_token="+rt)
		return resp.StatusCode
	}
	if code := refreshWith(oldRefresh); code != 200 {
		t.Fatalf("refresh before rotation: %d", code)
	}
	if kids := jwksKids(t, g); len(kids) != 1 || kids[0] != oldHdr["kid"] {
		t.Fatalf("published %v, token kid %v", kids, oldHdr["kid"])
	}
	oldFiles, _ := filepath.Glob(filepath.Join(g.keysDir, "*.pem"))

	// A new key (named later, so newest) signs from the next reload on;
	// both keys are published and old tokens still verify.
	if _, newKid, err := issuer.GenerateKey(g.keysDir, "EdDSA", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	} else {
		if err := g.m.keys.Reload(); err != nil {
			t.Fatal(err)
		}
		fresh := login(t, g)
		if h, _ := claimsOf(t, fresh); h["kid"] != newKid || h["alg"] != "EdDSA" {
			t.Errorf("new token header %v, want kid %s", h, newKid)
		}
		if kids := jwksKids(t, g); len(kids) != 2 {
			t.Errorf("published %v, want both keys", kids)
		}
		for name, tok := range map[string]string{"old": old, "new": fresh} {
			if code, _ := callAPI(t, g, "/x", "Bearer "+tok); code != 200 {
				t.Errorf("%s token after rotation: %d", name, code)
			}
		}
		// A bad file is reported and the last good set kept.
		os.WriteFile(filepath.Join(g.keysDir, "zz-broken.pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
		if err := g.m.keys.Reload(); err == nil {
			t.Error("a broken key file was accepted")
		}
		if code, _ := callAPI(t, g, "/x", "Bearer "+fresh); code != 200 {
			t.Errorf("after a broken reload: %d", code)
		}
		os.Remove(filepath.Join(g.keysDir, "zz-broken.pem"))

		// Removing the old key retires its tokens.
		for _, f := range oldFiles {
			os.Remove(f)
		}
		if err := g.m.keys.Reload(); err != nil {
			t.Fatal(err)
		}
		if code, _ := callAPI(t, g, "/x", "Bearer "+old); code != 401 {
			t.Errorf("token of a removed key: %d, want 401", code)
		}
		if code := refreshWith(oldRefresh); code != 400 {
			t.Errorf("refresh token of a removed key: %d, want 400", code)
		}
		if code, _ := callAPI(t, g, "/x", "Bearer "+fresh); code != 200 {
			t.Errorf("token of the remaining key: %d", code)
		}
	}
}

func TestUsersFileEditedWhileServing(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	loginAs := func(user, pw string) int {
		resp, _ := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username="+user+"&password="+pw)
		return resp.StatusCode
	}
	if code := loginAs("newcomer", "pw"); code != 400 {
		t.Fatalf("unknown user: %d", code)
	}
	edited := sourceDocUsers(t) + "  - {id: \"77\", username: newcomer, password_hash: \"" + bcryptHash(t, "pw") + "\"}\n"
	os.WriteFile(g.users, []byte(edited), 0o600)
	if err := g.m.users.Reload(); err != nil {
		t.Fatal(err)
	}
	if code := loginAs("newcomer", "pw"); code != 200 {
		t.Errorf("new user after reload: %d", code)
	}
	os.WriteFile(g.users, []byte("users: [this is: not yaml"), 0o600)
	if err := g.m.users.Reload(); err == nil {
		t.Error("broken users file accepted")
	}
	if code := loginAs("newcomer", "pw"); code != 200 {
		t.Errorf("last good users lost: %d", code)
	}
}

func TestHashPasswordAndKeygen(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"hash-password"}, nil, strings.NewReader("correct horse\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	users := filepath.Join(t.TempDir(), "u.yaml")
	os.WriteFile(users, []byte("users:\n  - {id: \"1\", username: a, password_hash: \""+hash+"\"}\n"), 0o600)
	u, err := identity.New(identity.Config{Path: users}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(context.Background(), "a", []byte("correct horse")); err != nil {
		t.Errorf("hash-password output does not verify: %v", err)
	}
	if err := run(t.Context(), []string{"hash-password"}, nil, strings.NewReader(""), &out, &errOut); err == nil {
		t.Error("empty password accepted")
	}

	dir := t.TempDir()
	out.Reset()
	if err := run(t.Context(), []string{"keygen", "-alg", "RS256"}, []string{"TOLLGATE_SIGNING_KEYS_DIR=" + dir}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	keys, err := issuer.LoadKeys(issuer.KeysConfig{Dir: dir}, zap.NewNop(), nil)
	if err != nil || keys.Current().Algorithm != "RS256" || !strings.Contains(out.String(), keys.Current().ID) {
		t.Fatalf("keygen output %q: %v", out.String(), err)
	}
	if bits := keys.Current().Public().(*rsa.PublicKey).N.BitLen(); bits != issuer.DefaultRSABits {
		t.Errorf("default RSA key of %d bits", bits)
	}
	for _, tc := range []struct {
		args []string
		bits int // 0: refused
	}{
		{[]string{"-alg", "RS256", "-bits", "4096"}, 4096},
		{[]string{"-alg", "RS256", "-bits", "1024"}, 0},
		{[]string{"-alg", "ES256", "-bits", "2048"}, 0},
		{[]string{"-alg", "none"}, 0},
	} {
		d := t.TempDir()
		err := run(t.Context(), append([]string{"keygen", "-dir", d}, tc.args...), nil, nil, &out, &errOut)
		if tc.bits == 0 {
			if err == nil {
				t.Errorf("keygen %v accepted", tc.args)
			}
			continue
		}
		k, lerr := issuer.LoadKeys(issuer.KeysConfig{Dir: d}, nil, nil)
		if err != nil || lerr != nil || k.Current().Public().(*rsa.PublicKey).N.BitLen() != tc.bits {
			t.Errorf("keygen %v: %v %v", tc.args, err, lerr)
		}
	}
	if err := run(t.Context(), []string{"keygen"}, nil, nil, &out, &errOut); err == nil {
		t.Error("keygen without a directory succeeded")
	}
}

// A legacy client whose apps verify tokens with a shared secret gets HS256
// tokens from the HMAC key; that key is never published.
func TestLegacyHS256Client(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-legacy")
	g := startTokenGatewayEnv(t, sourceDocClients+"  - {id: legacy-stb, grants: [password, refresh_token], signing_alg: HS256}\n", true,
		[]string{"TOLLGATE_SESSION_STORE=memory"}, // HS256 clients need a store
		func(dir string) {
			jwk := `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `"}`
			if err := os.WriteFile(filepath.Join(dir, "legacy.jwk"), []byte(jwk), 0o600); err != nil {
				t.Fatal(err)
			}
		})
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=legacy-stb&username=someuser@24i.com&password=qwerty123")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	out := jsonObject(t, b)
	access := out["access_token"].(string)
	if h, _ := claimsOf(t, access); h["alg"] != "HS256" {
		t.Errorf("legacy client token header %v", h)
	}
	if _, err := jwt.Parse(access, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Errorf("the legacy app cannot verify with its secret: %v", err)
	}
	if code, _ := callAPI(t, g, "/x", "Bearer "+access); code != 200 {
		t.Errorf("HS256 token through the proxy: %d", code)
	}
	resp, b = send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=refresh_token&client_id=legacy-stb&refresh_token="+out["refresh_token"].(string))
	if resp.StatusCode != 200 {
		t.Errorf("legacy refresh: %d %s", resp.StatusCode, b)
	}
	_, jwks := send(t, http.MethodGet, g.url+"/.well-known/jwks.json", "")
	if strings.Contains(string(jwks), `"oct"`) || len(jwksKids(t, g)) != 1 {
		t.Errorf("the HMAC key is published: %s", jwks)
	}
	// Other clients still get ES256.
	if h, _ := claimsOf(t, login(t, g)); h["alg"] != "ES256" {
		t.Errorf("default client header %v", h)
	}
}
