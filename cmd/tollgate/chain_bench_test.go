package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/internal/bareproxy"
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

// chainMain builds the gateway with rt as every upstream (nil: the real
// transport, to TOLLGATE_UPSTREAM_URL).
func chainMain(b *testing.B, cfg *Config, logger *zap.Logger, rt http.RoundTripper) *Main {
	var opts []mainOption
	if rt != nil {
		opts = append(opts, withUpstreamTransport(func(http.RoundTripper) http.RoundTripper { return rt }))
	}
	m, err := NewMain(cfg, logger, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// chainGateway builds the gateway `tollgate serve` would for env (added
// to a users file, a signing key and an in-memory upstream), and returns
// it with an access token its password grant handed out.
func chainGateway(b *testing.B, env ...string) (*Main, string) {
	return chainGatewayTo(b, testkit.Catalogue{}, env...)
}

// chainGatewayTo is chainGateway with rt as the upstream (nil: the real
// transport, to a TOLLGATE_UPSTREAM_URL in env).
func chainGatewayTo(b *testing.B, rt http.RoundTripper, env ...string) (*Main, string) {
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
	m := chainMain(b, cfg, zap.NewNop(), rt)
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

// BenchmarkServeLoopback is a set-top box's API call through `tollgate
// serve`'s public listener to an upstream answering 204, over loopback
// keep-alive connections from 8 client goroutines per GOMAXPROCS, against
// bare httputil.ReverseProxy baselines (internal/bareproxy) in the same
// process: with a buffer pool (bp), and the same adding the upstream
// headers tollgate adds (bh: identity, X-Request-Id, traceparent, learnt
// from what the upstream received from each), as tollgate-bench's (bp)
// and (bh). Client, proxy and upstream share the process, so cpu-µs/op is
// all three's: the differences between the sub-benchmarks are the
// proxies'. Profile one at a time (-bench 'ServeLoopback/tollgate$'
// -cpuprofile) to see where (docs/PERFORMANCE.md, "Fleet", item 7).
func BenchmarkServeLoopback(b *testing.B) {
	up := httptest.NewServer(bareproxy.Echo(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	b.Cleanup(up.Close)
	m, tok := chainGatewayTo(b, nil, "TOLLGATE_UPSTREAM_URL="+up.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go m.public.Serve(ln)
	b.Cleanup(func() { m.public.Close() })
	gateway := "http://" + ln.Addr().String()
	auth := "Bearer " + tok
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	target, _ := url.Parse(up.URL)
	bare := func(extra http.Header) string {
		srv := httptest.NewUnstartedServer(bareproxy.New(target, true, extra))
		srv.Config.ReadHeaderTimeout = 10 * time.Second
		srv.Start()
		b.Cleanup(srv.Close)
		return srv.URL
	}
	bp := bare(nil)
	added, _, err := bareproxy.HeaderDiff(b.Context(), client, bp, gateway, "/channels/1", auth)
	if err != nil || added.Get("X-User-Id") == "" || added.Get("X-Request-Id") == "" {
		b.Fatalf("tollgate added no identity headers upstream: %v %v", added, err)
	}
	for _, c := range []struct{ name, url string }{{"bp", bp}, {"bh", bare(added)}, {"tollgate", gateway}} {
		b.Run(c.name, func(b *testing.B) { loopbackLoad(b, client, c.url+"/channels/1", auth) })
	}
}

// loopbackLoad sends b.N GETs of target with auth from 8 goroutines per GOMAXPROCS and
// reports the process's CPU per request.
func loopbackLoad(b *testing.B, client *http.Client, target, auth string) {
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				b.Errorf("%s: %s", target, resp.Status)
				return
			}
		}
	})
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
