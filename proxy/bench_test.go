package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/internal/bareproxy"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/proxy"
)

// answer204 is an in-memory upstream that answers 204 with no headers.
type answer204 struct{}

func (answer204) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 204, Header: http.Header{}, Body: http.NoBody, Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

// BenchmarkMiddleware/* compare one set-top box request with a cached
// token through the Proxy against the bare ReverseProxy with the same
// buffer reuse, both over an in-memory upstream, so that the difference is
// the proxy's own per-request cost:
//
//   - bare: httputil.ReverseProxy with Rewrite SetURL/SetXForwarded.
//   - proxy: Proxy.ServeHTTP (route, identity strip, bearer extraction,
//     cache hit, scope check, header mapping) with no observer.
//
// What `tollgate serve` runs in all — the envelope, the dispatch between
// token endpoints and proxy, and Prometheus around this — is
// BenchmarkServeChain in cmd/tollgate.
func BenchmarkMiddleware(b *testing.B) {
	f := newFixture(b)
	cfg := proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "a", URL: "http://upstream.invalid"}},
		Routes:    []proxy.Route{{Prefix: "/", Upstream: "a", Scopes: []string{"catalog"}}},
	}
	p := newProxy(b, cfg, f.v, proxy.WrapTransport(func(http.RoundTripper) http.RoundTripper { return testkit.Catalogue{} }))
	target, _ := url.Parse("http://upstream.invalid")
	bare := bareproxy.New(target, true, nil)
	bare.Transport = testkit.Catalogue{}
	tok := "Bearer " + f.token(b, nil)
	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"proxy", p}} {
		b.Run(h.name, func(b *testing.B) {
			req := testkit.STBRequest("/channels/1", tok)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.h.ServeHTTP(rec, req.Clone(req.Context()))
				if rec.Code != 200 || rec.Body.Len() != len(testkit.CatalogueBody) {
					b.Fatal(rec.Code, rec.Body.Len())
				}
			}
		})
	}
}
