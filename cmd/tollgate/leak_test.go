package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestNoSecretInLogsOrErrorBodies runs every flow — the password grant in
// each dialect (right and wrong), refresh, userinfo, introspection, the
// exchanges (working and with failing backends), profile tokens, proxied
// calls (with a token in the query too) — with the logger at debug level,
// and checks that no password, client secret, external token, cookie,
// issued token or query secret appears in any log line or error body.
func TestNoSecretInLogsOrErrorBodies(t *testing.T) {
	g, _, _ := exchangeGateway(t)
	secrets := []string{"qwerty123", "s3cret-backend", "ext-secret", "3efb85fa-905a-4cbe-9495-f15221fbff96", "other-app-token",
		"ck-SECRET-7", "q-SECRET-8", "wrong-SECRET-9"}
	var errorBodies []string
	do := func(method, path, body string, hdr ...string) []byte {
		resp, b := send(t, method, g.url+path, body, hdr...)
		if resp.StatusCode >= 400 {
			errorBodies = append(errorBodies, string(b))
		}
		return b
	}
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	// Password grants, right and wrong, in every dialect.
	out := jsonObject(t, do("POST", "/oauth/token", "grant_type=password&client_id=backend&client_secret=s3cret-backend&username=someuser@24i.com&password=qwerty123", form...))
	access, refresh := out["access_token"].(string), out["refresh_token"].(string)
	secrets = append(secrets, access, refresh)
	do("POST", "/oauth/token", "grant_type=password&client_id=backend&client_secret=wrong-SECRET-9&username=someuser@24i.com&password=qwerty123", form...)
	do("POST", "/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=wrong-SECRET-9", form...)
	do("POST", "/auth/realms/r/protocol/openid-connect/token", "client_id=anonymous& grant_type=password& username=someuser@24i.com& password=wrong-SECRET-9", form...)
	do("POST", "/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"wrong-SECRET-9"}}`)
	do("POST", "/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"qwerty123"`) // malformed
	// Refresh, good and tampered; userinfo; introspection.
	do("POST", "/oauth/token", "grant_type=refresh_token&client_id=backend&client_secret=s3cret-backend&refresh_token="+refresh, form...)
	do("POST", "/oauth/token", "grant_type=refresh_token&client_id=backend&client_secret=s3cret-backend&refresh_token="+refresh+"x", form...)
	do("GET", "/oauth/userinfo", "", "Authorization", "Bearer "+access)
	do("GET", "/oauth/userinfo", "", "Authorization", "Bearer "+access+"x")
	do("POST", "/oauth/introspect", "token="+access, append(form, "Authorization", "Basic YmFja2VuZDpzM2NyZXQtYmFja2VuZA==")...)
	do("POST", "/oauth/introspect", "token="+access, append(form, "Authorization", "Basic YmFja2VuZDp3cm9uZy1TRUNSRVQtOQ==")...)
	// Exchanges: working, refused, failing backends.
	for _, svc := range []string{"caiway", "broken", "slow"} {
		do("POST", "/api/oauth/login_with_token", "access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service="+svc, form...)
	}
	do("POST", "/api/oauth/login_with_token", "access_token=other-app-token&service=caiway", form...)
	for _, c := range []string{"PHPSESSID=good; other=ck-SECRET-7", "PHPSESSID=boom; other=ck-SECRET-7", "PHPSESSID=ck-SECRET-7"} {
		do("POST", "/api/auth/v1/cookie_exchange", "", append(form, "Cookie", c)...)
	}
	// Profile tokens and proxied calls.
	do("POST", "/api/auth/v1/profiles/kids-2/access_tokens", "", "Authorization", "Bearer "+access)
	do("POST", "/api/auth/v1/profiles/p-agent/access_tokens", "", "Authorization", "Bearer "+access)
	do("GET", "/channels?token=q-SECRET-8", "", "Authorization", "Bearer "+access)
	do("GET", "/channels?token=q-SECRET-8", "", "Authorization", "Bearer "+access+"x")
	do("GET", "/channels/../x?token=q-SECRET-8", "")

	if len(errorBodies) < 10 {
		t.Fatalf("only %d error answers: the flows did not run as meant", len(errorBodies))
	}
	lines := g.logs.All()
	if len(lines) < 30 {
		t.Fatalf("only %d log lines: is the logger at debug level?", len(lines))
	}
	for _, e := range lines {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("a log line holds %.12q…: %.300s", s, line)
			}
		}
	}
	for _, body := range errorBodies {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("an error body holds %.12q…: %.300s", s, body)
			}
		}
	}
}
