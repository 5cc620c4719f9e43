package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs `tollgate demo` as a user would and follows the commands
// it prints.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo"}, []string{
			"TOLLGATE_LISTEN=127.0.0.1:0", "TOLLGATE_ADMIN_LISTEN=127.0.0.1:0", "TOLLGATE_LOG_LEVEL=warn",
		}, nil, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})

	var public, token, refresh, expired string
	publicRE := regexp.MustCompile(`public listener: (http://\S+)`)
	expiredRE := regexp.MustCompile(`Authorization: Bearer (ey[^' ]+)'`)
	sc := bufio.NewScanner(pr)
	for sc.Scan() && (public == "" || token == "" || refresh == "" || expired == "") {
		line := sc.Text()
		if m := publicRE.FindStringSubmatch(line); m != nil {
			public = m[1]
		}
		if v, ok := strings.CutPrefix(line, "TOKEN="); ok {
			token = v
		}
		if v, ok := strings.CutPrefix(line, "REFRESH="); ok {
			refresh = v
		}
		if m := expiredRE.FindStringSubmatch(line); m != nil {
			expired = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if public == "" || token == "" || expired == "" {
		t.Fatalf("demo output incomplete: public %q token %q expired %q", public, token, expired)
	}

	call := func(tok string, hdr ...string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, public+"/api/hello", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := call(token, "X-User-Id", "admin")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("valid call: %d", resp.StatusCode)
	}
	echo := decode[struct {
		Path    string
		Headers map[string]string
	}](t, resp)
	if echo.Path != "/api/hello" || echo.Headers["X-User-Id"] != "demo-user" || echo.Headers["X-Profile-Id"] != "demo-profile" {
		t.Errorf("echo upstream saw %+v", echo)
	}
	if resp := call(expired); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error_description="token expired"`) {
		t.Errorf("expired token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := call(""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	// The printed refresh token renews at the Keycloak path, as step 6 says.
	resp, body := send(t, http.MethodPost, public+"/auth/realms/platform/protocol/openid-connect/token",
		" grant_type=refresh_token& client_id=anonymous& refresh_token="+refresh, "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusOK || jsonObject(t, body)["access_token"] == nil {
		t.Errorf("refresh with the printed token: %d %s", resp.StatusCode, body)
	}
}
