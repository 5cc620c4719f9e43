// Package bareproxy is the baseline tollgate's speed is measured against
// (tollgate-bench, BenchmarkServeLoopback, the proxy's benchmarks): a bare
// httputil.ReverseProxy, with a buffer pool or not and with extra upstream
// headers or not, and the upstream side of finding out which headers a
// proxy adds to the requests it forwards.
package bareproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
)

// BufferPool is the plainest httputil.BufferPool: 32 KiB buffers in a
// sync.Pool.
type BufferPool struct{ p sync.Pool }

// Get implements httputil.BufferPool.
func (b *BufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put implements httputil.BufferPool.
func (b *BufferPool) Put(buf []byte) { b.p.Put(&buf) }

// New returns the bare proxy to target: Rewrite with SetURL and
// SetXForwarded, then extra added to every upstream request's header (the
// same values each time; nil: nothing), over a transport with tollgate's
// keep-alive pool sizes (64 idle connections per host, 256 in all) and,
// with pool, a BufferPool for its copy buffers as tollgate has (without
// one, each request allocates a 32 KiB buffer).
func New(target *url.URL, pool bool, extra http.Header) *httputil.ReverseProxy {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			for k, v := range extra {
				pr.Out.Header[k] = v
			}
		},
		Transport: t,
	}
	if pool {
		rp.BufferPool = &BufferPool{}
	}
	return rp
}

// EchoQuery is the query string to which an upstream wrapped in Echo
// answers with the request's header.
const EchoQuery = "echo-headers"

// Echo wraps an upstream's handler: a request whose query is EchoQuery
// gets 200 and its own header in wire format; every other goes to next.
func Echo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == EchoQuery {
			r.Header.Write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// HeaderDiff compares what an upstream behind Echo receives for a GET of
// path with authorization through the proxy at gateway and through the
// one at bare (both base URLs): added holds the headers, with their
// values, that only gateway's request has, removed those that only bare's
// has.
func HeaderDiff(ctx context.Context, client *http.Client, bare, gateway, path, authorization string) (added, removed http.Header, err error) {
	received := func(base string) (http.Header, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+EchoQuery, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", authorization)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: the upstream's header echo: %s", base, resp.Status)
		}
		h, err := textproto.NewReader(bufio.NewReader(io.MultiReader(resp.Body, strings.NewReader("\r\n")))).ReadMIMEHeader()
		return http.Header(h), err
	}
	ours, err := received(bare)
	if err != nil {
		return nil, nil, err
	}
	theirs, err := received(gateway)
	if err != nil {
		return nil, nil, err
	}
	added, removed = http.Header{}, http.Header{}
	for k, v := range theirs {
		if _, ok := ours[k]; !ok {
			added[k] = v
		}
	}
	for k, v := range ours {
		if _, ok := theirs[k]; !ok {
			removed[k] = v
		}
	}
	return added, removed, nil
}
