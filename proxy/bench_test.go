package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/proxy"
)

// answer204 is an in-memory upstream that answers 204 with no headers.
type answer204 struct{}

func (answer204) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 204, Header: http.Header{}, Body: http.NoBody, Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

// catalogue is an in-memory upstream answering like a small JSON API: it
// isolates the middleware's own cost from sockets.
type catalogue struct{}

const catalogueBody = `{"channels":[101,102,103]}`

func (catalogue) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{
			"Content-Type":   {"application/json"},
			"Content-Length": {strconv.Itoa(len(catalogueBody))},
			"Cache-Control":  {"private, max-age=60"},
			"Date":           {"Wed, 25 Nov 2026 07:00:00 GMT"},
		},
		ContentLength: int64(len(catalogueBody)),
		Body:          io.NopCloser(strings.NewReader(catalogueBody)),
	}, nil
}

// stbRequest is a set-top box's API call: the headers its HTTP stack sends.
func stbRequest(bearer string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/channels/1", nil)
	req.Header.Set("Authorization", bearer)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) STB/4.2")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Accept-Language", "en-GB")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("X-Device-Serial", "STB-0042-7731")
	return req
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
	p := newProxy(b, cfg, f.v, proxy.WrapTransport(func(http.RoundTripper) http.RoundTripper { return catalogue{} }))
	target, _ := url.Parse("http://upstream.invalid")
	bare := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: catalogue{}, BufferPool: &testPool{}}
	tok := "Bearer " + f.token(b, nil)
	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"proxy", p}} {
		b.Run(h.name, func(b *testing.B) {
			req := stbRequest(tok)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.h.ServeHTTP(rec, req.Clone(req.Context()))
				if rec.Code != 200 || rec.Body.Len() != len(catalogueBody) {
					b.Fatal(rec.Code, rec.Body.Len())
				}
			}
		})
	}
}
