package verifier_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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
	derive := func(t *verifier.Token) any { calls++; return t.Subject + "!" }
	keyA, keyB := new(int), new(int)
	for range 3 {
		if got := tok.Memo(keyA, derive); got != "user-1!" {
			t.Fatalf("memo %v", got)
		}
	}
	if calls != 1 {
		t.Errorf("derived %d times, want once", calls)
	}
	tok.Memo(keyB, derive)
	if calls != 2 || tok.Memo(keyA, derive) != "user-1!" || calls != 2 {
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
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(b.Context(), raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
