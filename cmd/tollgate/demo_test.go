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

	var public, token, refresh, expired, deviceCurl string
	publicRE := regexp.MustCompile(`public listener: (http://\S+)`)
	expiredRE := regexp.MustCompile(`Authorization: Bearer (ey[^' ]+)'`)
	sc := bufio.NewScanner(pr)
	for sc.Scan() && (public == "" || token == "" || refresh == "" || expired == "" || deviceCurl == "") {
		line := sc.Text()
		if strings.Contains(line, "/oauth/device/code") {
			deviceCurl = line
		}
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

	// Step 8, the device sign-in: the box's request as printed, the
	// viewer's approval on the page, the box's poll.
	if !strings.Contains(deviceCurl, "client_id="+demoTV) {
		t.Fatalf("no device walk-through: %q", deviceCurl)
	}
	resp, body = send(t, http.MethodPost, public+"/oauth/device/code", "client_id="+demoTV+"&scope=openid&device_name=Living+room+TV",
		"Content-Type", "application/x-www-form-urlencoded")
	code := jsonObject(t, body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(code["verification_uri_complete"].(string), public+"/device?user_code=") {
		t.Fatalf("device code: %d %s", resp.StatusCode, body)
	}
	resp, page := send(t, http.MethodPost, public+"/device", "csrf=c&step=decide&decision=approve&username="+demoUser+"&password="+demoPassword+
		"&user_code="+code["user_code"].(string), "Content-Type", "application/x-www-form-urlencoded", "Cookie", "tollgate_device_csrf=c")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "signed in") {
		t.Fatalf("approval: %d %s", resp.StatusCode, page)
	}
	resp, body = send(t, http.MethodPost, public+"/oauth/token", "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id="+demoTV+
		"&device_code="+code["device_code"].(string), "Content-Type", "application/x-www-form-urlencoded")
	if tv := jsonObject(t, body); resp.StatusCode != http.StatusOK || tv["id_token"] == nil {
		t.Fatalf("the box's poll: %d %s", resp.StatusCode, body)
	} else if resp := call(tv["access_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Errorf("the box's token: %d", resp.StatusCode)
	}
}
