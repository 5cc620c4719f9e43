package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tollgate/tollgate/issuer"
)

// TestOIDCConformance: discovery carries the fields OpenID Connect
// Discovery and RFC 8414 require, lists RS256 (and ID tokens are signed
// with it), advertises no response type it does not serve; the
// Keycloak-style realm discovery works with go-oidc, whose tokens carry the
// realm URL as issuer and pass the proxy; auth_time survives refreshes;
// introspection says token_type as RFC 7662 means it.
func TestOIDCConformance(t *testing.T) {
	for _, store := range []string{"none", "memory"} {
		t.Run("store "+store, func(t *testing.T) {
			g := startTokenGatewayEnv(t, sourceDocClients+"realms: [platform]\n", true, []string{"TOLLGATE_SESSION_STORE=" + store},
				func(dir string) { // an older RS256 key: ES256 stays the newest, so it signs access tokens
					if _, _, err := issuer.GenerateKey(dir, "RS256", time.Now().Add(-time.Hour)); err != nil {
						t.Fatal(err)
					}
				})
			ctx := t.Context()
			for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
				resp, b := send(t, http.MethodGet, g.url+path, "")
				var d map[string]any
				if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
				}
				// Required by OpenID Connect Discovery §3 (but authorization_endpoint,
				// see below) and RFC 8414 §2.
				for _, f := range []string{"issuer", "token_endpoint", "jwks_uri", "response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"} {
					if _, ok := d[f]; !ok {
						t.Errorf("%s: no %s", path, f)
					}
				}
				if algs, _ := d["id_token_signing_alg_values_supported"].([]any); len(algs) == 0 || algs[0] != "RS256" {
					t.Errorf("%s: ID token algorithms %v, want RS256 first", path, algs)
				}
				// No authorization endpoint is served, so none is advertised, and
				// no response type either.
				if rt, _ := d["response_types_supported"].([]any); d["authorization_endpoint"] != nil || len(rt) != 0 {
					t.Errorf("%s: advertises what it does not serve: %v %v", path, d["authorization_endpoint"], rt)
				}
			}
			if resp, _ := send(t, http.MethodGet, g.url+"/auth/realms/nowhere/.well-known/openid-configuration", ""); resp.StatusCode != 404 {
				t.Errorf("discovery of an unknown realm: %d", resp.StatusCode)
			}
			for _, prefix := range []string{"/auth/realms/platform", "/realms/platform"} {
				provider, err := oidc.NewProvider(ctx, g.url+prefix)
				if err != nil {
					t.Fatalf("go-oidc discovery at %s: %v", prefix, err)
				}
				token := provider.Endpoint().TokenURL
				if token != g.url+prefix+"/protocol/openid-connect/token" {
					t.Errorf("%s: token endpoint %s", prefix, token)
				}
				resp, b := send(t, http.MethodPost, token, "client_id=anonymous& grant_type=password& scope=openid& username=someuser@24i.com& password=qwerty123")
				out := jsonObject(t, b)
				if resp.StatusCode != 200 {
					t.Fatalf("%s login: %d %s", prefix, resp.StatusCode, b)
				}
				idt, err := provider.Verifier(&oidc.Config{ClientID: "anonymous", Now: g.clock.Now}).Verify(ctx, out["id_token"].(string))
				if err != nil {
					t.Fatalf("%s: the ID token does not verify with the realm's metadata: %v", prefix, err)
				}
				if h, _ := claimsOf(t, out["id_token"].(string)); h["alg"] != "RS256" {
					t.Errorf("ID token alg %v", h["alg"])
				}
				if h, c := claimsOf(t, out["access_token"].(string)); c["iss"] != g.url+prefix || h["alg"] != "ES256" {
					t.Errorf("access token iss %v alg %v", c["iss"], h["alg"])
				}
				if code, _ := callAPI(t, g, "/x", "Bearer "+out["access_token"].(string)); code != 200 {
					t.Errorf("the proxy refuses the realm's access token: %d", code)
				}
				// auth_time is the login's across refreshes (OIDC Core §12.2).
				var first struct {
					AuthTime int64 `json:"auth_time"`
				}
				idt.Claims(&first)
				g.clock.Add(3 * time.Minute)
				resp, b = send(t, http.MethodPost, token, "grant_type=refresh_token&client_id=anonymous&scope=openid&refresh_token="+out["refresh_token"].(string))
				renewed := jsonObject(t, b)
				if resp.StatusCode != 200 || renewed["id_token"] == nil {
					t.Fatalf("refresh: %d %s", resp.StatusCode, b)
				}
				_, c := claimsOf(t, renewed["id_token"].(string))
				if int64(c["auth_time"].(float64)) != first.AuthTime || first.AuthTime == 0 || c["iat"].(float64) == float64(first.AuthTime) {
					t.Errorf("auth_time %v after a refresh, %d at login (iat %v)", c["auth_time"], first.AuthTime, c["iat"])
				}
				// Introspection: token_type Bearer for an access token (RFC 7662
				// means RFC 6749's token type), none for a refresh token.
				basic := []string{"Content-Type", "application/x-www-form-urlencoded", "Authorization", "Basic YmFja2VuZDpzM2NyZXQtYmFja2VuZA=="}
				_, b = send(t, http.MethodPost, g.url+"/oauth/introspect", "token="+renewed["access_token"].(string), basic...)
				if ai := jsonObject(t, b); ai["active"] != true || ai["token_type"] != "Bearer" || ai["iss"] != g.url+prefix {
					t.Errorf("introspection of an access token: %s", b)
				}
				_, b = send(t, http.MethodPost, g.url+"/oauth/introspect", "token_type_hint=refresh_token&token="+renewed["refresh_token"].(string), basic...)
				if ri := jsonObject(t, b); ri["active"] != true || ri["token_type"] != nil {
					t.Errorf("introspection of a refresh token: %s", b)
				}
			}
			if strings.Contains(strings.Join(g.m.warnings, " "), "no RS256 signing key") {
				t.Errorf("a warning about RS256 although a key is loaded: %v", g.m.warnings)
			}
		})
	}
	// Without an RS256 key, check-config and serve say what OIDC clients
	// will make of it.
	if g := startAuthGateway(t, sourceDocClients); !strings.Contains(strings.Join(g.m.warnings, " "), "no RS256 signing key") {
		t.Errorf("no warning without an RS256 key: %v", g.m.warnings)
	}
}
