package verifier_test

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/verifier"
)

// fleetClaims are the claims of a token shaped like tollgate's own: ids
// of UUID length, the session claims, the user's email, role and partner.
func fleetClaims(i int) jwt.MapClaims {
	return testkit.Claims(iss, aud, now, func(c jwt.MapClaims) {
		c["sub"] = fmt.Sprintf("user-%d", i)
		c["jti"] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		c["sid"] = fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i)
		c["type"] = "access"
		c["session_exp"] = now.Add(720 * time.Hour).Unix()
		c["email"] = fmt.Sprintf("user%d@example.com", i)
		c["role"] = "User"
		c["partnerId"] = "10000"
	})
}

// fleet is a verifier of HS256 tokens (cheap to mint by the thousand; a
// hit does not depend on the algorithm) and n tokens it accepts.
type fleet struct {
	v      *verifier.Verifier
	key    *testkit.Key
	tokens []string
}

func newFleet(t testing.TB, cfg verifier.Config, n int) *fleet {
	t.Helper()
	key := testkit.NewKey(t, "HS256", "hs")
	cfg.Leeway = time.Minute
	cfg.Issuers = []verifier.IssuerConfig{{Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"HS256"},
		Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: "hs", Algorithms: []string{"HS256"}, Public: key.Public()})}}}
	v, err := verifier.New(cfg, zap.NewNop(), verifier.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{v: v, key: key, tokens: make([]string, n)}
	for i := range f.tokens {
		f.tokens[i] = key.Access(t, fleetClaims(i))
	}
	return f
}

// proxyHeaders stands in for the proxy's header mapping (proxy.headerValues):
// X-User-Id from sub, X-Profile from profile, X-Partner-Id from partnerId.
type proxyHeaders struct{ calls atomic.Int64 }

func headerValues(key any, tok *verifier.Token) []string {
	key.(*proxyHeaders).calls.Add(1)
	out := make([]string, 3)
	for i, name := range []string{"sub", "profile", "partnerId"} {
		out[i], _ = tok.Claims[name].(string)
	}
	return out
}

// TestCachedTokenIsCompact: once a consumer keeps a Memo value, a hit
// returns the cached form of the token — the fields, SessionID, HasScope,
// HasRole and the Memo value answering as on the token with every claim,
// Claims holding only what CachedClaims keeps — and the Memo value was
// derived from every claim, also for tokens first verified after it.
func TestCachedTokenIsCompact(t *testing.T) {
	for _, tt := range []struct {
		name string
		keep []string // CachedClaims
		want []string // the claims a cached token holds
	}{
		{"default", nil, nil},
		{"none", []string{}, nil},
		{"session claims", sessionClaims, []string{"sid", "scope", "role", "client_id", "profile", "session_exp", "type"}},
		{"chosen", []string{"email", "no-such-claim"}, []string{"email"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFleet(t, verifier.Config{CachedClaims: tt.keep}, 2)
			hdr := &proxyHeaders{}
			for i, raw := range f.tokens {
				full, err := f.v.Verify(t.Context(), raw)
				if err != nil {
					t.Fatal(err)
				}
				if len(full.Claims) != len(fleetClaims(i)) {
					t.Errorf("token %d: a full verification gave %d claims, want all %d", i, len(full.Claims), len(fleetClaims(i)))
				}
				want := full.Memo(hdr, headerValues)
				if want[0] != fmt.Sprint("user-", i) || want[2] != "10000" {
					t.Fatalf("token %d: header values %q", i, want)
				}
				if i == 1 && hdr.calls.Load() != 2 {
					// The first Memo taught the verifier its function: the
					// second token's value was derived as it was cached.
					t.Errorf("token 1: derived %d times in all, want 2", hdr.calls.Load())
				}
				calls := hdr.calls.Load()
				hit, err := f.v.Verify(t.Context(), raw)
				if err != nil {
					t.Fatal(err)
				}
				if hit == full {
					t.Fatalf("token %d: the hit returned the full token", i)
				}
				if got := slices.Sorted(maps.Keys(hit.Claims)); !slices.Equal(got, slices.Sorted(slices.Values(tt.want))) {
					t.Errorf("token %d: cached claims %q, want %q", i, got, tt.want)
				}
				for name, v := range hit.Claims {
					if full.Claims[name] != v {
						t.Errorf("token %d: cached %s = %v, want %v", i, name, v, full.Claims[name])
					}
				}
				if got := hit.Memo(hdr, headerValues); !slices.Equal(got, want) || hdr.calls.Load() != calls {
					t.Errorf("token %d: cached header values %q after %d more derivations, want %q after none", i, got, hdr.calls.Load()-calls, want)
				}
				if hit.Issuer() != full.Issuer() || hit.Subject != full.Subject || hit.ID != full.ID || !slices.Equal(hit.Audience(), full.Audience()) ||
					!hit.ExpiresAt().Equal(full.ExpiresAt()) || !hit.IssuedAt().Equal(full.IssuedAt()) || hit.Algorithm() != full.Algorithm() ||
					hit.SessionID != full.SessionID || hit.SessionID == "" {
					t.Errorf("token %d: cached %+v\nfull %+v", i, hit, full)
				}
				for _, tok := range []*verifier.Token{full, hit} {
					if !tok.HasScope("catalog") || tok.HasScope("admin") || !tok.HasRole("User") || tok.HasRole("Admin") {
						t.Errorf("token %d: scopes or roles wrong on %p", i, tok)
					}
				}
				if again, _ := f.v.Verify(t.Context(), raw); again != hit {
					t.Errorf("token %d: a second hit returned another token", i)
				}
			}
		})
	}
}

// TestMemoBeforeAnyConsumer: a token cached before any Memo is served with
// every claim until a Memo keeps its value, so that value sees them all.
func TestMemoBeforeAnyConsumer(t *testing.T) {
	f := newFleet(t, verifier.Config{CachedClaims: []string{}}, 1)
	first, err := f.v.Verify(t.Context(), f.tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	hit, _ := f.v.Verify(t.Context(), f.tokens[0])
	if hit != first || hit.Claims["partnerId"] != "10000" {
		t.Fatalf("before any Memo, a hit gave %p (first %p) with claims %v", hit, first, hit.Claims)
	}
	hdr := &proxyHeaders{}
	if got := hit.Memo(hdr, headerValues); got[2] != "10000" {
		t.Errorf("header values %q", got)
	}
	compact, _ := f.v.Verify(t.Context(), f.tokens[0])
	if compact == first || compact.Claims != nil {
		t.Fatalf("after the Memo, a hit still gave the full token")
	}
	if got := compact.Memo(hdr, headerValues); got[2] != "10000" || hdr.calls.Load() != 1 {
		t.Errorf("cached header values %q after %d derivations", got, hdr.calls.Load())
	}
}

// TestGrants: HasScope and HasRole read the claims as the proxy's scope
// and role checks always have — a string is split at spaces, an array's
// strings are taken whole, "role" only whole — before and after caching,
// and on a Token built by hand.
// An item holding a 0 or 1 byte is dropped: it can never grant another.
func TestGrants(t *testing.T) {
	f := newFleet(t, verifier.Config{CachedClaims: []string{}}, 0)
	hdr := &proxyHeaders{}
	tests := []struct {
		name        string
		claims      map[string]any
		scopes      []string // granted
		notScopes   []string
		roles       []string
		notRoles    []string
		wantSession string
	}{
		{"strings", map[string]any{"scope": "a  b\tc", "roles": "r1 r2", "role": "Power User", "sid": "s1"},
			[]string{"a", "b", "c"}, []string{"a  b", "", "d"}, []string{"r1", "r2", "Power User"}, []string{"Power", "r1 r2"}, "s1"},
		{"arrays", map[string]any{"scope": []any{"a b", "c", 7}, "roles": []any{"x"}, "realm_access": map[string]any{"roles": []any{"kc"}}},
			[]string{"a b", "c"}, []string{"a", "b", "7"}, []string{"x", "kc"}, []string{"realm_access"}, ""},
		{"none", map[string]any{"scope": 3, "role": []any{"not whole"}, "sid": 5},
			nil, []string{"3", ""}, nil, []string{"not whole", ""}, ""},
		{"control bytes", map[string]any{"scope": []any{"a\x00admin", "b\x01admin", "ok"}, "roles": []any{"\x00"}},
			[]string{"ok"}, []string{"admin", "a", "b", "", "a\x00admin"}, nil, []string{"", "\x00"}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fleetClaims(1000 + i)
			delete(c, "scope")
			delete(c, "role")
			delete(c, "sid")
			maps.Copy(c, tt.claims)
			raw := f.key.Access(t, c)
			full, err := f.v.Verify(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			full.Memo(hdr, headerValues)
			cached, _ := f.v.Verify(t.Context(), raw)
			if cached == full {
				t.Fatal("not served from the cache")
			}
			// A Token a test builds by hand answers from its Claims alike.
			byHand := &verifier.Token{Claims: tt.claims, SessionID: tt.wantSession}
			for _, tok := range []*verifier.Token{full, cached, byHand} {
				for _, s := range tt.scopes {
					if !tok.HasScope(s) {
						t.Errorf("scope %q not granted", s)
					}
				}
				for _, s := range tt.notScopes {
					if tok.HasScope(s) {
						t.Errorf("scope %q granted", s)
					}
				}
				for _, r := range tt.roles {
					if !tok.HasRole(r) {
						t.Errorf("role %q not held", r)
					}
				}
				for _, r := range tt.notRoles {
					if tok.HasRole(r) {
						t.Errorf("role %q held", r)
					}
				}
				if tok.SessionID != tt.wantSession {
					t.Errorf("SessionID %q, want %q", tok.SessionID, tt.wantSession)
				}
			}
		})
	}
}

// TestVerifyUncached: a consumer that needs every claim gets them from a
// full verification (Constrain included) even while the token is cached.
func TestVerifyUncached(t *testing.T) {
	k := testkit.NewKey(t, "HS256", "hs")
	var constrained atomic.Int64
	v := newVerifier(t, verifier.IssuerConfig{Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"HS256"},
		Sources:   []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: "hs", Algorithms: []string{"HS256"}, Public: k.Public()})},
		Constrain: func(tok *verifier.Token) error { constrained.Add(1); delete(tok.Claims, "email"); return nil },
	}, time.Minute)
	raw := k.Access(t, fleetClaims(1))
	tok, _ := v.Verify(t.Context(), raw)
	hdr := &proxyHeaders{}
	tok.Memo(hdr, headerValues)
	if cached, _ := v.Verify(t.Context(), raw); cached.Claims["partnerId"] != nil {
		t.Fatal("the cached token kept a claim it should not")
	}
	full, err := v.VerifyUncached(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if full.Claims["partnerId"] != "10000" || full.Claims["email"] != nil || constrained.Load() != 2 {
		t.Errorf("uncached: claims %v after %d Constrain calls, want every claim but email after 2", full.Claims, constrained.Load())
	}
}

// TestFleetHitRate: 10000 distinct tokens with the default cache size —
// 21% hits with the sharded cache it replaces — are all served from the
// cache once seen.
func TestFleetHitRate(t *testing.T) {
	f := newFleet(t, verifier.Config{}, 10_000)
	hdr := &proxyHeaders{}
	for _, raw := range f.tokens { // warm-up
		tok, err := f.v.Verify(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		tok.Memo(hdr, headerValues)
	}
	before := f.v.CacheStats()
	for range 3 {
		for _, raw := range f.tokens {
			if _, err := f.v.Verify(t.Context(), raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	after := f.v.CacheStats()
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	rate := float64(hits) / float64(hits+misses)
	t.Logf("hit rate %.4f, %+v", rate, after)
	if rate < 0.95 {
		t.Errorf("hit rate %.3f, want at least 0.95", rate)
	}
	if after.Size != len(f.tokens) || after.Evictions != 0 {
		t.Errorf("stats %+v, want every token cached and none evicted", after)
	}
}

// TestCacheConcurrent runs verifications of many tokens, Memo calls and
// key changes at once (with -race): each request gets its own token's
// identity and header values, never another's.
func TestCacheConcurrent(t *testing.T) {
	f := newFleet(t, verifier.Config{CacheSize: 150}, 200)
	hdr := &proxyHeaders{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				f.v.KeysChanged()
				runtime.Gosched()
			}
		}
	})
	var workers sync.WaitGroup
	for w := range 8 {
		workers.Go(func() {
			for i := range 3000 {
				n := (i*7 + w*13) % len(f.tokens)
				tok, err := f.v.Verify(t.Context(), f.tokens[n])
				if err != nil {
					t.Error(err)
					return
				}
				wantSub := fmt.Sprint("user-", n)
				if tok.Subject != wantSub || !strings.HasPrefix(tok.SessionID, fmt.Sprintf("%08x-", n)) {
					t.Errorf("token %d verified as %s (session %s)", n, tok.Subject, tok.SessionID)
					return
				}
				if i%3 == 0 {
					if got := tok.Memo(hdr, headerValues); got[0] != wantSub {
						t.Errorf("token %d has header values %q", n, got)
						return
					}
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if st := f.v.CacheStats(); st.Size > 150 || st.Hits == 0 {
		t.Errorf("stats %+v", st)
	}
}

// heapPerToken fills a cache with n verified tokens, each used as the
// proxy uses it (its header values kept), and returns the heap they take
// per token: runtime.MemStats.HeapInuse after, less before, over n — and
// the same of HeapAlloc, which leaves out the free room in spans in use,
// and of HeapObjects, the objects the collector traces.
func heapPerToken(t testing.TB, keep []string, n int) (inuse, alloc, offHeap, objects float64) {
	f := newFleet(t, verifier.Config{CachedClaims: keep}, n)
	hdr := &proxyHeaders{}
	tok, _ := f.v.Verify(t.Context(), f.key.Access(t, fleetClaims(-1)))
	tok.Memo(hdr, headerValues) // the proxy's first request
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	offBefore := f.v.CacheStats().OffHeapBytes
	for _, raw := range f.tokens {
		if _, err := f.v.Verify(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := f.v.CacheStats()
	if st.Size != n+1 {
		t.Fatalf("stats %+v, want %d cached", st, n+1)
	}
	runtime.KeepAlive(f)
	return float64(after.HeapInuse-before.HeapInuse) / float64(n), float64(after.HeapAlloc-before.HeapAlloc) / float64(n),
		float64(st.OffHeapBytes-offBefore) / float64(n), (float64(after.HeapObjects) - float64(before.HeapObjects)) / float64(n)
}

// sessionClaims are the claims a consumer reading a session by name would
// keep (tollgate's own kept them, before they read the Token's fields).
var sessionClaims = []string{"sid", "scope", "role", "roles", "realm_access", "client_id", "profile", "session_exp", "auth_time", "type"}

// TestCacheMemoryPerToken bounds what a cached token costs, live heap and
// its record outside the heap together, with the proxy's three header
// values kept: at most 512 bytes by default (the cache it replaces took
// about 2.6 KiB a token by this measure). By default almost all of it is
// the record, and the collector has fewer objects to trace than one per
// two tokens: the records and the index hold no pointer, and what the
// heap gains is the hot table's 1,024 most recent tokens (otter's node,
// before the index, was one object per token).
func TestCacheMemoryPerToken(t *testing.T) {
	for _, tt := range []struct {
		name                     string
		keep                     []string
		max, maxHeap, maxObjects float64
	}{
		{"no claims kept (default)", nil, 512, 150, 0.5},
		{"ten claims kept", sessionClaims, 1200, 1200, 25},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inuse, alloc, offHeap, objects := heapPerToken(t, tt.keep, 10_000)
			t.Logf("%.0f B per cached token: %.0f B live heap (%.0f B of spans in use), %.0f B off the heap; %.2f heap objects", alloc+offHeap, alloc, inuse, offHeap, objects)
			if alloc+offHeap > tt.max || alloc > tt.maxHeap {
				t.Errorf("%.0f B per cached token, %.0f B of it on the heap; want at most %.0f and %.0f", alloc+offHeap, alloc, tt.max, tt.maxHeap)
			}
			if objects > tt.maxObjects {
				t.Errorf("%.2f heap objects per cached token, want at most %.1f", objects, tt.maxObjects)
			}
		})
	}
}

// BenchmarkCacheMemory reports the heap a cached token takes: in use
// (B/token) and allocated (B-live/token).
func BenchmarkCacheMemory(b *testing.B) {
	for _, bb := range []struct {
		name string
		keep []string
	}{{"no-claims", nil}, {"ten-claims", sessionClaims}} {
		b.Run(bb.name, func(b *testing.B) {
			var inuse, alloc, offHeap, objects float64
			for b.Loop() {
				inuse, alloc, offHeap, objects = heapPerToken(b, bb.keep, 20_000)
			}
			b.ReportMetric(objects, "objects/token")
			b.ReportMetric(inuse, "B/token")
			b.ReportMetric(alloc, "B-live/token")
			b.ReportMetric(offHeap, "B-offheap/token")
		})
	}
}

// BenchmarkVerifyCachedMemo is a hit as the proxy sees it: the cached
// token and its kept header values.
func BenchmarkVerifyCachedMemo(b *testing.B) {
	f := newFleet(b, verifier.Config{}, 1)
	hdr := &proxyHeaders{}
	tok, _ := f.v.Verify(b.Context(), f.tokens[0])
	tok.Memo(hdr, headerValues)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok, err := f.v.Verify(b.Context(), f.tokens[0])
			if err != nil {
				b.Fatal(err)
			}
			if tok.Memo(hdr, headerValues)[0] != "user-0" {
				b.Fatal("wrong header values")
			}
		}
	})
}

// BenchmarkVerifyMiss verifies HS256 tokens that are not cached, each then
// cached in a full cache of 1000 (evicting one): the cache's share of a
// miss, next to HMAC's.
func BenchmarkVerifyMiss(b *testing.B) {
	f := newFleet(b, verifier.Config{CacheSize: 1000}, 100_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := f.v.Verify(b.Context(), f.tokens[i%len(f.tokens)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	st := f.v.CacheStats()
	b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hits")
}

// BenchmarkFleet cycles through 100000 distinct tokens with the default
// cache size, as a replica serving a large fleet does once warm.
func BenchmarkFleet(b *testing.B) {
	f := newFleet(b, verifier.Config{}, 100_000)
	hdr := &proxyHeaders{}
	for _, raw := range f.tokens {
		tok, err := f.v.Verify(b.Context(), raw)
		if err != nil {
			b.Fatal(err)
		}
		tok.Memo(hdr, headerValues)
	}
	before := f.v.CacheStats()
	runtime.GC() // of the setup's garbage, not the loop's
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tok, err := f.v.Verify(b.Context(), f.tokens[i%len(f.tokens)])
		if err != nil {
			b.Fatal(err)
		}
		tok.Memo(hdr, headerValues)
		i += 7919 // a prime: every token once per cycle, in scattered order
	}
	st := f.v.CacheStats()
	hits, misses := st.Hits-before.Hits, st.Misses-before.Misses
	b.ReportMetric(float64(hits)/float64(hits+misses), "hits")
}

// sessionHeaders stands in for the proxy's default mapping where it
// repeats what the token keeps anyway: sub, sid and iss, then profile.
type sessionHeaders struct{}

func sessionHeaderValues(_ any, tok *verifier.Token) []string {
	out := make([]string, 4)
	for i, name := range []string{"sub", "sid", "iss", "profile"} {
		out[i], _ = tok.Claims[name].(string)
	}
	return out
}

// TestMemoSharesKeptStrings: a Memo value equal to a string the cached
// token keeps anyway (here the subject, the session and the issuer) is
// that string, not a copy; others are copied, with the same content.
func TestMemoSharesKeptStrings(t *testing.T) {
	f := newFleet(t, verifier.Config{}, 2)
	key := &sessionHeaders{}
	first, err := f.v.Verify(t.Context(), f.tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	first.Memo(key, sessionHeaderValues) // the key is known from now on
	full, err := f.v.Verify(t.Context(), f.tokens[1])
	if err != nil {
		t.Fatal(err)
	}
	hit, err := f.v.Verify(t.Context(), f.tokens[1])
	if err != nil || hit == full {
		t.Fatalf("not the cached form: %v", err)
	}
	got := hit.Memo(key, sessionHeaderValues)
	want := []string{"user-1", full.SessionID, iss, "profile-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("memo %q, want %q", got, want)
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	if !same(got[0], hit.Subject) || !same(got[1], hit.SessionID) || !same(got[2], hit.Issuer()) {
		t.Errorf("the subject, session or issuer header value is a copy")
	}
	if same(got[3], full.Claims["profile"].(string)) {
		t.Errorf("the profile header value is the full token's string, not the cache's own")
	}
}

// sharedValues is a Memo value a consumer hands out to every token: a
// pure function may return one slice for all.
var sharedValues = []string{"User", "tollgate"}

func sharedMemo(_ any, _ *verifier.Token) []string { return sharedValues }

// TestMemoLeavesTheConsumersSliceAlone: a token cached with its Memo value
// keeps a slice of its own; the one the consumer's function returned is
// never written — it may be shared by every token, and requests on other
// goroutines read it (go test -race sees a write).
func TestMemoLeavesTheConsumersSliceAlone(t *testing.T) {
	f := newFleet(t, verifier.Config{}, 200)
	key := new(int)
	first, err := f.v.Verify(t.Context(), f.tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	first.Memo(key, sharedMemo)
	before := [2]*byte{unsafe.StringData(sharedValues[0]), unsafe.StringData(sharedValues[1])}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 1 + g; i < len(f.tokens); i += 4 {
				for range 2 { // cached, then a hit
					tok, err := f.v.Verify(t.Context(), f.tokens[i])
					if err != nil {
						t.Error(err)
						return
					}
					if got := tok.Memo(key, sharedMemo); !slices.Equal(got, []string{"User", "tollgate"}) || sharedValues[0] != "User" {
						t.Errorf("memo %q, shared %q", got, sharedValues)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if after := [2]*byte{unsafe.StringData(sharedValues[0]), unsafe.StringData(sharedValues[1])}; after != before {
		t.Error("the consumer's slice was re-pointed into a cached token's strings")
	}
}

// TestFlatRecordsUnderChurn: a cache far smaller than the tokens cycling
// through it, on several goroutines, evicts and reuses its slots all the
// time; a hit still answers the token presented — its subject, session,
// grants and header values — never another one's (go test -race checks
// the slots' reads and writes too).
func TestFlatRecordsUnderChurn(t *testing.T) {
	f := newFleet(t, verifier.Config{CacheSize: 64}, 600)
	hdr := &proxyHeaders{}
	first, err := f.v.Verify(t.Context(), f.tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	first.Memo(hdr, headerValues)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 6 {
				for i := (g*151 + round*37) % len(f.tokens); i < len(f.tokens); i += 3 {
					tok, err := f.v.Verify(t.Context(), f.tokens[i])
					if err != nil {
						t.Error(err)
						return
					}
					want := fmt.Sprintf("user-%d", i)
					if tok.Subject != want || tok.SessionID != fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i) || !tok.HasScope("catalog") || !tok.HasRole("User") {
						t.Errorf("token %d answered as %s / %s", i, tok.Subject, tok.SessionID)
						return
					}
					if got := tok.Memo(hdr, headerValues); !slices.Equal(got, []string{want, "profile-1", "10000"}) {
						t.Errorf("token %d: header values %q", i, got)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if st := f.v.CacheStats(); st.Hits == 0 || st.Evictions == 0 || st.Size > 64+16 {
		t.Errorf("no churn to speak of: %+v", st)
	}
}

// TestTokensTooLongForARecordStayCached: a token whose strings do not fit a
// flat record (a long scope) is cached boxed, and answered from the cache
// like the others.
func TestTokensTooLongForARecordStayCached(t *testing.T) {
	f := newFleet(t, verifier.Config{}, 1)
	hdr := &proxyHeaders{}
	first, _ := f.v.Verify(t.Context(), f.tokens[0])
	first.Memo(hdr, headerValues)
	long := f.key.Access(t, testkit.Claims(iss, aud, now, func(c jwt.MapClaims) {
		c["sub"] = "long-scope-user"
		c["scope"] = strings.Repeat("a-rather-long-scope-name ", 40)
	}))
	before := f.v.CacheStats()
	for range 3 {
		tok, err := f.v.Verify(t.Context(), long)
		if err != nil || tok.Subject != "long-scope-user" || !tok.HasScope("a-rather-long-scope-name") {
			t.Fatalf("%v %+v", err, tok)
		}
	}
	if st := f.v.CacheStats(); st.Hits-before.Hits != 2 || st.Misses-before.Misses != 1 {
		t.Errorf("want one miss then two hits: %+v → %+v", before, st)
	}
}

// TestOffHeapLimit: the records outside the heap never take more than
// OffHeapLimit, which owners reserve from the runtime's memory limit, and
// a verifier without a cache reserves nothing.
func TestOffHeapLimit(t *testing.T) {
	f := newFleet(t, verifier.Config{CacheSize: 1000}, 3000)
	hdr := &proxyHeaders{}
	first, _ := f.v.Verify(t.Context(), f.tokens[0])
	first.Memo(hdr, headerValues)
	for _, raw := range f.tokens {
		if _, err := f.v.Verify(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	st, limit := f.v.CacheStats(), f.v.OffHeapLimit()
	if st.OffHeapBytes == 0 || st.OffHeapBytes > limit || limit < 1000*320 {
		t.Errorf("records %d B, limit %d B", st.OffHeapBytes, limit)
	}
	if v := newFleet(t, verifier.Config{CacheSize: -1}, 0).v; v.OffHeapLimit() != 0 {
		t.Errorf("no cache, yet %d B reserved", v.OffHeapLimit())
	}
}

func nilMemo(_ any, _ *verifier.Token) []string { return nil }

// TestNilMemoStaysNil: a consumer's function that derives nothing (nil)
// is answered nil on hits too, not an empty list: the proxy tells "no
// identity can be derived" from "no headers apply" that way.
func TestNilMemoStaysNil(t *testing.T) {
	f := newFleet(t, verifier.Config{}, 2)
	key := new(int)
	first, _ := f.v.Verify(t.Context(), f.tokens[0])
	first.Memo(key, nilMemo)
	for range 3 {
		tok, err := f.v.Verify(t.Context(), f.tokens[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Memo(key, nilMemo); got != nil {
			t.Fatalf("memo %#v, want nil", got)
		}
	}
}
