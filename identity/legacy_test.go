package identity

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// requestRecorder is a legacy stand-in that records the raw request URI of
// every request and answers with one user.
type requestRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	uris []string // guarded by mu
}

func newRequestRecorder(t *testing.T) *requestRecorder {
	r := &requestRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.uris = append(r.uris, req.RequestURI)
		r.mu.Unlock()
		w.Write([]byte(`{"data":{"id":"9001"}}`))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *requestRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.uris...)
}

// The id put into LookupURL may come from an external token's sub: it
// must stay one path segment (or one query value), and "." and ".." are
// not looked up at all.
func TestLegacyLookupEscapesID(t *testing.T) {
	srv := newRequestRecorder(t)
	tests := []struct {
		name, lookupURL, id string
		wantURI             string // "" means ErrUnknownUser and no request
	}{
		{"plain", "/users/{id}", "9001", "/users/9001"},
		{"slash", "/users/{id}", "a/b", "/users/a%2Fb"},
		{"dot dot slash", "/users/{id}", "../admin", "/users/..%2Fadmin"},
		{"question mark", "/users/{id}", "a?admin=1", "/users/a%3Fadmin=1"},
		{"hash", "/users/{id}", "a#b", "/users/a%23b"},
		{"percent", "/users/{id}", "50%", "/users/50%25"},
		{"escaped dots", "/users/{id}", "%2e%2e", "/users/%252e%252e"},
		{"space", "/users/{id}", "a b", "/users/a%20b"},
		{"three dots", "/users/{id}", "...", "/users/..."},
		{"before a suffix", "/users/{id}/profile", "a/b", "/users/a%2Fb/profile"},
		{"in the query", "/users?id={id}&full=1", "1&admin=1", "/users?id=1%26admin%3D1&full=1"},
		{"in the query, more", "/users?id={id}", "a#b/c?d%", "/users?id=a%23b%2Fc%3Fd%25"},
		{"dot dot", "/users/{id}", "..", ""},
		{"dot", "/users/{id}", ".", ""},
		{"empty", "/users/{id}", "", ""},
		{"dot dot in the query", "/users?id={id}", "..", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLegacy(LegacyConfig{LoginURL: srv.URL + "/login", LookupURL: srv.URL + tt.lookupURL, UserIDPath: "data.id"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := len(srv.seen())
			u, err := l.Lookup(t.Context(), tt.id)
			sent := srv.seen()[before:]
			if tt.wantURI == "" {
				if !errors.Is(err, ErrUnknownUser) || u != nil || len(sent) != 0 {
					t.Errorf("got %v, %v after requests %q; want ErrUnknownUser and no request", u, err, sent)
				}
				return
			}
			if err != nil || u == nil || u.ID != "9001" {
				t.Errorf("got %v, %v", u, err)
			}
			if len(sent) != 1 || sent[0] != tt.wantURI {
				t.Errorf("requests %q, want [%q]", sent, tt.wantURI)
			}
		})
	}
}

func TestNewLegacyLookupURL(t *testing.T) {
	tests := []struct {
		name, lookupURL string
		ok              bool
	}{
		{"in the path", "https://legacy.example/users/{id}", true},
		{"in the query", "https://legacy.example/users?id={id}", true},
		{"no {id}", "https://legacy.example/users", false},
		{"in the host", "https://{id}.legacy.example/user", false},
		{"in the fragment", "https://legacy.example/users#{id}", false},
		{"not http", "ftp://legacy.example/users/{id}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLegacy(LegacyConfig{LoginURL: "https://legacy.example/login", LookupURL: tt.lookupURL, UserIDPath: "id"}, nil)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Errorf("err %v; want ok %v", err, tt.ok)
			}
		})
	}
}
