package bareproxy

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// TestHeaderDiff: between two bare proxies to one upstream, one adding
// two headers, HeaderDiff finds exactly those two with their values, and
// a proxy that drops the Authorization header has it removed; the
// upstream's other requests reach its own handler.
func TestHeaderDiff(t *testing.T) {
	up := httptest.NewServer(Echo(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	bare := httptest.NewServer(New(target, false, nil))
	defer bare.Close()
	extra := http.Header{"X-User-Id": {"u1"}, "X-Scopes": {"openid profile"}}
	adding := httptest.NewServer(New(target, true, extra))
	defer adding.Close()

	added, removed, err := HeaderDiff(t.Context(), http.DefaultClient, bare.URL, adding.URL, "/api/x", "Bearer t")
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 || added.Get("X-User-Id") != "u1" || added.Get("X-Scopes") != "openid profile" || len(removed) != 0 {
		t.Errorf("added %v, removed %v; want %v added", added, removed, extra)
	}
	if added, removed, err := HeaderDiff(t.Context(), http.DefaultClient, bare.URL, bare.URL, "/api/x", "Bearer t"); err != nil || len(added)+len(removed) != 0 {
		t.Errorf("a proxy against itself: %v %v %v", added, removed, err)
	}
	dropping := New(target, true, nil)
	rewrite := dropping.Rewrite
	dropping.Rewrite = func(pr *httputil.ProxyRequest) { rewrite(pr); pr.Out.Header.Del("Authorization") }
	drops := httptest.NewServer(dropping)
	defer drops.Close()
	if added, removed, err := HeaderDiff(t.Context(), http.DefaultClient, bare.URL, drops.URL, "/api/x", "Bearer t"); err != nil || len(added) != 0 || removed.Get("Authorization") != "Bearer t" || len(removed) != 1 {
		t.Errorf("a proxy dropping Authorization: added %v, removed %v, %v", added, removed, err)
	}
	resp, err := http.Get(adding.URL + "/api/x?other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("a request without the echo query: %s, want the upstream's 204", resp.Status)
	}
	// A proxy whose upstream does not echo is an error, not "nothing added".
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	if _, _, err := HeaderDiff(t.Context(), http.DefaultClient, plain.URL, adding.URL, "/api/x", "Bearer t"); err == nil {
		t.Error("no error from an upstream that does not echo")
	}
}
