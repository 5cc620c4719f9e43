package verifier_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/verifier"
)

var sentinels = []error{
	verifier.ErrMalformed, verifier.ErrAlgorithm, verifier.ErrBadSignature, verifier.ErrUnknownKey,
	verifier.ErrExpired, verifier.ErrNotYetValid, verifier.ErrWrongIssuer, verifier.ErrWrongAudience,
	verifier.ErrWrongType,
}

// FuzzVerify feeds arbitrary strings to Verify. Seeds: the tokens printed
// in docs/CLIENTS.md §1.7, §2.4, valid tokens of every algorithm, and mutations.
func FuzzVerify(f *testing.F) {
	k := newKeys(f)
	v := newVerifier(f, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"ES256", "RS256", "EdDSA", "HS256"},
		Sources: []verifier.KeySource{k.keySet()},
	}, time.Minute)
	valid := map[string]bool{}
	for _, alg := range []string{"ES256", "RS256", "EdDSA", "HS256"} {
		tok := k[alg].Sign(f, claims(), nil)
		valid[tok] = true
		f.Add(tok)
		f.Add(tok[:len(tok)/2])
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	for _, tok := range sourceDocTokens {
		f.Add(tok)
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0In0.")
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(t.Context(), raw)
		if err == nil {
			if tok == nil || tok.Issuer != iss {
				t.Fatalf("accepted without a token: %+v", tok)
			}
			if !valid[raw] && !verifiesDirectly(k, raw) {
				t.Fatalf("accepted a token that no key signed: %q", raw)
			}
			return
		}
		matched := false
		for _, s := range sentinels {
			if errors.Is(err, s) {
				matched = true
			}
		}
		if !matched {
			t.Fatalf("error matches no sentinel: %v", err)
		}
	})
}

// verifiesDirectly re-checks a signature with golang-jwt alone.
func verifiesDirectly(k keys, raw string) bool {
	_, err := jwt.Parse(raw, func(t *jwt.Token) (any, error) {
		if key, ok := k[t.Method.Alg()]; ok {
			return key.Public(), nil
		}
		return nil, errors.New("alg")
	}, jwt.WithoutClaimsValidation())
	return err == nil
}

// BenchmarkVerify measures full verification, signature included: the
// cache is off (BenchmarkVerifyCached measures a hit).
func BenchmarkVerify(b *testing.B) {
	k := newKeys(b)
	v, err := verifier.New(verifier.Config{CacheSize: -1, Leeway: time.Minute, Issuers: []verifier.IssuerConfig{{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"ES256", "RS256", "EdDSA", "HS256"},
		Sources: []verifier.KeySource{k.keySet()},
	}}}, zap.NewNop(), verifier.WithClock(func() time.Time { return now }))
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{"ES256", "RS256", "EdDSA", "HS256"} {
		b.Run(alg, func(b *testing.B) {
			tok := k[alg].Sign(b, claims(), map[string]any{"kid": kids[alg]})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
