package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestBackendFailureStaysInTheLog: a failing backend's address and error
// text reach the log line — with the request ID, which the access log line
// of the same request carries too — and never the client, in either
// dialect.
func TestBackendFailureStaysInTheLog(t *testing.T) {
	g, x, l := exchangeGateway(t)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // connection refused from now on
	legacy := startTokenGateway(t, fmt.Sprintf(`
password_backend: legacy
legacy_login: {login_url: %q, lookup_url: %q, user_id_path: data.id}
`, down.URL+"/login", down.URL+"/users/{id}"), false)
	for _, tc := range []struct {
		name    string
		g       *authGateway
		path    string
		body    string
		backend string // what the log must name: host:port of the failing backend
		cookie  string
	}{
		{"jsonapi login_with_token, backend answers 500", g, "/api/oauth/login_with_token",
			"access_token=3efb85fa-905a-4cbe-9495-f15221fbff96&service=broken", hostOf(x.URL), ""},
		{"jsonapi cookie_exchange, legacy answers 502", g, "/api/auth/v1/cookie_exchange", "", hostOf(l.URL), "PHPSESSID=boom"},
		{"oauth password grant, legacy login refuses connections", legacy, "/oauth/token",
			"grant_type=password&client_id=stb&username=u&password=p", hostOf(down.URL), ""},
		{"jsonapi password grant, legacy login refuses connections", legacy, "/api/auth/v1/access_tokens",
			`{"grant_type":"password","credentials":{"username":"u","password":"p"}}`, hostOf(down.URL), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.g.logs.TakeAll()
			hdr := []string{"Content-Type", "application/x-www-form-urlencoded"}
			if tc.cookie != "" {
				hdr = append(hdr, "Cookie", tc.cookie)
			}
			resp, body := send(t, http.MethodPost, tc.g.url+tc.path, tc.body, hdr...)
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "temporarily_unavailable") {
				t.Fatalf("answered %d %s", resp.StatusCode, body)
			}
			host, port, _ := strings.Cut(tc.backend, ":")
			for _, leak := range []string{host, port, "answered", "refused", "identity:", "dial"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("the body holds %q: %s", leak, body)
				}
			}
			id := resp.Header.Get("X-Request-Id")
			failed := tc.g.logs.FilterMessage("token request failed").All()
			if len(failed) != 1 {
				t.Fatalf("%d error log lines, want 1", len(failed))
			}
			fields := failed[0].ContextMap()
			if fields["request_id"] != id || !strings.Contains(fmt.Sprint(fields["error"]), tc.backend) {
				t.Errorf("error log line %v: want request_id %s and the backend %s", fields, id, tc.backend)
			}
			access := tc.g.logs.FilterMessage("request").FilterField(zap.String("request_id", id)).All()
			if len(access) != 1 || access[0].ContextMap()["status"] != int64(502) {
				t.Errorf("access log lines with request_id %s: %v", id, access)
			}
		})
	}
}

// TestTwoAuthorizationHeaders: with a valid token first and a second
// Authorization header, the proxy, userinfo and profile tokens all refuse
// the request, in the same words.
func TestTwoAuthorizationHeaders(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	access := login(t, g)
	var challenges []string
	for _, path := range []struct{ method, path string }{
		{http.MethodGet, "/channels/1"},
		{http.MethodGet, "/oauth/userinfo"},
		{http.MethodPost, "/api/auth/v1/profiles/kids-2/access_tokens"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), path.method, g.url+path.path, nil)
		req.Header["Authorization"] = []string{"Bearer " + access, "Bearer " + access}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), `"invalid_request"`) {
			t.Errorf("%s: %d %s, want 401 invalid_request", path.path, resp.StatusCode, body)
		}
		challenges = append(challenges, resp.Header.Get("WWW-Authenticate"))
		// One header with the same token passes.
		req.Header["Authorization"] = []string{"Bearer " + access}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s with one header: %d", path.path, resp.StatusCode)
		}
	}
	for _, c := range challenges[1:] {
		if c != challenges[0] || !strings.Contains(c, `error="invalid_request"`) {
			t.Errorf("challenges differ: %q", challenges)
		}
	}
}

func hostOf(raw string) string {
	u, _ := url.Parse(raw)
	return u.Host
}
