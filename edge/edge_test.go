package edge_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/metrics"
)

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRequestIDs(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	var seen string
	h := edge.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = edge.RequestID(r.Context())
		info := edge.InfoFrom(r.Context())
		info.Route, info.User, info.Auth = "api", "u-1", "ok"
	}), zap.New(core), nil)
	generated := map[string]bool{}
	for _, tt := range []struct{ in, want string }{
		{"abc-123.x:y_z", "abc-123.x:y_z"},
		{"", ""},
		{"bad id with spaces", ""},
		{strings.Repeat("a", 129), ""},
		{"", ""},
	} {
		logs.TakeAll()
		req := httptest.NewRequest(http.MethodGet, "/channels?access_token=secret-in-query", nil)
		if tt.in != "" {
			req.Header.Set("X-Request-Id", tt.in)
		}
		rec := serve(h, req)
		id := rec.Header().Get("X-Request-Id")
		if tt.want != "" && id != tt.want || tt.want == "" && (id == "" || id == tt.in) {
			t.Errorf("in %q: response id %q", tt.in, id)
		}
		if seen != id {
			t.Errorf("handler saw id %q, response %q", seen, id)
		}
		if tt.want == "" {
			if generated[id] {
				t.Errorf("request id %q generated twice", id)
			}
			generated[id] = true
		}
		entries := logs.FilterMessage("request").All()
		if len(entries) != 1 {
			t.Fatalf("%d access log lines", len(entries))
		}
		fields := entries[0].ContextMap()
		for k, want := range map[string]any{"route": "api", "user": "u-1", "auth": "ok", "status": int64(200), "path": "/channels", "request_id": id} {
			if fields[k] != want {
				t.Errorf("log field %s = %v, want %v", k, fields[k], want)
			}
		}
		line, _ := json.Marshal(fields)
		if strings.Contains(string(line), "secret-in-query") {
			t.Errorf("the access log holds the query: %s", line)
		}
	}
}

func TestStatusWhenNothingWritten(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := edge.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		edge.InfoFrom(r.Context()).Status = edge.StatusClientClosed
	}), zap.New(core), nil)
	serve(h, httptest.NewRequest(http.MethodGet, "/x", nil))
	if e := logs.FilterMessage("request").All(); len(e) != 1 || e[0].ContextMap()["status"] != int64(499) {
		t.Errorf("access log: %v", e)
	}
}

func TestRecoversPanics(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := edge.New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), zap.New(core), nil)
	rec := serve(h, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"server_error"`) || strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("panic answered %d %s", rec.Code, rec.Body)
	}
	if logs.FilterMessage("panic serving request").Len() != 1 {
		t.Error("panic not logged")
	}
	if e := logs.FilterMessage("request").All(); len(e) != 1 || e[0].ContextMap()["status"] != int64(500) {
		t.Errorf("access log after panic: %v", e)
	}
}

func TestLogFieldsOutsideTheEnvelope(t *testing.T) {
	if f := edge.LogFields(t.Context()); f != nil {
		t.Errorf("fields without a request: %v", f)
	}
	if edge.InfoFrom(t.Context()) != nil || edge.RequestID(t.Context()) != "" {
		t.Error("an Info outside the envelope")
	}
	edge.SetRoute(t.Context(), "x") // must not panic
	ctx, info := edge.WithInfo(t.Context())
	edge.SetRoute(ctx, "x")
	if info.Route != "x" || edge.InfoFrom(ctx) != info {
		t.Errorf("WithInfo: %+v", info)
	}
}

func TestDispatch(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(name + ":" + r.PathValue("id")))
		})
	}
	d, err := edge.NewDispatch([]edge.Endpoint{
		{Pattern: "POST /oauth/token", Handler: named("token")},
		{Pattern: "GET /profiles/{id}/tokens", Handler: named("profile")},
	}, named("proxy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/oauth/token", "token:"},
		{"GET", "/oauth/token", "proxy:"},    // another method: the upstream's business
		{"POST", "/oauth/token/x", "proxy:"}, // a longer path
		{"POST", "/oauth/tokenx", "proxy:"},
		{"GET", "/profiles/p1/tokens", "profile:p1"},
		{"HEAD", "/profiles/p1/tokens", "profile:p1"},
		{"GET", "/profiles/a/../p1/tokens", "proxy:"}, // not canonical: the proxy refuses it, the mux would redirect
		{"GET", "/profiles//tokens", "proxy:"},
		{"GET", "/channels/1", "proxy:"},
		{"POST", "/oauth%2Ftoken", "proxy:"},
	} {
		req := httptest.NewRequest(tc.method, "http://x"+tc.path, nil)
		if got := serve(d, req).Body.String(); got != tc.want && tc.method != "HEAD" {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
	if _, err := edge.NewDispatch([]edge.Endpoint{{Pattern: "POST /a", Handler: named("a")}, {Pattern: "POST /a", Handler: named("b")}}, named("proxy")); err == nil {
		t.Error("a pattern registered twice was accepted")
	}
	if _, err := edge.NewDispatch([]edge.Endpoint{{Pattern: "POST nope", Handler: named("a")}}, named("proxy")); err == nil {
		t.Error("a pattern without a path was accepted")
	}
}

func TestChallenges(t *testing.T) {
	c := edge.NewChallenges(`video "api"`)
	rec := httptest.NewRecorder()
	c.InvalidToken("expired", "token expired").Write(rec)
	if rec.Code != 401 || rec.Header().Get("Www-Authenticate") != `Bearer realm="video \"api\"", error="invalid_token", error_description="token expired"` ||
		rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("invalid token: %d %v", rec.Code, rec.Header())
	}
	var body map[string]string
	if json.Unmarshal(rec.Body.Bytes(), &body); body["error"] != "invalid_token" || body["error_description"] != "token expired" {
		t.Errorf("body %s", rec.Body)
	}
	if c.InvalidToken("expired", "token expired") != c.InvalidToken("expired", "other words") {
		t.Error("a refusal is built twice for one reason")
	}
	if f := c.Forbidden([]string{"a", "b"}); f.Status != 403 || !strings.HasSuffix(f.Challenge, `scope="a b"`) {
		t.Errorf("forbidden: %+v", f)
	}
	if f := c.Missing; f.Status != 401 || strings.Contains(f.Challenge, "error=") {
		t.Errorf("missing: RFC 6750 §3.1 wants no error code: %+v", f)
	}
}

// FuzzBearerToken checks the extraction of the Authorization header: a
// token is found only as the whole tail of one Bearer header, without
// whitespace. Seeds: the headers fielded clients send (docs/CLIENTS.md).
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{
		"Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJBbWlub1RWIEFQSSJ9.BL5bRDANTPJqTSiPdUWKN3xSEJTqdVoDuwqrYSaW1xY",
		"bearer a.b.c", "Bearer  a.b.c", "Bearer\ta.b.c", "Basic dXNlcjpwYXNz", "Bearer abc==", "Bearer a=b", "Bearer", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		tok, status := edge.BearerToken(http.Header{"Authorization": {value}})
		if status != edge.TokenFound {
			if tok != "" {
				t.Fatalf("status %v with token %q", status, tok)
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,") || !strings.HasSuffix(value, tok) || !edge.IsB64Token(tok) {
			t.Fatalf("bad extraction %q from %q", tok, value)
		}
		if two, st := edge.BearerToken(http.Header{"Authorization": {value, value}}); st != edge.TokenInvalid || two != "" {
			t.Fatalf("two Authorization headers accepted: %v", st)
		}
	})
}

// BenchmarkEdge is the envelope's own cost (request ID, context, status
// recording, access-log level check, panic guard), without and with the
// Prometheus collectors, around a handler that only answers 200; "bare" is
// that handler alone.
func BenchmarkEdge(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, h := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", ok},
		{"edge", edge.New(ok, zap.NewNop(), nil)},
		{"edge+metrics", edge.New(ok, zap.NewNop(), metrics.New(metrics.BuildInfo{}))},
		{"edge+traceparent", edge.New(ok, zap.NewNop(), nil)},
	} {
		b.Run(h.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/channels/1", nil)
			if h.name == "edge+traceparent" {
				req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.h.ServeHTTP(rec, req.Clone(req.Context()))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}

// FuzzCanonicalPath: a path CanonicalPath accepts is already clean (no dot
// or empty segments), holds none of the characters upstreams read
// differently, and decodes to itself a second time, so no upstream that
// decodes again or normalises sees another path.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/channels/1", "/public/../admin", "/admin;x/users", "/admin%5Cusers", "/public/%252e%252e/admin",
		"/a%2Fb", "/a%20b", "/%20a", "/a/", "//a", "/a\x00b", "/open/..;/secret", "/ADMIN", "/%c0%ae%c0%ae/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !edge.CanonicalPath(u) {
			return
		}
		p := u.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && p != "/" {
			clean += "/"
		}
		if clean != p {
			t.Fatalf("%q accepted, but it cleans to %q", p, clean)
		}
		if strings.ContainsAny(p, ";\\%\x00\r\n\t") {
			t.Fatalf("%q accepted with a character upstreams read differently", p)
		}
		if again, err := url.PathUnescape(p); err != nil || again != p {
			t.Fatalf("%q decodes again to %q", p, again)
		}
	})
}
