package verifier_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/verifier"
)

// mutableSource is an in-process key source whose keys a test replaces.
type mutableSource struct {
	mu  sync.Mutex
	set *verifier.KeySet // guarded by mu
}

func (m *mutableSource) Keys(ctx context.Context, kid string) ([]*verifier.Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set.Keys(ctx, kid)
}

func (m *mutableSource) replace(keys ...*verifier.Key) {
	m.mu.Lock()
	m.set = verifier.NewKeySet(keys...)
	m.mu.Unlock()
}

func TestVerifiedTokenCache(t *testing.T) {
	k := newKeys(t)
	clock := testkit.NewClock(now)
	src := &mutableSource{}
	ecKey := &verifier.Key{ID: "ec", Algorithms: []string{"ES256"}, Public: k["ES256"].Public()}
	src.replace(ecKey)
	v, err := verifier.New(verifier.Config{Leeway: time.Minute, CacheSize: 128, Issuers: []verifier.IssuerConfig{{
		Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{src},
	}}}, zap.NewNop(), verifier.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	raw := k["ES256"].Sign(t, claims(), map[string]any{"kid": "ec"})
	first, err := v.Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(t.Context(), raw)
	if err != nil || second != first {
		t.Fatalf("second verification: %v, same token %v", err, second == first)
	}
	if st := v.CacheStats(); st.Hits != 1 || st.Misses != 1 || st.Size != 1 {
		t.Errorf("stats %+v", st)
	}
	// A hit still refuses a token that has expired since it was cached.
	clock.Add(time.Hour + 2*time.Minute)
	if _, err := v.Verify(t.Context(), raw); !errors.Is(err, verifier.ErrExpired) {
		t.Errorf("expired since cached: %v", err)
	}
	clock.Add(-time.Hour - 2*time.Minute)

	// Keys change: cached tokens are verified again, so a removed key's
	// tokens fail at once.
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatal(err)
	}
	src.replace()
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("without KeysChanged the cached result still serves: %v", err)
	}
	v.KeysChanged()
	if _, err := v.Verify(t.Context(), raw); !errors.Is(err, verifier.ErrUnknownKey) {
		t.Errorf("after KeysChanged with the key removed: %v", err)
	}
	src.replace(ecKey)
	v.KeysChanged()

	// Bounded: 1000 distinct tokens into a 128-entry cache.
	for i := range 1000 {
		c := claims()
		c["jti"] = fmt.Sprint(i)
		if _, err := v.Verify(t.Context(), k["ES256"].Sign(t, c, map[string]any{"kid": "ec"})); err != nil {
			t.Fatal(err)
		}
	}
	if st := v.CacheStats(); st.Size > 128 || st.Evictions == 0 {
		t.Errorf("cache not bounded: %+v", st)
	}
}

func TestTokenMemo(t *testing.T) {
	k := newKeys(t)
	v := newVerifier(t, verifier.IssuerConfig{Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{k.keySet()}}, time.Minute)
	tok, err := v.Verify(t.Context(), k["ES256"].Sign(t, claims(), nil))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	derive := func(_ any, t *verifier.Token) []string { calls++; return []string{t.Subject + "!"} }
	keyA, keyB := new(int), new(int)
	for range 3 {
		if got := tok.Memo(keyA, derive); got[0] != "user-1!" {
			t.Fatalf("memo %v", got)
		}
	}
	if calls != 1 {
		t.Errorf("derived %d times, want once", calls)
	}
	tok.Memo(keyB, derive)
	if calls != 2 || tok.Memo(keyA, derive)[0] != "user-1!" || calls != 2 {
		t.Errorf("another key disturbed the memo: %d calls", calls)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	k := newKeys(b)
	v := newVerifier(b, verifier.IssuerConfig{Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{k.keySet()}}, time.Minute)
	raw := k["ES256"].Sign(b, claims(), map[string]any{"kid": "ec"})
	if _, err := v.Verify(b.Context(), raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer() // key generation is not what is measured
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(b.Context(), raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// loadedObserver reports every key set a source finishes loading.
type loadedObserver struct {
	loaded chan string // source of each KeysLoaded event
}

func (o *loadedObserver) JWKSFetch(context.Context, string, error)        {}
func (o *loadedObserver) KeysLoaded(_ context.Context, src string, _ int) { o.loaded <- src }
func (o *loadedObserver) UnknownKIDSuppressed(context.Context, string)    {}
func (o *loadedObserver) KeysStale(context.Context, string, bool)         {}

// TestCachePerSource: a refresh of one remote key set retires only the
// cached tokens its keys verified, and only when its keys changed; tokens
// of another remote or of an in-process source stay cached.
func TestCachePerSource(t *testing.T) {
	a1, a2 := testkit.NewKey(t, "ES256", "a1"), testkit.NewKey(t, "ES256", "a2")
	b1 := testkit.NewKey(t, "ES256", "b1")
	self := testkit.NewKey(t, "ES256", "self")
	srvA, srvB := newJWKSServer(t), newJWKSServer(t)
	srvA.serveKeys(t, a1)
	srvB.serveKeys(t, b1)
	const issA, issB = "https://a.test", "https://b.test"
	clock := testkit.NewClock(now)
	obs := &loadedObserver{loaded: make(chan string, 16)}
	remote := verifier.RemoteConfig{RefreshInterval: time.Hour, Cooldown: 30 * time.Second, MaxStale: 2 * time.Hour}
	v := runVerifier(t, verifier.Config{Leeway: time.Minute, Issuers: []verifier.IssuerConfig{
		{Issuer: issA, Audiences: []string{aud}, JWKSURLs: []string{srvA.URL}, Remote: remote},
		{Issuer: issB, Audiences: []string{aud}, JWKSURLs: []string{srvB.URL}, Remote: remote},
		{Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{
			verifier.NewKeySet(&verifier.Key{ID: "self", Algorithms: []string{"ES256"}, Public: self.Public()})}},
	}}, verifier.WithClock(clock.Now), verifier.WithHTTPClient(srvA.Client()), verifier.WithObserver(obs))
	for range 2 {
		<-obs.loaded // both remotes hold their first keys
	}

	// sign mints a twelve-hour token with kid in its header.
	sign := func(key *testkit.Key, issuer, kid string) string {
		c := testkit.Claims(issuer, aud, now, func(c jwt.MapClaims) { c["exp"] = now.Add(12 * time.Hour).Unix() })
		return key.Sign(t, c, map[string]any{"typ": "at+jwt", "kid": kid})
	}
	tokens := map[string]string{"A": sign(a1, issA, "a1"), "B": sign(b1, issB, "b1"), "self": sign(self, iss, "self")}
	cached := map[string]*verifier.Token{}
	for name, raw := range tokens {
		tok, err := v.Verify(t.Context(), raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cached[name] = tok
	}
	// refreshA makes remote A fetch now: a token with a kid A does not know
	// asks for a fetch and waits for it (past the cooldown of the last).
	unknown := 0
	refreshA := func(t *testing.T) {
		t.Helper()
		clock.Add(31 * time.Second)
		unknown++
		before := srvA.fetches.Load()
		v.Verify(t.Context(), sign(a1, issA, fmt.Sprint("unknown-", unknown)))
		if srvA.fetches.Load() != before+1 {
			t.Fatalf("remote A fetched %d times, want once", srvA.fetches.Load()-before)
		}
	}
	// check verifies every token again: still cached (the same *Token),
	// re-verified (another), or refused.
	type outcome string
	const (
		hit        outcome = "served from the cache"
		reverified outcome = "verified again"
		refused    outcome = "refused"
	)
	check := func(t *testing.T, want map[string]outcome) {
		t.Helper()
		for name, raw := range tokens {
			tok, err := v.Verify(t.Context(), raw)
			var got outcome
			switch {
			case err != nil:
				got = refused
			case tok == cached[name]:
				got = hit
			default:
				got = reverified
				cached[name] = tok
			}
			if got != want[name] {
				t.Errorf("%s: %s, want %s (err %v)", name, got, want[name], err)
			}
		}
	}

	steps := []struct {
		name    string
		publish []*testkit.Key // what A serves before its refresh; nil: no refresh
		global  bool           // KeysChanged instead of a refresh
		want    map[string]outcome
	}{
		{"A refetches the same keys", []*testkit.Key{a1}, false, map[string]outcome{"A": hit, "B": hit, "self": hit}},
		{"A adds a key", []*testkit.Key{a1, a2}, false, map[string]outcome{"A": reverified, "B": hit, "self": hit}},
		{"A serves its keys in another order", []*testkit.Key{a2, a1}, false, map[string]outcome{"A": hit, "B": hit, "self": hit}},
		{"A removes the key of its token", []*testkit.Key{a2}, false, map[string]outcome{"A": refused, "B": hit, "self": hit}},
		{"in-process keys reloaded", nil, true, map[string]outcome{"A": refused, "B": reverified, "self": reverified}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.global {
				v.KeysChanged()
			} else {
				srvA.serveKeys(t, st.publish...)
				refreshA(t)
			}
			check(t, st.want)
		})
	}

	// A remote's cached tokens still end with its MaxStale while the
	// endpoint fails; its kid is then known to be stale.
	srvB.serve(http.StatusInternalServerError, nil)
	clock.Add(2 * time.Hour)
	if _, err := v.Verify(t.Context(), tokens["B"]); !errors.Is(err, verifier.ErrStaleKeys) {
		t.Errorf("B after MaxStale: %v, want stale keys", err)
	}
}

// runVerifier builds a verifier of cfg and runs it (its remote key sets'
// fetches) until the test ends.
func runVerifier(t *testing.T, cfg verifier.Config, opts ...verifier.Option) *verifier.Verifier {
	t.Helper()
	v, err := verifier.New(cfg, zap.NewNop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { v.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return v
}

// TestRemoteTokensCachedFlat: tokens of a remote issuer (JWKS), used as
// the proxy uses them, are cached as flat records outside the Go heap —
// each hit answers its own token's header values — and stop being served
// from them once the remote's keys change.
func TestRemoteTokensCachedFlat(t *testing.T) {
	a1, a2 := testkit.NewKey(t, "ES256", "a1"), testkit.NewKey(t, "ES256", "a2")
	srv := newJWKSServer(t)
	srv.serveKeys(t, a1)
	const issA = "https://a.test"
	clock := testkit.NewClock(now)
	obs := &loadedObserver{loaded: make(chan string, 16)}
	v := runVerifier(t, verifier.Config{Leeway: time.Minute, Issuers: []verifier.IssuerConfig{
		{Issuer: issA, Audiences: []string{aud}, JWKSURLs: []string{srv.URL},
			Remote: verifier.RemoteConfig{RefreshInterval: time.Hour, Cooldown: 30 * time.Second, MaxStale: 2 * time.Hour}},
	}}, verifier.WithClock(clock.Now), verifier.WithHTTPClient(srv.Client()), verifier.WithObserver(obs))
	<-obs.loaded

	hdr := &proxyHeaders{}
	sign := func(i int, kid string) string {
		c := testkit.Claims(issA, aud, now, func(c jwt.MapClaims) {
			c["exp"] = now.Add(12 * time.Hour).Unix()
			c["sub"], c["profile"] = fmt.Sprint("user-", i), fmt.Sprint("profile-", i)
		})
		return a1.Sign(t, c, map[string]any{"typ": "at+jwt", "kid": kid})
	}
	first, err := v.Verify(t.Context(), sign(-1, "a1"))
	if err != nil {
		t.Fatal(err)
	}
	first.Memo(hdr, headerValues) // the proxy's first request: its Memo key is known
	const n = 50
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = sign(i, "a1")
		tok, err := v.Verify(t.Context(), tokens[i])
		if err != nil {
			t.Fatal(err)
		}
		tok.Memo(hdr, headerValues)
	}
	if st := v.CacheStats(); st.OffHeapBytes == 0 {
		t.Fatalf("no record outside the heap: %+v", st)
	}
	verifier.DropHotTable(v) // each hit below is built from its record
	before := v.CacheStats()
	for i, raw := range tokens {
		tok, err := v.Verify(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Memo(hdr, headerValues); got[0] != fmt.Sprint("user-", i) || got[1] != fmt.Sprint("profile-", i) {
			t.Fatalf("token %d answered %q", i, got)
		}
	}
	if after := v.CacheStats(); after.Hits-before.Hits != n {
		t.Fatalf("%d hits of %d", after.Hits-before.Hits, n)
	}
	// A rotates to a2 alone: a token needing an unknown kid makes it fetch.
	srv.serveKeys(t, a2)
	clock.Add(31 * time.Second)
	v.Verify(t.Context(), sign(-2, "unknown"))
	<-obs.loaded
	for i, raw := range tokens {
		if _, err := v.Verify(t.Context(), raw); err == nil {
			t.Fatalf("token %d still accepted after its key left the set", i)
		}
	}
}
