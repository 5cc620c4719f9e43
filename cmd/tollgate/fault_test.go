package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/issuer"
)

// TestFaultSuite drives the gateway against upstream stand-ins that fail
// on command. For each fault it checks what the client gets (status and
// JSON body), the log line with the request ID, the metric, and that the
// next good request is served.
func TestFaultSuite(t *testing.T) {
	faulty, chunks := testkit.Faulty(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	g := startTokenGatewayEnv(t, sourceDocClients+fmt.Sprintf(`
upstreams:
  - {name: faulty, url: %q}
  - {name: down, url: "http://%s"}
routes:
  - {name: faulty, prefix: /f, upstream: faulty, strip_prefix: true}
  - {name: down, prefix: /down, upstream: down}
`, faulty.URL, down), true, []string{"TOLLGATE_UPSTREAM_TIMEOUT=300ms"})
	auth := "Bearer " + login(t, g)
	good := func(t *testing.T) {
		t.Helper()
		if resp, b := send(t, http.MethodGet, g.url+"/f/ok", "", "Authorization", auth); resp.StatusCode != 200 || string(b) != `{"ok":true}` {
			t.Errorf("the next good request: %d %s", resp.StatusCode, b)
		}
	}
	for _, tc := range []struct {
		name, path   string
		status       int    // what the client gets
		body         string // its JSON error code; "" for a cut-off body
		logged       string // the log message naming the fault
		kind         string // tollgate_upstream_errors_total kind
		accessStatus int64  // status in the access log and the requests metric
		aborted      string
	}{
		{"upstream refuses connections", "/down/x", 502, "bad_gateway", "upstream request failed", "refused", 502, ""},
		{"upstream hangs", "/f/hang", 504, "gateway_timeout", "upstream request failed", "timeout", 504, ""},
		{"upstream resets mid-headers", "/f/reset-headers", 502, "bad_gateway", "upstream request failed", "reset", 502, ""},
		{"upstream resets mid-body", "/f/reset-body", 200, "", "upstream response cut off", "reset", 502, "upstream_reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := scrape(t, g.m)
			g.logs.TakeAll()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, g.url+tc.path, nil)
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Request-Id", "fault-"+tc.kind+fmt.Sprint(tc.status))
			id := req.Header.Get("X-Request-Id")
			// A fresh connection: Go's client retries a GET that failed on a
			// reused one, which would count the fault twice.
			once := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := once.Do(req)
			if tc.body == "" {
				// Cut off after the headers: the client sees a broken
				// response — the headers and part of the body, or, when
				// they were still buffered, nothing but the close.
				if err == nil {
					body, readErr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if readErr == nil || resp.StatusCode != tc.status {
						t.Errorf("a cut-off response read whole: %d, %d bytes", resp.StatusCode, len(body))
					}
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if out := jsonObject(t, body); resp.StatusCode != tc.status || out["error"] != tc.body {
					t.Errorf("%d %s, want %d error %s", resp.StatusCode, body, tc.status, tc.body)
				}
			}
			lines := g.logs.FilterMessage(tc.logged).FilterField(zap.String("request_id", id)).All()
			if len(lines) != 1 {
				t.Errorf("%d %q log lines with request_id %s", len(lines), tc.logged, id)
			}
			access := g.logs.FilterMessage("request").FilterField(zap.String("request_id", id)).All()
			if len(access) != 1 || access[0].ContextMap()["status"] != tc.accessStatus || access[0].ContextMap()["aborted"] != tc.aborted {
				t.Errorf("access log %v, want status %d aborted %q", access, tc.accessStatus, tc.aborted)
			}
			after := scrape(t, g.m)
			upstream := map[string]string{"upstream": map[bool]string{true: "down", false: "faulty"}[tc.kind == "refused"], "kind": tc.kind}
			if d := value(after, "tollgate_upstream_errors_total", upstream) - value(before, "tollgate_upstream_errors_total", upstream); d != 1 {
				t.Errorf("upstream errors %v: delta %v, want 1", upstream, d)
			}
			code := map[string]string{"code": fmt.Sprint(tc.accessStatus)}
			if d := value(after, "tollgate_http_requests_total", code) - value(before, "tollgate_http_requests_total", code); d != 1 {
				t.Errorf("requests with code %v: delta %v, want 1", code, d)
			}
			good(t)
		})
	}
	t.Run("client aborts a stream", func(t *testing.T) {
		g.logs.TakeAll()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, g.url+"/f/stream", nil)
		req.Header.Set("Authorization", auth)
		go func() { chunks <- struct{}{} }() // the first chunk brings the headers
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // the client leaves mid-stream
		id := resp.Header.Get("X-Request-Id")
		deadline := time.Now().Add(10 * time.Second)
		for { // the gateway notices when it next writes
			select {
			case chunks <- struct{}{}:
			default:
				runtime.Gosched()
			}
			if lines := g.logs.FilterMessage("request").FilterField(zap.String("request_id", id)).All(); len(lines) == 1 {
				if lines[0].ContextMap()["aborted"] != "client_gone" || lines[0].ContextMap()["status"] != int64(499) {
					t.Errorf("access log %v", lines[0].ContextMap())
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the aborted stream was never logged")
			}
		}
		good(t)
	})
}

// TestRemovingTheLastKeyStopsSigning: with every key file gone, no token
// is minted (503 in the endpoint's dialect) and none of the removed keys'
// tokens verifies; a new key brings the token endpoints back.
func TestRemovingTheLastKeyStopsSigning(t *testing.T) {
	g := startAuthGateway(t, sourceDocClients)
	access := login(t, g)
	files, _ := filepath.Glob(filepath.Join(g.keysDir, "*.pem"))
	for _, f := range files {
		os.Remove(f)
	}
	if err := g.m.keys.Reload(); err == nil {
		t.Error("an emptied keys directory reloaded as if nothing happened")
	}
	resp, b := send(t, http.MethodPost, g.url+"/oauth/token", "grant_type=password&client_id=anonymous&username=someuser@24i.com&password=qwerty123")
	if resp.StatusCode != http.StatusServiceUnavailable || jsonObject(t, b)["error"] != "temporarily_unavailable" {
		t.Errorf("login without a key: %d %s", resp.StatusCode, b)
	}
	resp, b = send(t, http.MethodPost, g.url+"/api/auth/v1/access_tokens", `{"grant_type":"password","credentials":{"username":"someuser@24i.com","password":"qwerty123"}}`)
	if out := decodeJSONAPI(t, b); resp.StatusCode != 503 || len(out.Errors) != 1 || out.Errors[0]["status"] != "503" {
		t.Errorf("JSON:API login without a key: %d %s", resp.StatusCode, b)
	}
	if code, _ := callAPI(t, g, "/x", "Bearer "+access); code != 401 {
		t.Errorf("a removed key's token: %d, want 401", code)
	}
	if kids := jwksKids(t, g); len(kids) != 0 {
		t.Errorf("still published: %v", kids)
	}
	if _, _, err := issuer.GenerateKey(g.keysDir, "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := g.m.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := callAPI(t, g, "/x", "Bearer "+login(t, g)); code != 200 {
		t.Errorf("a token of the new key: %d", code)
	}
}

// TestReadyAfterTheJWKSComesBack: with the identity provider's JWKS down
// at start, /readyz is 503 and says why; once the JWKS answers, the
// gateway retries on its own and becomes ready without waiting for the
// refresh interval (15 minutes) or a token.
func TestReadyAfterTheJWKSComesBack(t *testing.T) {
	key := testkit.NewKey(t, "ES256", "idp-1")
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(key.JWKS(t))
	}))
	t.Cleanup(jwks.Close)
	gw := startGateway(t, fmt.Sprintf(`
trusted_issuers:
  - {issuer: https://idp.test, audiences: [api], jwks_urls: [%q]}
`, jwks.URL), "TOLLGATE_UPSTREAM_URL="+testkit.Echo(t, "api").URL, "TOLLGATE_JWKS_RETRY_BACKOFF=10ms", "TOLLGATE_JWKS_REFRESH=15m")
	readyz := func() (int, map[string]any) {
		resp := get(t, "http://"+gw.m.AdminAddr()+"/readyz")
		defer resp.Body.Close()
		return resp.StatusCode, decode[map[string]any](t, resp)
	}
	code, body := readyz()
	keys, _ := body["keys"].([]any)
	if code != 503 || len(keys) != 1 || keys[0].(map[string]any)["ready"] != false {
		t.Fatalf("JWKS down: /readyz %d %v", code, body)
	}
	up.Store(true)
	waitFor(t, func() bool { code, _ := readyz(); return code == 200 })
	tok := key.Access(t, testkit.Claims("https://idp.test", "api", time.Now(), nil))
	if resp := gw.do(t, http.MethodGet, "/x", tok); resp.StatusCode != 200 {
		t.Errorf("a token of the IdP once ready: %d", resp.StatusCode)
	}
}
