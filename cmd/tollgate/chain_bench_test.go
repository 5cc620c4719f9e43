package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/issuer"
)

// BenchmarkServeChain is one set-top box API call with a cached token
// through exactly the public handler `tollgate serve` builds — envelope,
// dispatch between token endpoints and proxy, auth, header mapping,
// Prometheus — with the token endpoints on, over an in-memory upstream.
// "token" is a userinfo call through the same handler, for the dispatch
// to the token endpoints.
func BenchmarkServeChain(b *testing.B) {
	m, tok := chainGateway(b)
	h := m.public.Handler
	stb := func(path string) *http.Request { return testkit.STBRequest(path, "Bearer "+tok) }
	b.Run("proxied", func(b *testing.B) { serveLoop(b, h, stb("/channels/1"), len(testkit.CatalogueBody)) })
	b.Run("userinfo", func(b *testing.B) { serveLoop(b, h, stb("/oauth/userinfo"), -1) })
}

// serveLoop serves req through h b.N times, each answer 200 with a body of
// bodyLen bytes (-1: any).
func serveLoop(b *testing.B, h http.Handler, req *http.Request, bodyLen int) {
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.Clone(req.Context()))
		if rec.Code != 200 || bodyLen >= 0 && rec.Body.Len() != bodyLen {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}

// chainMain builds the gateway with rt as every upstream.
func chainMain(b *testing.B, cfg *Config, logger *zap.Logger, rt http.RoundTripper) *Main {
	m, err := NewMain(cfg, logger, withUpstreamTransport(func(http.RoundTripper) http.RoundTripper { return rt }))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// chainGateway builds the gateway `tollgate serve` would for env (added
// to a users file, a signing key and an in-memory upstream), and returns
// it with an access token its password grant handed out.
func chainGateway(b *testing.B, env ...string) (*Main, string) {
	dir := b.TempDir()
	if _, _, err := issuer.GenerateKey(filepath.Join(dir, "keys"), "ES256", time.Now()); err != nil {
		b.Fatal(err)
	}
	hash, err := identity.PasswordHasher{}.Hash([]byte("pw"))
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "users.yaml"), []byte("users:\n  - {id: u1, username: stb, password_hash: \""+hash+"\", profiles: [p1]}\n"), 0o600)
	cfg, _, err := LoadConfig(append([]string{
		"TOLLGATE_UPSTREAM_URL=http://upstream.invalid", "TOLLGATE_PUBLIC_URL=http://tollgate.test",
		"TOLLGATE_SIGNING_KEYS_DIR=" + filepath.Join(dir, "keys"), "TOLLGATE_USERS_FILE=" + filepath.Join(dir, "users.yaml"),
	}, env...))
	if err != nil {
		b.Fatal(err)
	}
	m := chainMain(b, cfg, zap.NewNop(), testkit.Catalogue{})
	b.Cleanup(func() { m.tracer.Shutdown(context.Background()) })
	login := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(url.Values{
		"grant_type": {"password"}, "username": {"stb"}, "password": {"pw"}, "client_id": {"anonymous"}}.Encode()))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	m.public.Handler.ServeHTTP(rec, login)
	tok := rec.Body.String()
	if i := strings.Index(tok, `"access_token":"`); i >= 0 {
		tok = tok[i+len(`"access_token":"`):]
		tok = tok[:strings.IndexByte(tok, '"')]
	} else {
		b.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	return m, tok
}

// BenchmarkServeChainTracing is BenchmarkServeChain's proxied call with
// tracing off (propagation only: the default), and exporting over OTLP/HTTP
// to a loopback receiver that discards what it gets, with 1% and 100% of
// new traces sampled. The spans are serialised and sent by the SDK's batch
// goroutine, as in production.
func BenchmarkServeChainTracing(b *testing.B) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(receiver.Close)
	for _, c := range []struct{ name, ratio string }{{"off", ""}, {"sampled-1%", "0.01"}, {"sampled-100%", "1"}} {
		b.Run(c.name, func(b *testing.B) {
			var env []string
			if c.ratio != "" {
				env = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + receiver.URL, "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=" + c.ratio}
			}
			m, tok := chainGateway(b, env...)
			if m.tracer.Recording() != (c.ratio != "") {
				b.Fatal("tracing not as configured")
			}
			serveLoop(b, m.public.Handler, testkit.STBRequest("/channels/1", "Bearer "+tok), -1)
		})
	}
}
