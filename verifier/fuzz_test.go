package verifier_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/verifier"
)

var sentinels = []error{
	verifier.ErrMalformed, verifier.ErrAlgorithm, verifier.ErrBadSignature, verifier.ErrUnknownKey, verifier.ErrStaleKeys,
	verifier.ErrExpired, verifier.ErrNotYetValid, verifier.ErrWrongIssuer, verifier.ErrWrongAudience,
	verifier.ErrWrongType, verifier.ErrLifetime,
}

// FuzzVerify feeds arbitrary strings to Verify. Seeds: the tokens printed
// in docs/CLIENTS.md §1.7, §2.4, valid tokens of every algorithm, signed
// tokens that must be refused all the same (a crit header, NumericDates
// out of range, no sub, too long a life), and mutations. Properties: a
// token nobody signed never verifies, and an accepted token breaks none of
// the rules checked before the signature.
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
	// Signed by a trusted key, yet to be refused.
	for _, bad := range []struct {
		edit   func(jwt.MapClaims)
		header map[string]any
	}{
		{header: map[string]any{"crit": []string{"b64"}, "b64": false}},
		{header: map[string]any{"crit": []string{}}},
		{header: map[string]any{"crit": "exp"}},
		{edit: func(c jwt.MapClaims) { c["nbf"] = 1e19 }},
		{edit: func(c jwt.MapClaims) { c["iat"] = 1e300 }},
		{edit: func(c jwt.MapClaims) { c["exp"] = 1e19 }},
		{edit: func(c jwt.MapClaims) { c["exp"] = -1e300 }},
		{edit: func(c jwt.MapClaims) { delete(c, "sub") }},
		{edit: func(c jwt.MapClaims) { c["sub"] = "" }},
		{edit: func(c jwt.MapClaims) { c["exp"] = now.AddDate(1, 0, 0).Unix() }},
	} {
		for _, alg := range []string{"ES256", "HS256"} {
			c := claims()
			if bad.edit != nil {
				bad.edit(c)
			}
			f.Add(k[alg].Sign(f, c, bad.header))
		}
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
			if tok == nil || tok.Issuer() != iss {
				t.Fatalf("accepted without a token: %+v", tok)
			}
			if !valid[raw] && !verifiesDirectly(k, raw) {
				t.Fatalf("accepted a token that no key signed: %q", raw)
			}
			if why := breaksRules(raw); why != "" {
				t.Fatalf("accepted a token that %s: %q", why, raw)
			}
			return
		}
		if valid[raw] {
			t.Fatalf("refused a valid seed: %v", err)
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

// breaksRules reports which of the verifier's pre-signature rules an
// (accepted) token breaks, or "" if none: a crit header, a NumericDate out
// of range, a missing subject, a life beyond the default MaxLifetime and
// the fuzz verifier's minute of leeway.
func breaksRules(raw string) string {
	var c jwt.MapClaims
	tok, _, err := jwt.NewParser(jwt.WithJSONNumber()).ParseUnverified(raw, &c)
	if err != nil {
		return "does not parse: " + err.Error()
	}
	if _, ok := tok.Header["crit"]; ok {
		return "has a crit header"
	}
	if sub, _ := c["sub"].(string); sub == "" {
		return "has no sub"
	}
	dates := map[string]float64{}
	for _, name := range []string{"exp", "nbf", "iat"} {
		n, ok := c[name].(json.Number)
		if !ok {
			continue
		}
		f, err := n.Float64()
		if err != nil || f < 0 || f > 253402300799 {
			return name + " is out of range"
		}
		dates[name] = f
	}
	from, ok := dates["iat"]
	if !ok {
		from = float64(now.Unix())
	}
	if dates["exp"]-from > (24*time.Hour + time.Minute).Seconds() {
		return "lives too long"
	}
	return ""
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
