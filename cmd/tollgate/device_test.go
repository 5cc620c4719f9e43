package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tollgate/tollgate/internal/testkit"
)

const deviceClients = `
clients:
  - id: anonymous
    grants: [password, refresh_token]
  - id: stb-box
    grants: [device_code, refresh_token]
  - id: ` + client003 + `
    grants: [device_code]
    partner_id: "10000"
`

// deviceGateway is a gateway with a memory store: the device flow is on.
func deviceGateway(t *testing.T, env ...string) *authGateway {
	return startTokenGatewayEnv(t, deviceClients, true, append([]string{"TOLLGATE_SESSION_STORE=memory"}, env...))
}

// askCode is the box asking for a code.
func askCode(t *testing.T, g *authGateway, client string) map[string]any {
	t.Helper()
	resp, b := send(t, http.MethodPost, g.url+"/oauth/device/code", "client_id="+client+"&scope=openid+profile&device_name=Living+room+box",
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 200 {
		t.Fatalf("device code: %d %s", resp.StatusCode, b)
	}
	return jsonObject(t, b)
}

// poll is the box polling the token endpoint.
func poll(t *testing.T, g *authGateway, client, deviceCode string) (int, map[string]any) {
	t.Helper()
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id="+client+"&device_code="+deviceCode,
		"Content-Type", "application/x-www-form-urlencoded")
	return resp.StatusCode, jsonObject(t, b)
}

// browser starts headless Chromium (Debian's package) for the test. A
// missing browser fails the test: CI must run it, never skip it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: ./test.sh installs it (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(412, 915))
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page for the README.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "device-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceSignInInABrowser: the box asks for a code; a viewer opens the
// complete verification URI on a phone (a real headless Chromium), signs
// in and approves; the box's poll returns tokens that pass the proxy.
// Then a denial, a wrong password and a wrong code, each with the
// message the page shows.
func TestDeviceSignInInABrowser(t *testing.T) {
	g := deviceGateway(t)
	ctx := browser(t)
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return s
	}

	code := askCode(t, g, "stb-box")
	if c, out := poll(t, g, "stb-box", code["device_code"].(string)); c != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("before approval: %d %v", c, out)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(code["verification_uri_complete"].(string)),
		chromedp.WaitVisible(chromedp.CSS("#password"))); err != nil {
		t.Fatal(err)
	}
	if req := text(".request"); !strings.Contains(req, "Living room box") || !strings.Contains(req, "stb-box") {
		t.Errorf("the page does not say who asks: %q", req)
	}
	screenshot(t, ctx, "signin")
	// A wrong password first.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#username"), "someuser@24i.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong"),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(".message.error"))); err != nil {
		t.Fatal(err)
	}
	if msg := text(".message"); !strings.Contains(msg, "Wrong e-mail, username or password") {
		t.Errorf("wrong password: %q", msg)
	}
	screenshot(t, ctx, "wrong-password")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#username"), "someuser@24i.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "qwerty123"),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(".message.success"))); err != nil {
		t.Fatal(err)
	}
	if msg := text(".message"); !strings.Contains(msg, "your device is signed in") {
		t.Errorf("approval: %q", msg)
	}
	screenshot(t, ctx, "approved")
	c, out := poll(t, g, "stb-box", code["device_code"].(string))
	if c != 200 || out["id_token"] == nil {
		t.Fatalf("after approval: %d %v", c, out)
	}
	if code, e := callAPI(t, g, "/x", "Bearer "+out["access_token"].(string)); code != 200 || e.Headers["X-User-Id"] != "2" || e.Headers["X-Client-Id"] != "stb-box" {
		t.Errorf("the box's token through the proxy: %d %v", code, e.Headers)
	}
	if c, out := poll(t, g, "stb-box", code["device_code"].(string)); c != 400 || out["error"] != "invalid_grant" {
		t.Errorf("a used device_code: %d %v", c, out)
	}

	// A denial.
	denied := askCode(t, g, "stb-box")
	if err := chromedp.Do(ctx, chromedp.Navigate(denied["verification_uri_complete"].(string)),
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#username"), "someuser@24i.com"), chromedp.SendKeys(chromedp.CSS("#password"), "qwerty123"),
		chromedp.Click(chromedp.CSS(`button[value="deny"]`)), chromedp.WaitVisible(chromedp.CSS(".message"))); err != nil {
		t.Fatal(err)
	}
	if msg := text(".message"); !strings.Contains(msg, "not allowed to sign in") {
		t.Errorf("denial: %q", msg)
	}
	if c, out := poll(t, g, "stb-box", denied["device_code"].(string)); c != 400 || out["error"] != "access_denied" {
		t.Errorf("after denial: %d %v", c, out)
	}

	// A wrong code typed by hand.
	if err := chromedp.Do(ctx, chromedp.Navigate(code["verification_uri"].(string)),
		chromedp.WaitVisible(chromedp.CSS("#user_code"))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "code")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#user_code"), "bbbb-bbbb"),
		chromedp.Submit(chromedp.CSS("#user_code")), chromedp.WaitVisible(chromedp.CSS(".message.error"))); err != nil {
		t.Fatal(err)
	}
	if msg := text(".message"); !strings.Contains(msg, "not valid") {
		t.Errorf("wrong code: %q", msg)
	}
	screenshot(t, ctx, "wrong-code")
}

// TestDeviceFlowStateMachine: RFC 8628 through the token endpoint —
// pending, slow_down raising the interval, expired, another client's code,
// and a code a partner-bound client may not use for this user.
func TestDeviceFlowStateMachine(t *testing.T) {
	g := deviceGateway(t, "TOLLGATE_DEVICE_CODE_TTL=2m", "TOLLGATE_DEVICE_INTERVAL=5s")
	code := askCode(t, g, "stb-box")
	for _, f := range []string{"device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"} {
		if code[f] == nil {
			t.Errorf("device authorization response without %s: %v", f, code)
		}
	}
	if uc := code["user_code"].(string); len(uc) != 9 || uc[4] != '-' || strings.ContainsAny(uc, "AEIOU01") {
		t.Errorf("user_code %q", uc)
	}
	dc := code["device_code"].(string)
	if c, out := poll(t, g, "stb-box", dc); c != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", c, out)
	}
	if c, out := poll(t, g, "stb-box", dc); c != 400 || out["error"] != "slow_down" {
		t.Errorf("a poll right after: %d %v", c, out)
	}
	g.clock.Add(6 * time.Second) // the interval is now 10 s: too soon again, and 15 s
	if c, out := poll(t, g, "stb-box", dc); c != 400 || out["error"] != "slow_down" {
		t.Errorf("a poll after the old interval: %d %v", c, out)
	}
	g.clock.Add(16 * time.Second)
	if c, out := poll(t, g, "stb-box", dc); c != 400 || out["error"] != "authorization_pending" {
		t.Errorf("a poll after the raised interval: %d %v", c, out)
	}
	if c, out := poll(t, g, "anonymous", dc); c != 400 || (out["error"] != "invalid_grant" && out["error"] != "unauthorized_client") {
		t.Errorf("another client's device_code: %d %v", c, out)
	}
	g.clock.Add(2 * time.Minute) // past expires_in, within the minute the store remembers it
	if c, out := poll(t, g, "stb-box", dc); c != 400 || out["error"] != "expired_token" {
		t.Errorf("after expiry: %d %v", c, out)
	}
	// The Keycloak paths, with and without /auth, answer the same.
	for _, path := range []string{"/auth/realms/platform/protocol/openid-connect/auth/device", "/realms/platform/protocol/openid-connect/auth/device"} {
		resp, b := send(t, http.MethodPost, g.url+path, "client_id=stb-box", "Content-Type", "application/x-www-form-urlencoded")
		if out := jsonObject(t, b); resp.StatusCode != 200 || out["device_code"] == nil || out["user_code"] == nil {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	// A client that does not list the grant.
	resp, b := send(t, http.MethodPost, g.url+"/oauth/device/code", "client_id=anonymous", "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 400 || jsonObject(t, b)["error"] != "unauthorized_client" {
		t.Errorf("a client without the grant: %d %s", resp.StatusCode, b)
	}
	_, d := send(t, http.MethodGet, g.url+"/.well-known/openid-configuration", "")
	disc := jsonObject(t, d)
	if disc["device_authorization_endpoint"] != g.url+"/oauth/device/code" || !strings.Contains(string(d), "urn:ietf:params:oauth:grant-type:device_code") {
		t.Errorf("discovery: %s", d)
	}
	if w := strings.Join(g.m.warnings, " "); strings.Contains(w, "device sign-in") {
		t.Errorf("a device warning with a store: %v", g.m.warnings)
	}
	// Without a store the endpoints are off, and check-config says why.
	off := startTokenGatewayEnv(t, deviceClients, true, nil)
	if w := strings.Join(off.m.warnings, " "); !strings.Contains(w, "device sign-in (RFC 8628) is off: its codes need a session store") {
		t.Errorf("no warning without a store: %v", off.m.warnings)
	}
	// The path is then an upstream's like any other: the proxy wants a token.
	if resp, _ := send(t, http.MethodPost, off.url+"/oauth/device/code", "client_id=stb-box", "Content-Type", "application/x-www-form-urlencoded"); resp.StatusCode != 401 {
		t.Errorf("device code without a store: %d", resp.StatusCode)
	}
	if _, d := send(t, http.MethodGet, off.url+"/.well-known/openid-configuration", ""); strings.Contains(string(d), "device") {
		t.Errorf("discovery without a store lists the device flow: %s", d)
	}
	// The QR code of the complete URI.
	resp, b = send(t, http.MethodGet, g.url+"/oauth/device/qr?user_code="+url.QueryEscape(code["user_code"].(string)), "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(string(b), "<svg") {
		t.Errorf("QR code: %d %s %.60s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

// TestDevicePageSecurity: the page's headers, a forged form post without
// the CSRF cookie, the cookie's flags, and the wrong-code limit.
func TestDevicePageSecurity(t *testing.T) {
	g := deviceGateway(t, "TOLLGATE_DEVICE_CODE_GUESSES=3")
	resp, body := send(t, http.MethodGet, g.url+"/device", "")
	h := resp.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		strings.Contains(csp, "unsafe-inline") || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
	if strings.Contains(string(body), "<script") || strings.Contains(string(body), "http://") && !strings.Contains(string(body), g.url) {
		t.Errorf("the page loads a script or an external asset")
	}
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "tollgate_device_csrf" {
			csrf = c
		}
	}
	if csrf == nil || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode || csrf.Secure {
		t.Errorf("CSRF cookie %+v (not Secure over plain HTTP)", csrf)
	}
	// Behind a trusted TLS proxy the cookie is Secure.
	tls := startTokenGatewayEnv(t, deviceClients, true, []string{"TOLLGATE_SESSION_STORE=memory", "TOLLGATE_TRUSTED_PROXIES=127.0.0.1/32"})
	resp, _ = send(t, http.MethodGet, tls.url+"/device", "", "X-Forwarded-Proto", "https")
	for _, c := range resp.Cookies() {
		if c.Name == "tollgate_device_csrf" && !c.Secure {
			t.Errorf("cookie over TLS is not Secure: %+v", c)
		}
	}
	// A forged post (no cookie, or a cookie that does not match) is refused.
	code := askCode(t, g, "stb-box")
	for _, hdr := range [][]string{nil, {"Cookie", "tollgate_device_csrf=forged"}} {
		resp, b := send(t, http.MethodPost, g.url+"/device", "csrf=other&step=decide&decision=approve&username=someuser%4024i.com&password=qwerty123&user_code="+url.QueryEscape(code["user_code"].(string)),
			append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
		if resp.StatusCode != 403 || !strings.Contains(string(b), "expired") {
			t.Errorf("forged post %v: %d", hdr, resp.StatusCode)
		}
	}
	if c, out := poll(t, g, "stb-box", code["device_code"].(string)); out["error"] != "authorization_pending" {
		t.Errorf("a forged post decided the code: %d %v", c, out)
	}
	// Guessing codes: 3 wrong codes per hour per client IP, then refused
	// (even a right code) until the hour has passed.
	post := func(userCode string) string {
		_, b := send(t, http.MethodPost, g.url+"/device", "csrf=tok&step=code&user_code="+url.QueryEscape(userCode),
			"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tollgate_device_csrf=tok")
		return string(b)
	}
	for range 3 {
		if b := post("BBBB-BBBB"); !strings.Contains(b, "not valid") {
			t.Fatalf("a wrong code: %s", b)
		}
	}
	if b := post(code["user_code"].(string)); !strings.Contains(b, "Too many attempts") {
		t.Errorf("after 3 wrong codes: %.200s", b)
	}
	if v := value(scrape(t, g.m), "tollgate_device_events_total", map[string]string{"event": "wrong_code"}); v != 3 {
		t.Errorf("wrong codes counted %v, want 3", v)
	}

	// Signing in on the page counts against the password grant's limits:
	// a login name with 2 attempts gets a third wrong password refused as
	// too many, and then the right one too.
	limited := startTokenGatewayEnv(t, deviceClients, true, []string{"TOLLGATE_SESSION_STORE=memory",
		"TOLLGATE_LOGIN_ATTEMPTS_PER_USER=2", "TOLLGATE_LOGIN_USER_REFILL=1h"})
	code = askCode(t, limited, "stb-box")
	signIn := func(password string) string {
		_, b := send(t, http.MethodPost, limited.url+"/device", "csrf=tok&step=decide&decision=approve&username=someuser%4024i.com&password="+password+
			"&user_code="+url.QueryEscape(code["user_code"].(string)), "Content-Type", "application/x-www-form-urlencoded", "Cookie", "tollgate_device_csrf=tok")
		return string(b)
	}
	for i, want := range []string{"Wrong e-mail", "Wrong e-mail", "Too many attempts", "Too many attempts"} {
		password := "wrong"
		if i == 3 {
			password = "qwerty123"
		}
		if b := signIn(password); !strings.Contains(b, want) {
			t.Errorf("sign-in %d: no %q in %.300s", i+1, want, b)
		}
	}
	if c, out := poll(t, limited, "stb-box", code["device_code"].(string)); out["error"] != "authorization_pending" {
		t.Errorf("a limited sign-in decided the code: %d %v", c, out)
	}
}

// TestDeviceFlowAcrossReplicas: gateways on one Redis are one device
// service — a code asked for on A is found and approved on B, polled on
// both: pending on either before, tokens exactly once after.
func TestDeviceFlowAcrossReplicas(t *testing.T) {
	redis := testkit.StartRedis(t)
	gs, _ := replicasWith(t, deviceClients, 2, redis.URL())
	a, b := gs[0], gs[1]
	code := askCode(t, a, "stb-box")
	dc, uc := code["device_code"].(string), code["user_code"].(string)
	if c, out := poll(t, b, "stb-box", dc); c != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("pending on B: %d %v", c, out)
	}
	advance(gs, 6*time.Second)
	if c, out := poll(t, a, "stb-box", dc); c != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("pending on A: %d %v", c, out)
	}
	// The page on B shows A's request, and approves it.
	resp, page := send(t, http.MethodGet, b.url+"/device?user_code="+url.QueryEscape(uc), "")
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Living room box") {
		t.Fatalf("B's page for A's code: %d %s", resp.StatusCode, page)
	}
	resp, page = send(t, http.MethodPost, b.url+"/device", "csrf=tok&step=decide&decision=approve&username=someuser%4024i.com&password=qwerty123&user_code="+url.QueryEscape(uc),
		"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tollgate_device_csrf=tok")
	if resp.StatusCode != 200 || !strings.Contains(string(page), "your device is signed in") {
		t.Fatalf("approval on B: %d %s", resp.StatusCode, page)
	}
	advance(gs, 6*time.Second)
	c, out := poll(t, a, "stb-box", dc)
	if c != 200 || out["refresh_token"] == nil {
		t.Fatalf("tokens on A: %d %v", c, out)
	}
	if c, out := poll(t, b, "stb-box", dc); c != 400 || out["error"] != "invalid_grant" {
		t.Errorf("the same code on B after A had the tokens: %d %v", c, out)
	}
	// The session is in the store: B refreshes the token A handed out.
	resp, body := send(t, http.MethodPost, b.url+"/oauth/token", "grant_type=refresh_token&client_id=stb-box&refresh_token="+out["refresh_token"].(string))
	if resp.StatusCode != 200 {
		t.Errorf("refresh on B of the device's session: %d %s", resp.StatusCode, body)
	}
}

// TestDevicePageBranding: the operator's product name, language and
// strings replace the defaults; a string that does not exist is a
// configuration error, not a silent no-op.
func TestDevicePageBranding(t *testing.T) {
	g := startTokenGatewayEnv(t, deviceClients+`
device_lang: de
device_texts:
  EnterCode: "Code vom Fernseher eingeben"
  Continue: "Weiter"
`, true, []string{"TOLLGATE_SESSION_STORE=memory", "TOLLGATE_DEVICE_PRODUCT=AcmeTV"})
	_, page := send(t, http.MethodGet, g.url+"/device", "")
	for _, want := range []string{`lang="de"`, "AcmeTV", "Code vom Fernseher eingeben", "Weiter"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page has no %q:\n%s", want, page)
		}
	}
	misspelt := filepath.Join(t.TempDir(), "tollgate.yaml")
	testkit.WriteFile(t, misspelt, deviceClients+"device_texts: {Aprove: Allow}\n")
	err := run(t.Context(), []string{"check-config"}, []string{
		"TOLLGATE_SIGNING_KEYS_DIR=" + g.keysDir, "TOLLGATE_USERS_FILE=" + g.users, "TOLLGATE_PUBLIC_URL=https://tollgate.test",
		"TOLLGATE_SESSION_STORE=memory", "TOLLGATE_CONFIG_FILE=" + misspelt,
	}, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `device texts: no string "Aprove"`) {
		t.Errorf("a misspelt device text: %v", err)
	}
}
