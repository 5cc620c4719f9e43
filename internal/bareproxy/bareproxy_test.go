package bareproxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestHeadersAdded: between two bare proxies to one upstream, one adding
// two headers, HeadersAdded finds exactly those two with their values,
// and the upstream's other requests reach its own handler.
func TestHeadersAdded(t *testing.T) {
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

	added, err := HeadersAdded(t.Context(), http.DefaultClient, bare.URL, adding.URL, "/api/x", "Bearer t")
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 || added.Get("X-User-Id") != "u1" || added.Get("X-Scopes") != "openid profile" {
		t.Errorf("added %v, want %v", added, extra)
	}
	if added, err := HeadersAdded(t.Context(), http.DefaultClient, bare.URL, bare.URL, "/api/x", "Bearer t"); err != nil || len(added) != 0 {
		t.Errorf("a proxy against itself: %v %v", added, err)
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
	if _, err := HeadersAdded(t.Context(), http.DefaultClient, plain.URL, adding.URL, "/api/x", "Bearer t"); err == nil {
		t.Error("no error from an upstream that does not echo")
	}
}
