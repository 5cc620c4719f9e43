package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/session"
)

// oneUser is a backend of one user, alice (any password).
type oneUser struct{}

func (oneUser) Authenticate(context.Context, string, []byte) (*identity.User, error) {
	return &identity.User{ID: "u1", Profiles: []string{"p1"}}, nil
}

func (oneUser) Lookup(context.Context, string) (*identity.User, error) {
	return &identity.User{ID: "u1", Profiles: []string{"p1"}}, nil
}

// eventRecorder is a SessionObserver that keeps the session events.
type eventRecorder struct {
	mu     sync.Mutex
	events []string // guarded by mu
}

func (r *eventRecorder) SessionEvent(_ context.Context, event string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event)
}

func (r *eventRecorder) SessionsRevoked(context.Context, string, int) {}
func (r *eventRecorder) DeviceEvent(context.Context, string)          {}

// take returns the events since the last take.
func (r *eventRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// storeFixture is an issuer with a memory session store and any client
// id accepted, on a clock of the test's.
type storeFixture struct {
	h      http.Handler
	clock  *testkit.Clock
	events *eventRecorder
}

func newStoreFixture(t *testing.T) *storeFixture {
	t.Helper()
	f := newFixture(t, "ES256")
	clock := testkit.NewClock(time.Now())
	events := &eventRecorder{}
	store := session.NewMemory(clock.Now)
	iss, err := New(Config{Issuer: "https://auth.test", Audience: "api"}, f.keys, oneUser{}, nil, nil,
		WithClock(clock.Now), WithSessionStore(store, StoreConfig{ReuseInterval: 5 * time.Second}, events))
	if err != nil {
		t.Fatal(err)
	}
	return &storeFixture{h: iss.Handler(), clock: clock, events: events}
}

// token posts a token request and returns the status and the answer.
func (f *storeFixture) token(t *testing.T, form string) (int, map[string]string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form)))
	out := map[string]string{}
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return rec.Code, out
}

// login signs alice in through client and returns her refresh token.
func (f *storeFixture) login(t *testing.T, client string) string {
	t.Helper()
	code, out := f.token(t, "grant_type=password&username=alice&password=pw&client_id="+client)
	if code != 200 || out["refresh_token"] == "" {
		t.Fatalf("login: %d %v", code, out)
	}
	f.events.take()
	return out["refresh_token"]
}

// refresh presents a refresh token through client.
func (f *storeFixture) refresh(t *testing.T, client, rt string) (int, map[string]string) {
	t.Helper()
	return f.token(t, "grant_type=refresh_token&client_id="+client+"&refresh_token="+rt)
}

// TestRefreshThroughAnotherClient: a refresh token presented through
// another client than its session's is refused and changes nothing,
// unless it is a used one past the reuse interval (theft, whoever
// presents it).
func TestRefreshThroughAnotherClient(t *testing.T) {
	const wrong = "the refresh token was issued to another client"
	refused := func(t *testing.T, what string, code int, out map[string]string, description string) {
		t.Helper()
		if code != 400 || out["error"] != "invalid_grant" || out["error_description"] != description {
			t.Errorf("%s: %d %v, want invalid_grant %q", what, code, out, description)
		}
	}
	wantEvents := func(t *testing.T, f *storeFixture, want ...string) {
		t.Helper()
		if got := f.events.take(); !slices.Equal(got, want) {
			t.Errorf("session events %q, want %q", got, want)
		}
	}

	t.Run("the current token", func(t *testing.T) {
		f := newStoreFixture(t)
		rt := f.login(t, "tv")
		code, out := f.refresh(t, "web", rt)
		refused(t, "through another client", code, out, wrong)
		wantEvents(t, f)
		// The owner's refresh with the same token is a rotation, not a retry.
		code, out = f.refresh(t, "tv", rt)
		if code != 200 || out["refresh_token"] == "" || out["refresh_token"] == rt {
			t.Fatalf("the owner's refresh: %d %v", code, out)
		}
		wantEvents(t, f, "rotated")
	})

	t.Run("a used token within the reuse interval", func(t *testing.T) {
		f := newStoreFixture(t)
		rt := f.login(t, "tv")
		code, first := f.refresh(t, "tv", rt)
		if code != 200 {
			t.Fatalf("refresh: %d %v", code, first)
		}
		f.events.take()
		f.clock.Add(2 * time.Second)
		code, out := f.refresh(t, "web", rt)
		refused(t, "through another client", code, out, wrong)
		wantEvents(t, f)
		code, out = f.refresh(t, "tv", rt)
		if code != 200 || out["refresh_token"] != first["refresh_token"] {
			t.Fatalf("the owner's retry: %d %v, want the first successor", code, out)
		}
		wantEvents(t, f, "retried")
	})

	t.Run("a used token after the reuse interval", func(t *testing.T) {
		f := newStoreFixture(t)
		rt := f.login(t, "tv")
		code, first := f.refresh(t, "tv", rt)
		if code != 200 {
			t.Fatalf("refresh: %d %v", code, first)
		}
		f.events.take()
		f.clock.Add(6 * time.Second)
		code, out := f.refresh(t, "web", rt)
		refused(t, "through another client", code, out, "the refresh token was already used; the session is ended")
		wantEvents(t, f, "reuse_detected")
		code, out = f.refresh(t, "tv", first["refresh_token"])
		refused(t, "the owner's current token", code, out, "the refresh token is not valid")
	})
}
