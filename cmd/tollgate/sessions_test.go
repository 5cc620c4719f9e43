package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
)

// oauthLogin logs someuser in through the OAuth dialect and returns the
// access and refresh tokens.
func oauthLogin(t *testing.T, g *authGateway, user, pw string) (string, string) {
	t.Helper()
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username="+user+"&password="+pw)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	out := jsonObject(t, b)
	return out["access_token"].(string), out["refresh_token"].(string)
}

// refreshWith presents a refresh token and returns the status and answer.
func refreshWith(t *testing.T, g *authGateway, rt string) (int, map[string]any) {
	t.Helper()
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=refresh_token&client_id=anonymous&refresh_token="+rt)
	return resp.StatusCode, jsonObject(t, b)
}

// TestOneTimeRefreshTokens: with a store, refresh tokens are opaque
// one-time handles. A retry within the reuse interval gets the same
// successor; a used token after it ends the whole session, its access
// tokens included.
func TestOneTimeRefreshTokens(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, []string{"TOLLGATE_SESSION_STORE=memory", "TOLLGATE_REFRESH_REUSE_INTERVAL=5s"})
	access, first := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	if strings.Count(first, ".") == 2 {
		t.Fatalf("the refresh token is a JWT: %.30s", first)
	}
	code, out := refreshWith(t, g, first)
	if code != 200 {
		t.Fatalf("refresh: %d %v", code, out)
	}
	second := out["refresh_token"].(string)
	// A box that retries after a timeout gets a working pair of the same session.
	g.clock.Add(2 * time.Second)
	code, retry := refreshWith(t, g, first)
	if code != 200 || retry["refresh_token"] != second || retry["session_state"] != out["session_state"] {
		t.Fatalf("retry within the interval: %d %v", code, retry)
	}
	if c, _ := callAPI(t, g, "/x", "Bearer "+retry["access_token"].(string)); c != 200 {
		t.Errorf("the retry's access token: %d", c)
	}
	// After the interval, the used token is theft: the session ends.
	g.clock.Add(10 * time.Second)
	if code, out := refreshWith(t, g, first); code != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("reuse after the interval: %d %v", code, out)
	}
	for _, tok := range []string{access, out["access_token"].(string)} {
		if c, _ := callAPI(t, g, "/x", "Bearer "+tok); c != 401 {
			t.Errorf("an access token of the revoked session: %d", c)
		}
	}
	if code, _ := refreshWith(t, g, second); code != 400 {
		t.Errorf("the successor of a revoked session: %d", code)
	}
	mfs := scrape(t, g.m)
	if value(mfs, "tollgate_session_events_total", map[string]string{"event": "reuse_detected"}) != 1 ||
		value(mfs, "tollgate_sessions_revoked_total", map[string]string{"cause": "reuse"}) != 1 {
		t.Error("reuse not counted")
	}
}

// TestLogoutAndRevocation: every way to end a session — JSON:API DELETE,
// OAuth and Keycloak logout, RFC 7009 revocation by access or refresh
// token — ends it for the proxy, introspection and refresh alike.
func TestLogoutAndRevocation(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, []string{"TOLLGATE_SESSION_STORE=memory"})
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	ended := func(t *testing.T, access, refresh string) {
		t.Helper()
		if c, _ := callAPI(t, g, "/x", "Bearer "+access); c != 401 {
			t.Errorf("access token after logout: %d", c)
		}
		resp, _ := send(t, http.MethodGet, g.url+"/oauth/userinfo", "", "Authorization", "Bearer "+access)
		if resp.StatusCode != 401 {
			t.Errorf("userinfo after logout: %d", resp.StatusCode)
		}
		if code, _ := refreshWith(t, g, refresh); code != 400 {
			t.Errorf("refresh after logout: %d", code)
		}
		for _, tok := range []string{access, refresh} {
			_, b := send(t, http.MethodPost, g.url+"/oauth/introspect", "token="+tok, append(form, "Authorization", "Basic YmFja2VuZDpzM2NyZXQtYmFja2VuZA==")...)
			if jsonObject(t, b)["active"] != false {
				t.Errorf("introspection after logout: %s", b)
			}
		}
	}
	t.Run("JSON:API DELETE", func(t *testing.T) {
		access, refresh := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
		resp, b := send(t, http.MethodDelete, g.url+"/api/auth/v1/access_tokens", "", "Authorization", "Bearer "+access)
		if resp.StatusCode != 204 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		ended(t, access, refresh)
	})
	for _, path := range []string{"/oauth/logout", "/auth/realms/platform/protocol/openid-connect/logout", "/realms/platform/protocol/openid-connect/logout"} {
		t.Run(path, func(t *testing.T) {
			access, refresh := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
			// As Keycloak clients send it: client_id and refresh_token in a form.
			resp, b := send(t, http.MethodPost, g.url+path, "client_id=anonymous&refresh_token="+refresh, form...)
			if resp.StatusCode != 204 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			ended(t, access, refresh)
			resp, _ = send(t, http.MethodPost, g.url+path, "client_id=anonymous&refresh_token="+refresh, form...)
			if resp.StatusCode != 400 {
				t.Errorf("logout twice: %d", resp.StatusCode)
			}
		})
	}
	for _, hint := range []string{"access_token", "refresh_token"} {
		t.Run("RFC 7009 "+hint, func(t *testing.T) {
			access, refresh := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
			tok := map[string]string{"access_token": access, "refresh_token": refresh}[hint]
			resp, b := send(t, http.MethodPost, g.url+"/oauth/revoke", "client_id=anonymous&token="+tok+"&token_type_hint="+hint, form...)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			ended(t, access, refresh)
		})
	}
	t.Run("RFC 7009 unknown token and another client's", func(t *testing.T) {
		access, refresh := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
		for _, body := range []string{"client_id=anonymous&token=nonsense", "client_id=backend&client_secret=s3cret-backend&token=" + refresh} {
			if resp, b := send(t, http.MethodPost, g.url+"/oauth/revoke", body, form...); resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", body, resp.StatusCode, b)
			}
		}
		if c, _ := callAPI(t, g, "/x", "Bearer "+access); c != 200 {
			t.Errorf("another client's revocation ended the session: %d", c)
		}
		if resp, _ := send(t, http.MethodPost, g.url+"/oauth/revoke", "client_id=backend&client_secret=wrong&token="+refresh, form...); resp.StatusCode != 401 {
			t.Errorf("a client with a wrong secret: %d", resp.StatusCode)
		}
	})
	_, b := send(t, http.MethodGet, g.url+"/.well-known/openid-configuration", "")
	if d := jsonObject(t, b); d["revocation_endpoint"] != g.url+"/oauth/revoke" || d["end_session_endpoint"] != g.url+"/oauth/logout" {
		t.Errorf("discovery: %v", d)
	}
}

// TestSessionsSelfServiceLimitsAndPasswordChange: a user lists and ends
// their own sessions (never another's); the per-user limit evicts the
// oldest or refuses; a changed password ends older sessions at their next
// refresh; a profile switch continues the session.
func TestSessionsSelfServiceLimitsAndPasswordChange(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, []string{"TOLLGATE_SESSION_STORE=memory", "TOLLGATE_MAX_SESSIONS_PER_USER=2"})
	a1, r1 := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	g.clock.Add(time.Second) // so that "oldest" means something
	a2, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	g.clock.Add(time.Second)
	other, _ := oauthLogin(t, g, "agent1", "******")
	resp, b := send(t, http.MethodGet, g.url+"/api/auth/v1/sessions", "", "Authorization", "Bearer "+a2)
	var list struct {
		Data []struct {
			ID         string
			Attributes struct{ Current bool }
		}
	}
	if err := jsonUnmarshal(b, &list); err != nil || resp.StatusCode != 200 || len(list.Data) != 2 {
		t.Fatalf("sessions: %d %s", resp.StatusCode, b)
	}
	_, c1 := claimsOf(t, a1)
	var currentSeen bool
	for _, s := range list.Data {
		currentSeen = currentSeen || s.Attributes.Current && s.ID != c1["sid"]
	}
	if !currentSeen {
		t.Errorf("the current session is not marked: %s", b)
	}
	// Another user's session: not found.
	_, co := claimsOf(t, other)
	if resp, _ := send(t, http.MethodDelete, g.url+"/api/auth/v1/sessions/"+co["sid"].(string), "", "Authorization", "Bearer "+a2); resp.StatusCode != 404 {
		t.Errorf("ending another user's session: %d", resp.StatusCode)
	}
	// A third login evicts the oldest (evict_oldest is the default).
	a3, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	if c, _ := callAPI(t, g, "/x", "Bearer "+a1); c != 401 {
		t.Errorf("the oldest session was not evicted: %d", c)
	}
	if code, _ := refreshWith(t, g, r1); code != 400 {
		t.Errorf("the evicted session refreshed: %d", code)
	}
	// The user ends one of their own sessions from another.
	_, c3 := claimsOf(t, a3)
	if resp, b := send(t, http.MethodDelete, g.url+"/api/auth/v1/sessions/"+c3["sid"].(string), "", "Authorization", "Bearer "+a2); resp.StatusCode != 204 {
		t.Fatalf("ending an own session: %d %s", resp.StatusCode, b)
	}
	if c, _ := callAPI(t, g, "/x", "Bearer "+a3); c != 401 {
		t.Errorf("an ended session's token: %d", c)
	}
	// The profile switch continues the session: no second refresh token.
	resp, b = send(t, http.MethodPost, g.url+"/api/auth/v1/profiles/kids-2/access_tokens", "", "Authorization", "Bearer "+a2)
	if out := decodeJSONAPI(t, b); resp.StatusCode != 200 || out.Data.Attributes.UserProfileID != "kids-2" || out.Data.Attributes.RefreshToken != "" {
		t.Errorf("profile switch: %d %s", resp.StatusCode, b)
	}
	// A password change ends the sessions started before it.
	_, r4 := oauthLogin(t, g, "agent1", "******")
	users, err := os.ReadFile(g.users)
	if err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(users), "agent1")
	i := at + strings.Index(string(users)[at:], "password_hash: \"") + len("password_hash: \"")
	j := strings.Index(string(users)[i:], "\"")
	edited := string(users)[:i] + bcryptHash(t, "new-password") + string(users)[i+j:]
	testkit.WriteFile(t, g.users, edited)
	if err := g.m.users.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, out := refreshWith(t, g, r4); code != 400 || !strings.Contains(fmt.Sprint(out["error_description"]), "password") {
		t.Errorf("refresh after a password change: %d %v", code, out)
	}
	if mfs := scrape(t, g.m); value(mfs, "tollgate_sessions_revoked_total", map[string]string{"cause": "password_change"}) != 1 ||
		value(mfs, "tollgate_sessions_revoked_total", map[string]string{"cause": "limit"}) != 1 {
		t.Error("revocations not counted by cause")
	}
}

// TestSessionLimitRefuses: with the refuse policy, a login beyond the
// limit is invalid_grant saying why, and the existing sessions live on.
func TestSessionLimitRefuses(t *testing.T) {
	g := startTokenGatewayEnv(t, sourceDocClients, true, []string{"TOLLGATE_SESSION_STORE=memory",
		"TOLLGATE_MAX_SESSIONS_PER_USER=1", "TOLLGATE_SESSION_LIMIT_POLICY=refuse"})
	a1, _ := oauthLogin(t, g, "someuser@24i.com", "qwerty123")
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
	if out := jsonObject(t, b); resp.StatusCode != 400 || out["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(out["error_description"]), "session limit") {
		t.Errorf("a login beyond the limit: %d %s", resp.StatusCode, b)
	}
	if c, _ := callAPI(t, g, "/x", "Bearer "+a1); c != 200 {
		t.Errorf("the existing session: %d", c)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
