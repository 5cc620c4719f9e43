package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// externalOAuth is a stand-in for the operator's external OAuth server
// ("caiway/delta" in docs/CLIENTS.md §1.3), with introspection and userinfo.
type externalOAuth struct {
	*httptest.Server
	introspections atomic.Int64
}

func newExternalOAuth(t *testing.T) *externalOAuth {
	x := &externalOAuth{}
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		x.introspections.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "tollgate" || secret != "ext-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		exp := time.Now().Add(time.Hour).Unix()
		var reply map[string]any
		switch r.PostFormValue("token") {
		case "3efb85fa-905a-4cbe-9495-f15221fbff96":
			reply = map[string]any{"active": true, "sub": "ext-42", "email": "someuser@24i.com", "exp": exp, "client_id": "stb-app"}
		case "other-app-token": // a token the external server issued to another app
			reply = map[string]any{"active": true, "sub": "ext-42", "email": "someuser@24i.com", "exp": exp, "client_id": "crm"}
		case "expired-token":
			reply = map[string]any{"active": true, "email": "someuser@24i.com", "exp": time.Now().Add(-time.Hour).Unix(), "client_id": "stb-app"}
		case "stranger-token":
			reply = map[string]any{"active": true, "email": "stranger@example.com", "exp": exp, "client_id": "stb-app"}
		default:
			reply = map[string]any{"active": false}
		}
		json.NewEncoder(w).Encode(reply)
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ui-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"sub": "ext-7", "email": "Client1@Company.com"})
	})
	mux.HandleFunc("POST /slow/introspect", func(w http.ResponseWriter, r *http.Request) {
		x.introspections.Add(1)
		io.Copy(io.Discard, r.Body) // so that net/http notices the client leaving
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /broken/introspect", func(w http.ResponseWriter, r *http.Request) {
		x.introspections.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	x.Server = httptest.NewServer(mux)
	t.Cleanup(x.Close)
	t.Cleanup(func() { close(release) }) // runs before Close
	return x
}

// legacySystem is a stand-in for the legacy API: its session endpoint and
// its login and user endpoints.
type legacySystem struct {
	*httptest.Server
	mu          sync.Mutex
	cookiesSeen []string // guarded by mu
}

func newLegacySystem(t *testing.T) *legacySystem {
	l := &legacySystem{}
	user := map[string]any{"data": map[string]any{"id": 9001, "login": "stb-user", "role": "VIEWER", "partner": "10000",
		"profiles": []any{"lp1", "lp2"}, "serial": "615500266162"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /session", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name)
		}
		l.mu.Lock()
		l.cookiesSeen = append(l.cookiesSeen, strings.Join(names, ","))
		l.mu.Unlock()
		c, err := r.Cookie("PHPSESSID")
		switch {
		case err != nil:
			w.WriteHeader(http.StatusUnauthorized)
		case c.Value == "good":
			json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"user": map[string]any{"id": "2"}}})
		case c.Value == "banned":
			w.WriteHeader(http.StatusForbidden)
		case c.Value == "boom":
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var creds map[string]string
		json.NewDecoder(r.Body).Decode(&creds)
		if creds["login"] != "stb-user" || creds["secret"] != "legacy-pw" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"wrong password for stb-user"}`)
			return
		}
		json.NewEncoder(w).Encode(user)
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "9001" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(user)
	})
	l.Server = httptest.NewServer(mux)
	t.Cleanup(l.Close)
	return l
}

// exchangeClients lists the exchanges as grants: a client may use only
// the grants it lists.
const exchangeClients = `
clients:
  - id: anonymous
    grants: [password, refresh_token, login_with_token, cookie_exchange]
  - id: ` + client003 + `
    grants: [password, login_with_token]
    partner_id: "10000"
  - id: backend
    secret: s3cret-backend
    grants: [password, refresh_token, login_with_token, cookie_exchange]
`

func exchangeGateway(t *testing.T) (*authGateway, *externalOAuth, *legacySystem) {
	x, l := newExternalOAuth(t), newLegacySystem(t)
	g := startAuthGateway(t, exchangeClients+fmt.Sprintf(`
external_services:
  - {name: caiway, introspection_url: %[1]q, client_id: tollgate, client_secret: ext-secret, claim: email, user_field: email, cache_ttl: 1m, allowed_clients: [stb-app]}
  - {name: delta, userinfo_url: %[2]q, claim: email, user_field: email}
  - {name: slow, introspection_url: %[3]q, client_id: tollgate, client_secret: ext-secret, timeout: 100ms, allowed_clients: [stb-app]}
  - {name: broken, introspection_url: %[4]q, client_id: tollgate, client_secret: ext-secret, cache_ttl: 1m, allowed_clients: [stb-app]}
cookie_exchange: {url: %[5]q, cookies: [PHPSESSID], user_id_path: data.user.id}
`, x.URL+"/introspect", x.URL+"/userinfo", x.URL+"/slow/introspect", x.URL+"/broken/introspect", l.URL+"/session"))
	return g, x, l
}

type jsonAPITokens struct {
	Data struct {
		Type       string
		ID         string
		Attributes struct {
			UserID        string `json:"user_id"`
			UserProfileID string `json:"user_profile_id"`
			AccessToken   string `json:"access_token"`
			RefreshToken  string `json:"refresh_token"`
		}
	}
	Errors []map[string]string
}

func decodeJSONAPI(t *testing.T, b []byte) jsonAPITokens {
	t.Helper()
	var v jsonAPITokens
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON:API: %s", b)
	}
	return v
}

// The curl of docs/CLIENTS.md §1.3 for login_with_token, exactly: two -d fields
// joined by curl with &, cache-control and content-type headers.
func TestSourceDoc000LoginWithToken(t *testing.T) {
	g, x, _ := exchangeGateway(t)
	curl := func() (*http.Response, []byte) {
		return send(t, http.MethodPost, g.url+"/api/oauth/login_with_token",
			"access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=caiway",
			"cache-control", "no-cache", "content-type", "application/x-www-form-urlencoded")
	}
	resp, b := curl()
	if resp.StatusCode != 200 {
		t.Fatalf("login_with_token: %d %s", resp.StatusCode, b)
	}
	checkNoStore(t, resp)
	out := decodeJSONAPI(t, b)
	if out.Data.Type != "AuthenticationTokens" || out.Data.Attributes.UserID != "2" || out.Data.Attributes.UserProfileID != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" {
		t.Errorf("reply %+v", out.Data)
	}
	if code, seen := callAPI(t, g, "/channels/1", "Bearer "+out.Data.Attributes.AccessToken); code != 200 || seen.Headers["X-User-Id"] != "2" {
		t.Errorf("proxied call with the exchanged token: %d %v", code, seen.Headers)
	}
	// The positive result is cached (bounded by the token's exp): a second
	// exchange asks the external server nothing.
	calls := x.introspections.Load()
	if resp, b := curl(); resp.StatusCode != 200 || x.introspections.Load() != calls {
		t.Errorf("second exchange: %d %s, introspections %d → %d", resp.StatusCode, b, calls, x.introspections.Load())
	}
	// After the cache TTL the server is asked again.
	g.clock.Add(2 * time.Minute)
	if resp, _ := curl(); resp.StatusCode != 200 || x.introspections.Load() != calls+1 {
		t.Errorf("after the cache TTL: introspections %d, want %d", x.introspections.Load(), calls+1)
	}
}

func TestTokenExchangeFailures(t *testing.T) {
	g, x, _ := exchangeGateway(t)
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"userinfo variant", "access_token=ui-token&service=delta", 200, ""},
		{"userinfo refuses", "access_token=nope&service=delta", 401, "invalid_grant"},
		{"inactive", "access_token=revoked-token&service=caiway", 401, "invalid_grant"},
		{"issued to another app", "access_token=other-app-token&service=caiway", 401, "invalid_grant"},
		{"expired", "access_token=expired-token&service=caiway", 401, "invalid_grant"},
		{"no local user", "access_token=stranger-token&service=caiway", 401, "invalid_grant"},
		{"unknown service", "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=nowhere", 400, "invalid_request"},
		{"missing service", "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96", 400, "invalid_request"},
		{"slow server", "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=slow", 502, "temporarily_unavailable"},
		{"failing server", "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=broken", 502, "temporarily_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := send(t, http.MethodPost, g.url+"/api/oauth/login_with_token", tt.body, "Content-Type", "application/x-www-form-urlencoded")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			out := decodeJSONAPI(t, b)
			if tt.code == "" {
				if out.Data.Attributes.UserID != "bfeb45d7-50dc-416d-b3c8-35db64d288f3" {
					t.Errorf("mapped to %q", out.Data.Attributes.UserID)
				}
				return
			}
			if len(out.Errors) != 1 || out.Errors[0]["code"] != tt.code || out.Errors[0]["status"] != fmt.Sprint(tt.status) {
				t.Errorf("errors %v", out.Errors)
			}
			if strings.Contains(string(b), "3efb85fa") || strings.Contains(string(b), "revoked-token") {
				t.Error("the external token is echoed")
			}
		})
	}
	// A failure is never cached: the broken server is asked every time.
	before := x.introspections.Load()
	send(t, http.MethodPost, g.url+"/api/oauth/login_with_token", "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=broken")
	if x.introspections.Load() != before+1 {
		t.Errorf("a failed exchange was cached")
	}
	if got := value(scrape(t, g.m), "tollgate_backend_requests_total", map[string]string{"backend": "external:broken", "result": "error"}); got != 2 {
		t.Errorf("backend errors counted %v, want 2", got)
	}
}

// TestExchangesAuthenticateTheClient: the exchanges authenticate and
// authorise the client exactly as the token endpoint does — its secret,
// its grants, its partner binding.
func TestExchangesAuthenticateTheClient(t *testing.T) {
	g, _, _ := exchangeGateway(t)
	const ext = "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=caiway"
	for _, tc := range []struct {
		name, path, body string
		hdr              []string
		status           int
		code             string
	}{
		{"confidential client without its secret", "/api/oauth/login_with_token", ext + "&client_id=backend", nil, 401, "invalid_client"},
		{"confidential client, wrong secret", "/api/oauth/login_with_token", ext + "&client_id=backend&client_secret=guess", nil, 401, "invalid_client"},
		{"confidential client, secret in the form", "/api/oauth/login_with_token", ext + "&client_id=backend&client_secret=s3cret-backend", nil, 200, ""},
		{"confidential client, Basic", "/api/oauth/login_with_token", ext, []string{"Authorization", "Basic YmFja2VuZDpzM2NyZXQtYmFja2VuZA=="}, 200, ""},
		{"unknown client", "/api/oauth/login_with_token", ext + "&client_id=nobody", nil, 401, "invalid_client"},
		{"partner-bound client, user of no partner", "/api/oauth/login_with_token", ext + "&client_id=" + client003, nil, 401, "invalid_grant"},
		{"grant not listed", "/api/auth/v1/cookie_exchange", "client_id=" + client003, []string{"Cookie", "PHPSESSID=good"}, 400, "unauthorized_client"},
		{"confidential client without its secret, cookie", "/api/auth/v1/cookie_exchange", "client_id=backend", []string{"Cookie", "PHPSESSID=good"}, 401, "invalid_client"},
		{"self-granted scope", "/api/oauth/login_with_token", ext + "&scope=catalog", nil, 400, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := send(t, http.MethodPost, g.url+tc.path, tc.body, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, tc.hdr...)...)
			out := decodeJSONAPI(t, b)
			if resp.StatusCode != tc.status || tc.code != "" && (len(out.Errors) != 1 || out.Errors[0]["code"] != tc.code) {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
			if tc.code == "" {
				if _, c := claimsOf(t, out.Data.Attributes.AccessToken); c["client_id"] != "backend" {
					t.Errorf("client_id %v", c["client_id"])
				}
			}
		})
	}
}

func TestCookieExchange(t *testing.T) {
	g, _, l := exchangeGateway(t)
	exchange := func(cookie string) (*http.Response, jsonAPITokens) {
		hdr := []string{"Content-Type", "application/x-www-form-urlencoded"}
		if cookie != "" {
			hdr = append(hdr, "Cookie", cookie)
		}
		resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/cookie_exchange", "", hdr...)
		return resp, decodeJSONAPI(t, b)
	}
	resp, out := exchange("PHPSESSID=good; tracking=secret-analytics-id")
	if resp.StatusCode != 200 || out.Data.Attributes.UserID != "2" {
		t.Fatalf("cookie exchange: %d %+v", resp.StatusCode, out)
	}
	l.mu.Lock()
	seen := l.cookiesSeen[len(l.cookiesSeen)-1]
	l.mu.Unlock()
	if seen != "PHPSESSID" {
		t.Errorf("legacy saw cookies %q, want only PHPSESSID", seen)
	}
	if code, e := callAPI(t, g, "/x", "Bearer "+out.Data.Attributes.AccessToken); code != 200 || e.Headers["X-User-Id"] != "2" {
		t.Errorf("proxied call: %d", code)
	}
	for _, tc := range []struct {
		cookie string
		status int
		code   string
	}{
		{"PHPSESSID=stale", 401, "invalid_grant"},
		{"PHPSESSID=banned", 403, "forbidden"},
		{"other=1", 401, "invalid_grant"},
		{"", 401, "invalid_grant"},
		{"PHPSESSID=boom", 502, "temporarily_unavailable"},
	} {
		resp, out := exchange(tc.cookie)
		if resp.StatusCode != tc.status || len(out.Errors) != 1 || out.Errors[0]["code"] != tc.code {
			t.Errorf("%q: %d %v", tc.cookie, resp.StatusCode, out.Errors)
		}
	}
}

func TestProfileTokens(t *testing.T) {
	g, _, _ := exchangeGateway(t)
	resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"qwerty123"}}`)
	if resp.StatusCode != 200 {
		t.Fatal(string(b))
	}
	first := decodeJSONAPI(t, b)
	profile := func(id, auth string) (*http.Response, jsonAPITokens) {
		var hdr []string
		if auth != "" {
			hdr = []string{"Authorization", auth}
		}
		resp, b := send(t, http.MethodPost, g.url+"/api/auth/v1/profiles/"+id+"/access_tokens", "", hdr...)
		return resp, decodeJSONAPI(t, b)
	}
	resp, kids := profile("kids-2", "Bearer "+first.Data.Attributes.AccessToken)
	if resp.StatusCode != 200 || kids.Data.Attributes.UserProfileID != "kids-2" || kids.Data.ID != first.Data.ID || kids.Data.Attributes.UserID != "2" {
		t.Fatalf("profile token: %d %+v", resp.StatusCode, kids)
	}
	if _, c := claimsOf(t, kids.Data.Attributes.AccessToken); c["profile"] != "kids-2" || c["client_id"] != "anonymous" {
		t.Errorf("claims %v", c)
	}
	if code, e := callAPI(t, g, "/x", "Bearer "+kids.Data.Attributes.AccessToken); code != 200 || e.Headers["X-Profile-Id"] != "kids-2" {
		t.Errorf("proxied with the profile token: %d %v", code, e.Headers)
	}
	// The profile sticks through a refresh.
	resp, b = send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"refresh_token","refresh_token":"`+kids.Data.Attributes.RefreshToken+`"}`)
	if resp.StatusCode != 200 || decodeJSONAPI(t, b).Data.Attributes.UserProfileID != "kids-2" {
		t.Errorf("refresh of a profile token: %d %s", resp.StatusCode, b)
	}
	for _, tc := range []struct {
		id, auth string
		status   int
		code     string
	}{
		{"p-agent", "Bearer " + first.Data.Attributes.AccessToken, 403, "forbidden"}, // another user's
		{"kids-2", "", 401, "invalid_grant"},
		{"kids-2", "Bearer " + first.Data.Attributes.RefreshToken, 401, "invalid_grant"},
	} {
		resp, out := profile(tc.id, tc.auth)
		if resp.StatusCode != tc.status || len(out.Errors) != 1 || out.Errors[0]["code"] != tc.code {
			t.Errorf("%s: %d %v", tc.id, resp.StatusCode, out.Errors)
		}
	}
}

// With password_backend legacy, the password grant asks the legacy login
// endpoint; refresh and profile tokens look users up there.
func TestLegacyLoginBackend(t *testing.T) {
	l := newLegacySystem(t)
	g := startTokenGateway(t, fmt.Sprintf(`
password_backend: legacy
legacy_login:
  login_url: %q
  lookup_url: %q
  username_field: login
  password_field: secret
  user_id_path: data.id
  username_path: data.login
  role_path: data.role
  partner_path: data.partner
  profiles_path: data.profiles
  claim_paths: {stb_serial_no: data.serial}
`, l.URL+"/login", l.URL+"/users/{id}"), false)
	login := func(user, pw string) (*http.Response, map[string]any) {
		resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=stb&username="+user+"&password="+pw)
		return resp, jsonObject(t, b)
	}
	resp, out := login("stb-user", "legacy-pw")
	if resp.StatusCode != 200 {
		t.Fatalf("legacy login: %d %v", resp.StatusCode, out)
	}
	_, c := claimsOf(t, out["access_token"].(string))
	if c["sub"] != "9001" || c["profile"] != "lp1" || c["role"] != "VIEWER" || c["stb_serial_no"] != "615500266162" || c["partnerId"] != "10000" {
		t.Errorf("claims %v", c)
	}
	if code, e := callAPI(t, g, "/x", "Bearer "+out["access_token"].(string)); code != 200 || e.Headers["X-User-Id"] != "9001" {
		t.Errorf("proxied: %d", code)
	}
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=refresh_token&client_id=stb&refresh_token="+out["refresh_token"].(string))
	if resp.StatusCode != 200 {
		t.Errorf("refresh via lookup: %d %s", resp.StatusCode, b)
	}
	// Unknown user and wrong password: the same error, whatever the legacy
	// system said.
	r1, wrongPw := login("stb-user", "nope")
	r2, unknown := login("ghost", "nope")
	if r1.StatusCode != 400 || r2.StatusCode != 400 || fmt.Sprint(wrongPw) != fmt.Sprint(unknown) || wrongPw["error"] != "invalid_grant" {
		t.Errorf("wrong password %v, unknown user %v", wrongPw, unknown)
	}
	l.Close()
	if resp, out := login("stb-user", "legacy-pw"); resp.StatusCode != 502 || out["error"] != "temporarily_unavailable" {
		t.Errorf("legacy down: %d %v", resp.StatusCode, out)
	}
}
