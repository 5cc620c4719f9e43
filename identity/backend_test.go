package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate/tollgate/jsonpath"
	"go.uber.org/zap"
)

func TestParseReply(t *testing.T) {
	reply, err := parseReply([]byte(`{"data":{"id":9001,"big":12345678901234567890}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := jsonpath.GetText(reply, "data.big"); !ok || got != "12345678901234567890" {
		t.Errorf("a big id lost its digits: %q", got)
	}
	if _, err := parseReply([]byte(`{"a":1} {"b":2}`)); err == nil {
		t.Error("two JSON values accepted")
	}
}

// FuzzLegacyReply feeds arbitrary replies and paths to the parser the
// legacy and external backends use.
func FuzzLegacyReply(f *testing.F) {
	f.Add(`{"data":{"user":{"id":"2"}}}`, "data.user.id")
	f.Add(`{"data":{"id":9001,"profiles":["lp1","lp2"]}}`, "data.profiles.0")
	f.Add(`{"active":true,"sub":"ext-42","exp":1700000000}`, "sub")
	f.Add(`[1,2,{"x":"y"}]`, "2.x")
	f.Add(`{"a":`, "a")
	f.Add(`nul`, "")
	f.Fuzz(func(t *testing.T, body, path string) {
		v, err := parseReply([]byte(body))
		if err != nil {
			return
		}
		s, ok := jsonpath.GetText(v, path)
		if ok && s == "" {
			t.Fatal("ok with an empty string")
		}
		l := &Legacy{cfg: LegacyConfig{UserIDPath: path, ProfilesPath: path, ClaimPaths: map[string]string{"x": path}}, logger: zap.NewNop()}
		u, err := l.user(v)
		if err == nil && (u.ID == "" || u.ID != s) {
			t.Fatalf("user id %q from path %q (GetText %q)", u.ID, path, s)
		}
		if err == nil {
			if _, err := json.Marshal(u.Claims); err != nil {
				t.Fatalf("claims cannot be put in a token: %v", err)
			}
		}
	})
}

// countingObserver records each backend call's outcome.
type countingObserver struct{ results []string }

func (c *countingObserver) BackendCall(_ context.Context, _ string, _ time.Duration, err error) {
	if err != nil {
		c.results = append(c.results, "error")
	} else {
		c.results = append(c.results, "success")
	}
}

// TestBackendMetricsCountUnusableReplies: a redirect or a 200 without
// JSON is a failure for the metrics too, since the client gets 502; a 401
// is the backend working.
func TestBackendMetricsCountUnusableReplies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/html":
			w.Write([]byte("<html>maintenance</html>"))
		case "/refused":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Write([]byte(`{"data":{"user":{"id":"2"}}}`))
		}
	}))
	t.Cleanup(srv.Close)
	for path, want := range map[string]string{"/redirect": "error", "/html": "error", "/refused": "success", "/ok": "success"} {
		obs := &countingObserver{}
		c, err := NewCookieSessions(CookieConfig{URL: srv.URL + path, Cookies: []string{"S"}, UserIDPath: "data.user.id"}, nil, WithBackendObserver(obs))
		if err != nil {
			t.Fatal(err)
		}
		c.UserID(t.Context(), []*http.Cookie{{Name: "S", Value: "v"}})
		if len(obs.results) != 1 || obs.results[0] != want {
			t.Errorf("%s: counted %v, want %s", path, obs.results, want)
		}
	}
}
