package verifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/verifier"
)

// jwksServer serves a JWK Set that tests can replace, counting fetches. On
// command (hold) it accepts requests and answers none until released.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte        // guarded by mu
	status  int           // guarded by mu
	gate    chan struct{} // requests wait for it to close, if non-nil; guarded by mu
	arrived chan struct{} // one token per request received, for tests to wait on
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB) *jwksServer {
	s := &jwksServer{status: http.StatusOK, arrived: make(chan struct{}, 1<<12)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		select {
		case s.arrived <- struct{}{}:
		default: // nobody is counting this many
		}
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// hold makes requests from now on wait, unanswered, until release is
// called (at the latest when the test ends) or their client gives up.
func (s *jwksServer) hold(t testing.TB) (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(gate)
		})
	}
	t.Cleanup(release)
	return release
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	s.body, s.status = body, status
	s.mu.Unlock()
}

// serveKeys publishes the public halves of keys, each under its kid.
func (s *jwksServer) serveKeys(t testing.TB, keys ...*testkit.Key) {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"})
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(http.StatusOK, body)
}

// recorder is an Observer that counts events.
type recorder struct {
	fetchOK, fetchErr, suppressed atomic.Int64
	staleOn, staleOff             atomic.Int64 // KeysStale(true), KeysStale(false)
	fetched                       chan error   // every fetch outcome, if non-nil
	stale                         chan bool    // every KeysStale, if non-nil
}

func (r *recorder) JWKSFetch(_ context.Context, _ string, err error) {
	if err != nil {
		r.fetchErr.Add(1)
	} else {
		r.fetchOK.Add(1)
	}
	if r.fetched != nil {
		r.fetched <- err
	}
}
func (r *recorder) KeysLoaded(context.Context, string, int)      {}
func (r *recorder) UnknownKIDSuppressed(context.Context, string) { r.suppressed.Add(1) }
func (r *recorder) KeysStale(_ context.Context, _ string, stale bool) {
	if stale {
		r.staleOn.Add(1)
	} else {
		r.staleOff.Add(1)
	}
	if r.stale != nil {
		r.stale <- stale
	}
}

// remoteFixture runs a Remote against a jwksServer, with a verifier over it.
type remoteFixture struct {
	srv    *jwksServer
	remote *verifier.Remote
	v      *verifier.Verifier
	clock  *testkit.Clock
	obs    *recorder
}

func newRemoteFixture(t testing.TB, initial *testkit.Key, obs *recorder, edits ...func(*verifier.RemoteConfig)) *remoteFixture {
	t.Helper()
	f := &remoteFixture{srv: newJWKSServer(t), clock: testkit.NewClock(now), obs: obs}
	f.srv.serveKeys(t, initial)
	cfg := verifier.RemoteConfig{
		URL: f.srv.URL, RefreshInterval: time.Hour, Cooldown: 30 * time.Second, MaxStale: 2 * time.Hour, MaxBytes: 4096,
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	f.remote = verifier.NewRemote(cfg, []string{"ES256"}, zap.NewNop(),
		verifier.WithHTTPClient(f.srv.Client()), verifier.WithClock(f.clock.Now), verifier.WithObserver(obs))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { f.remote.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	<-f.remote.Ready()
	v, err := verifier.New(verifier.Config{Issuers: []verifier.IssuerConfig{{
		Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{f.remote},
	}}}, zap.NewNop(), verifier.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// token is a day-long token signed by key, with kid in its header (not
// necessarily key's).
func (f *remoteFixture) token(t testing.TB, key *testkit.Key, kid string) string {
	t.Helper()
	c := claims()
	c["exp"] = now.Add(24 * time.Hour).Unix()
	return key.Sign(t, c, map[string]any{"kid": kid})
}

func TestRemoteRotation(t *testing.T) {
	a, b := testkit.NewKey(t, "ES256", "a"), testkit.NewKey(t, "ES256", "b")
	f := newRemoteFixture(t, a, &recorder{})
	if _, err := f.v.Verify(t.Context(), f.token(t, a, "a")); err != nil {
		t.Fatalf("key a: %v", err)
	}
	if got := f.srv.fetches.Load(); got != 1 {
		t.Fatalf("fetches after start = %d, want 1", got)
	}
	// The issuer rotates to b: the first token with kid b causes exactly
	// one fetch and verifies; a is gone.
	f.srv.serveKeys(t, b)
	if _, err := f.v.Verify(t.Context(), f.token(t, b, "b")); err != nil {
		t.Fatalf("key b after rotation: %v", err)
	}
	if got := f.srv.fetches.Load(); got != 2 {
		t.Errorf("fetches after rotation = %d, want 2", got)
	}
	if _, err := f.v.Verify(t.Context(), f.token(t, b, "b")); err != nil || f.srv.fetches.Load() != 2 {
		t.Errorf("second b token: %v, fetches %d (want served from cache)", err, f.srv.fetches.Load())
	}
	if _, err := f.v.Verify(t.Context(), f.token(t, a, "a")); !errors.Is(err, verifier.ErrUnknownKey) {
		t.Errorf("retired key a: %v", err)
	}
}

func TestRemoteConcurrentUnknownKIDOneFetch(t *testing.T) {
	a, c := testkit.NewKey(t, "ES256", "a"), testkit.NewKey(t, "ES256", "c")
	f := newRemoteFixture(t, a, &recorder{})
	f.srv.serveKeys(t, a, c)
	tok := f.token(t, c, "c")
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := f.v.Verify(t.Context(), tok)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	var ok, unknown int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, verifier.ErrUnknownKey):
			// A lookup that arrived after the shared fetch completed is
			// answered from the refreshed cache, so this stays zero.
			unknown++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if got := f.srv.fetches.Load(); got != 2 {
		t.Errorf("%d concurrent lookups of a new kid caused %d fetches, want 1", n, got-1)
	}
	if ok != n {
		t.Errorf("%d of %d verified (%d unknown key)", ok, n, unknown)
	}
}

// TestRemoteCooldown: with no NewKIDFetches, the Cooldown alone decides:
// made-up kids within it cause no fetch. (TestRemoteStrayKIDDoesNotBlock-
// Rotation and TestRemoteUnknownKIDFlood cover NewKIDFetches.)
func TestRemoteCooldown(t *testing.T) {
	a := testkit.NewKey(t, "ES256", "a")
	obs := &recorder{}
	f := newRemoteFixture(t, a, obs, func(c *verifier.RemoteConfig) { c.NewKIDFetches = -1 })
	for i, kid := range []string{"made-up-1", "made-up-2", "made-up-3"} {
		if _, err := f.v.Verify(t.Context(), f.token(t, a, kid)); !errors.Is(err, verifier.ErrUnknownKey) {
			t.Fatalf("%s: %v", kid, err)
		}
		if i == 0 && f.srv.fetches.Load() != 2 {
			t.Fatalf("first unknown kid: fetches = %d, want 2", f.srv.fetches.Load())
		}
	}
	if got := f.srv.fetches.Load(); got != 2 {
		t.Errorf("fetches during cooldown = %d, want 2", got)
	}
	if got := obs.suppressed.Load(); got != 2 {
		t.Errorf("suppressed = %d, want 2", got)
	}
	f.clock.Add(31 * time.Second)
	f.v.Verify(t.Context(), f.token(t, a, "made-up-4"))
	if got := f.srv.fetches.Load(); got != 3 {
		t.Errorf("fetches after cooldown = %d, want 3", got)
	}
}

func TestRemoteServerDownServesCachedKeysUpToMaxStale(t *testing.T) {
	a := testkit.NewKey(t, "ES256", "a")
	obs := &recorder{}
	f := newRemoteFixture(t, a, obs)
	tok := f.token(t, a, "a")

	// The endpoint fails (500, then an oversized body, then closed):
	// every fetch error is reported, and the cached key keeps verifying.
	for i, fail := range []func(){
		func() { f.srv.serve(http.StatusInternalServerError, []byte("oops")) },
		func() { f.srv.serve(http.StatusOK, []byte(`{"keys":[`+strings.Repeat(" ", 5000)+`]}`)) },
		func() { f.srv.serve(http.StatusOK, []byte(`{"keys":[{"kty":"EC"}]}`)) },
		func() { f.srv.CloseClientConnections(); f.srv.Close() },
	} {
		fail()
		f.clock.Add(31 * time.Second) // past the cooldown: an unknown kid triggers a fetch
		if _, err := f.v.Verify(t.Context(), f.token(t, a, "unknown")); !errors.Is(err, verifier.ErrUnknownKey) {
			t.Fatalf("failure %d: unknown kid: %v", i, err)
		}
		if got := obs.fetchErr.Load(); got != int64(i+1) {
			t.Errorf("failure %d: fetch errors reported = %d", i, got)
		}
		if _, err := f.v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("failure %d: cached key no longer verifies: %v", i, err)
		}
	}
	// Past MaxStale (2h since the last success) the cache stops serving:
	// the kid is known, its keys stale. That is reported once, however
	// many tokens find it.
	f.clock.Add(2 * time.Hour)
	for range 3 {
		if _, err := f.v.Verify(t.Context(), tok); !errors.Is(err, verifier.ErrStaleKeys) || verifier.Reason(err) != "stale_keys" {
			t.Errorf("after MaxStale: %v, want stale keys", err)
		}
	}
	if got := obs.staleOn.Load(); got != 1 {
		t.Errorf("KeysStale(true) reported %d times, want once", got)
	}
}

func TestRemoteWaitHonoursContext(t *testing.T) {
	// A Remote whose Run was never started: a lookup for an unknown kid
	// waits for a fetch that never comes, and must give up with ctx.
	r := verifier.NewRemote(verifier.RemoteConfig{URL: "http://127.0.0.1:1/jwks"}, []string{"ES256"}, zap.NewNop())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Keys(ctx, "kid"); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// BenchmarkVerifyCachedRemote measures a cache hit on a token whose key came
// from a remote JWKS (BenchmarkVerifyCached: an in-process key set).
func BenchmarkVerifyCachedRemote(b *testing.B) {
	a := testkit.NewKey(b, "ES256", "a")
	f := newRemoteFixture(b, a, &recorder{})
	raw := f.token(b, a, "a")
	if _, err := f.v.Verify(b.Context(), raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer() // key generation is not what is measured
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.v.Verify(b.Context(), raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
