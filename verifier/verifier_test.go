package verifier_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/verifier"
)

const (
	iss = "https://issuer.test"
	aud = "video-api"
)

// keys are one signing key per algorithm, generated per test run. They
// carry no kid of their own: each test puts the kid it needs in the header.
type keys map[string]*testkit.Key

func newKeys(t testing.TB) keys {
	t.Helper()
	k := keys{}
	for alg := range kids {
		k[alg] = testkit.NewKey(t, alg, "")
	}
	return k
}

// keySet is the public half of k as an in-process source, one kid each.
func (k keys) keySet() *verifier.KeySet {
	return verifier.NewKeySet(
		&verifier.Key{ID: "ec", Algorithms: []string{"ES256"}, Public: k["ES256"].Public()},
		&verifier.Key{ID: "rsa", Algorithms: []string{"RS256"}, Public: k["RS256"].Public()},
		&verifier.Key{ID: "ed", Algorithms: []string{"EdDSA"}, Public: k["EdDSA"].Public()},
		&verifier.Key{ID: "hs", Algorithms: []string{"HS256"}, Public: k["HS256"].Public()},
	)
}

var kids = map[string]string{"ES256": "ec", "RS256": "rsa", "EdDSA": "ed", "HS256": "hs"}

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func claims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": "user-1", "jti": "t1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"type": "access", "siteId": 10115, "profile": "p-1",
	}
}

func newVerifier(t testing.TB, ic verifier.IssuerConfig, leeway time.Duration) *verifier.Verifier {
	t.Helper()
	v, err := verifier.New(verifier.Config{Issuers: []verifier.IssuerConfig{ic}, Leeway: leeway}, zap.NewNop(),
		verifier.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAlgorithms(t *testing.T) {
	k := newKeys(t)
	v := newVerifier(t, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"ES256", "RS256", "EdDSA", "HS256"},
		Sources: []verifier.KeySource{k.keySet()},
	}, time.Minute)
	for _, alg := range []string{"ES256", "RS256", "EdDSA", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			for name, hdr := range map[string]map[string]any{
				"with kid":    {"kid": kids[alg]},
				"without kid": {},
			} {
				tok, err := v.Verify(t.Context(), k[alg].Sign(t, claims(), hdr))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if tok.Subject != "user-1" || tok.Issuer() != iss || tok.ID != "t1" || len(tok.Audience()) != 1 || tok.Audience()[0] != aud {
					t.Errorf("%s: token %+v", name, tok)
				}
				if n, ok := tok.Claims["siteId"].(json.Number); !ok || n.String() != "10115" {
					t.Errorf("%s: siteId = %#v, want json.Number 10115", name, tok.Claims["siteId"])
				}
				if !tok.ExpiresAt().Equal(now.Add(time.Hour)) {
					t.Errorf("%s: ExpiresAt %v", name, tok.ExpiresAt())
				}
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	k := newKeys(t)
	other := newKeys(t)
	v := newVerifier(t, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud, "second-api"}, Algorithms: []string{"ES256", "RS256", "EdDSA", "HS256"},
		Sources: []verifier.KeySource{k.keySet()},
	}, time.Minute)
	// An RS256/HS256 issuer holding only an RSA public key: the classic
	// key-confusion target.
	rsaOnly := newVerifier(t, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"RS256", "HS256"},
		Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: "rsa", Algorithms: []string{"RS256"}, Public: k["RS256"].Public()})},
	}, time.Minute)
	esOnly := newVerifier(t, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{k.keySet()},
	}, time.Minute)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(k["RS256"].Public()))})
	// The attacker's "secret" is the RSA public key, which anyone may hold.
	confused := &testkit.Key{Alg: "HS256", Private: pubPEM}

	es := func(edit func(jwt.MapClaims), hdr map[string]any) string {
		c := claims()
		if edit != nil {
			edit(c)
		}
		if hdr == nil {
			hdr = map[string]any{"kid": "ec"}
		}
		return k["ES256"].Sign(t, c, hdr)
	}
	valid := es(nil, nil)
	parts := strings.Split(valid, ".")
	tampered := claims()
	tampered["sub"] = "admin"
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	tests := []struct {
		name  string
		v     *verifier.Verifier
		token string
		want  []error // all must match; nil means valid
	}{
		{"alg none", v, unsigned, []error{verifier.ErrAlgorithm}},
		{"alg none with a signature", v, unsigned + parts[2], []error{verifier.ErrAlgorithm}},
		{"HS256 signed with the RSA public key", rsaOnly, confused.Sign(t, claims(), nil), []error{verifier.ErrUnknownKey}},
		{"HS256 with the RSA key's kid", rsaOnly, confused.Sign(t, claims(), map[string]any{"kid": "rsa"}), []error{verifier.ErrUnknownKey}},
		{"alg not allowed for issuer", esOnly, k["HS256"].Sign(t, claims(), map[string]any{"kid": "hs"}), []error{verifier.ErrAlgorithm}},
		{"alg unknown to the library", v, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XS999"}`)) + "." + parts[1] + "." + parts[2], []error{verifier.ErrAlgorithm}},
		{"unknown kid", v, es(nil, map[string]any{"kid": "nope"}), []error{verifier.ErrUnknownKey}},
		{"kid of another key type", v, es(nil, map[string]any{"kid": "rsa"}), []error{verifier.ErrUnknownKey}},
		{"signed by another key", v, other["ES256"].Sign(t, claims(), map[string]any{"kid": "ec"}), []error{verifier.ErrBadSignature}},
		{"tampered payload", v, parts[0] + "." + base64.RawURLEncoding.EncodeToString(must(json.Marshal(tampered))) + "." + parts[2], []error{verifier.ErrBadSignature}},
		{"expired inside leeway", v, es(func(c jwt.MapClaims) { c["exp"] = now.Add(-30 * time.Second).Unix() }, nil), nil},
		{"expired outside leeway", v, es(func(c jwt.MapClaims) { c["exp"] = now.Add(-61 * time.Second).Unix() }, nil), []error{verifier.ErrExpired}},
		{"nbf inside leeway", v, es(func(c jwt.MapClaims) { c["nbf"] = now.Add(30 * time.Second).Unix() }, nil), nil},
		{"nbf outside leeway", v, es(func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() }, nil), []error{verifier.ErrNotYetValid}},
		{"iat in the future", v, es(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }, nil), []error{verifier.ErrNotYetValid}},
		{"exp missing", v, es(func(c jwt.MapClaims) { delete(c, "exp") }, nil), []error{verifier.ErrMalformed}},
		{"exp not a number", v, es(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, nil), []error{verifier.ErrMalformed}},
		{"wrong issuer", v, es(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }, nil), []error{verifier.ErrWrongIssuer}},
		{"issuer missing", v, es(func(c jwt.MapClaims) { delete(c, "iss") }, nil), []error{verifier.ErrMalformed}},
		{"wrong audience", v, es(func(c jwt.MapClaims) { c["aud"] = "other" }, nil), []error{verifier.ErrWrongAudience}},
		{"wrong audience array", v, es(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} }, nil), []error{verifier.ErrWrongAudience}},
		{"audience array with ours", v, es(func(c jwt.MapClaims) { c["aud"] = []string{"a", "second-api"} }, nil), nil},
		{"audience missing", v, es(func(c jwt.MapClaims) { delete(c, "aud") }, nil), []error{verifier.ErrWrongAudience}},
		{"refresh token", v, es(func(c jwt.MapClaims) { c["type"] = "refresh" }, nil), []error{verifier.ErrWrongType}},
		{"typ at+jwt without type claim", v, es(func(c jwt.MapClaims) { delete(c, "type") }, map[string]any{"kid": "ec", "typ": "at+jwt"}), nil},
		{"typ application/at+jwt", v, es(func(c jwt.MapClaims) { delete(c, "type") }, map[string]any{"kid": "ec", "typ": "application/at+jwt"}), nil},
		{"typ at+jwt but type refresh", v, es(func(c jwt.MapClaims) { c["type"] = "refresh" }, map[string]any{"kid": "ec", "typ": "at+jwt"}), []error{verifier.ErrWrongType}},
		{"neither typ nor type", v, es(func(c jwt.MapClaims) { delete(c, "type") }, nil), []error{verifier.ErrWrongType}},
		{"id token typ", v, es(nil, map[string]any{"kid": "ec", "typ": "id+jwt"}), []error{verifier.ErrWrongType}},
		{"expired and wrong audience", v, es(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix(); c["aud"] = "x" }, nil), []error{verifier.ErrExpired, verifier.ErrWrongAudience}},
		{"empty", v, "", []error{verifier.ErrMalformed}},
		{"one segment", v, parts[0], []error{verifier.ErrMalformed}},
		{"two segments", v, parts[0] + "." + parts[1], []error{verifier.ErrMalformed}},
		{"truncated signature", v, valid[:len(valid)-10], []error{verifier.ErrBadSignature}},
		{"non-base64 header", v, "***." + parts[1] + "." + parts[2], []error{verifier.ErrMalformed}},
		{"non-base64 payload", v, parts[0] + ".%%%." + parts[2], []error{verifier.ErrMalformed}},
		{"non-base64 signature", v, parts[0] + "." + parts[1] + ".!!!", []error{verifier.ErrMalformed}},
		{"payload not an object", v, parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`[1,2]`)) + "." + parts[2], []error{verifier.ErrMalformed}},
		{"oversized", v, es(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 9000) }, nil), []error{verifier.ErrMalformed}},

		// crit (RFC 7515 §4.1.11): tollgate understands no extension, so a
		// signed token naming one is refused, as is a crit of the wrong shape.
		{"crit naming an extension", v, es(nil, map[string]any{"kid": "ec", "crit": []string{"b64"}, "b64": false}), []error{verifier.ErrMalformed}},
		{"crit naming a registered claim", v, es(nil, map[string]any{"kid": "ec", "crit": []string{"exp"}}), []error{verifier.ErrMalformed}},
		{"crit empty", v, es(nil, map[string]any{"kid": "ec", "crit": []string{}}), []error{verifier.ErrMalformed}},
		{"crit a string", v, es(nil, map[string]any{"kid": "ec", "crit": "b64"}), []error{verifier.ErrMalformed}},
		{"crit of numbers", v, es(nil, map[string]any{"kid": "ec", "crit": []int{1}}), []error{verifier.ErrMalformed}},
		{"crit an object", v, es(nil, map[string]any{"kid": "ec", "crit": map[string]any{}}), []error{verifier.ErrMalformed}},

		// NumericDates outside 1970…9999: converted, they would overflow
		// int64 and land in the past.
		{"nbf 1e19", v, es(func(c jwt.MapClaims) { c["nbf"] = 1e19 }, nil), []error{verifier.ErrMalformed}},
		{"nbf 1e300", v, es(func(c jwt.MapClaims) { c["nbf"] = 1e300 }, nil), []error{verifier.ErrMalformed}},
		{"iat 1e19", v, es(func(c jwt.MapClaims) { c["iat"] = 1e19 }, nil), []error{verifier.ErrMalformed}},
		{"iat 1e300", v, es(func(c jwt.MapClaims) { c["iat"] = 1e300 }, nil), []error{verifier.ErrMalformed}},
		{"exp 1e19", v, es(func(c jwt.MapClaims) { c["exp"] = 1e19 }, nil), []error{verifier.ErrMalformed}},
		{"exp 1e300", v, es(func(c jwt.MapClaims) { c["exp"] = 1e300 }, nil), []error{verifier.ErrMalformed}},
		{"exp beyond 9999", v, es(func(c jwt.MapClaims) { c["exp"] = 253402300800 }, nil), []error{verifier.ErrMalformed}},
		{"nbf negative", v, es(func(c jwt.MapClaims) { c["nbf"] = -1 }, nil), []error{verifier.ErrMalformed}},
		{"iat hugely negative", v, es(func(c jwt.MapClaims) { c["iat"] = -1e19 }, nil), []error{verifier.ErrMalformed}},
		{"exp hugely negative", v, es(func(c jwt.MapClaims) { c["exp"] = -1e300 }, nil), []error{verifier.ErrMalformed}},
		{"nbf 0", v, es(func(c jwt.MapClaims) { c["nbf"] = 0 }, nil), nil},

		// Every access token names its subject.
		{"sub missing", v, es(func(c jwt.MapClaims) { delete(c, "sub") }, nil), []error{verifier.ErrMalformed}},
		{"sub empty", v, es(func(c jwt.MapClaims) { c["sub"] = "" }, nil), []error{verifier.ErrMalformed}},
		{"sub null", v, es(func(c jwt.MapClaims) { c["sub"] = nil }, nil), []error{verifier.ErrMalformed}},
		{"sub a number", v, es(func(c jwt.MapClaims) { c["sub"] = 42 }, nil), []error{verifier.ErrMalformed}},
		{"sub an array", v, es(func(c jwt.MapClaims) { c["sub"] = []string{"user-1"} }, nil), []error{verifier.ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.v.Verify(t.Context(), tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || tok != nil {
				t.Fatalf("accepted: %+v", tok)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %v", err, w)
				}
			}
			if strings.Contains(err.Error(), tt.token) && tt.token != "" {
				t.Error("the error repeats the token")
			}
		})
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]string{
		nil:                         "ok",
		verifier.ErrExpired:         "expired",
		verifier.ErrNotYetValid:     "not_yet_valid",
		verifier.ErrLifetime:        "lifetime_too_long",
		verifier.ErrBadSignature:    "bad_signature",
		verifier.ErrAlgorithm:       "bad_signature",
		verifier.ErrUnknownKey:      "unknown_key",
		verifier.ErrStaleKeys:       "stale_keys",
		verifier.ErrWrongIssuer:     "wrong_issuer",
		verifier.ErrWrongAudience:   "wrong_audience",
		verifier.ErrWrongType:       "wrong_type",
		verifier.ErrMalformed:       "malformed",
		errors.New("anything else"): "malformed",
	} {
		if got := verifier.Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

// The legacy tokens of docs/CLIENTS.md §1.7/§2.4: HS256, no kid, typ JWT, iss
// com.aminocom, type access/refresh, a nested data object.
func TestLegacyAminoTokens(t *testing.T) {
	secret := []byte("legacy-shared-secret-of-at-least-32-bytes!")
	dir := t.TempDir()
	jwk := `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `"}`
	path := filepath.Join(dir, "legacy.jwk")
	if err := os.WriteFile(path, []byte(jwk), 0o600); err != nil {
		t.Fatal(err)
	}
	// The samples were minted at 1581273888 (2020-02-09).
	minted := time.Unix(1581273888, 0)
	clock := minted.Add(time.Minute)
	v, err := verifier.New(verifier.Config{Leeway: time.Minute, Issuers: []verifier.IssuerConfig{{
		Issuer: "com.aminocom", Audiences: []string{"com.aminocom"}, Algorithms: []string{"HS256"}, KeyFiles: []string{path},
	}}}, zap.NewNop(), verifier.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	legacy := func(typ string) jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "com.aminocom", "aud": "com.aminocom", "type": typ, "jti": "5Fl4edsv7S",
			"iat": 1581273888, "nbf": 1581273888, "exp": 1581277488,
			"data": map[string]any{"userId": "2", "user_email": "sam.bocharov@24i.com", "session_id": "8f44cdf17d8decbb4557ce"},
			"sub":  "2", "profile": "4f3d8946-4423-11ea-bbb8-b7af30354b4a",
		}
	}
	hdr := map[string]any{"typ": "JWT"}
	key := &testkit.Key{Alg: "HS256", Private: secret}
	tok, err := v.Verify(t.Context(), key.Sign(t, legacy("access"), hdr))
	if err != nil {
		t.Fatalf("legacy access token: %v", err)
	}
	if d, _ := tok.Claims["data"].(map[string]any); d["userId"] != "2" {
		t.Errorf("data.userId = %v", tok.Claims["data"])
	}
	if _, err := v.Verify(t.Context(), key.Sign(t, legacy("refresh"), hdr)); !errors.Is(err, verifier.ErrWrongType) {
		t.Errorf("legacy refresh token as access: %v", err)
	}

	// The real samples printed in 000: parsed all the way to the
	// signature check (we do not know their secret) inside their validity
	// window, and expired now.
	sample := sourceDocTokens[0]
	if _, err := v.Verify(t.Context(), sample); !errors.Is(err, verifier.ErrBadSignature) {
		t.Errorf("000 access sample inside its window: %v, want bad signature", err)
	}
	clock = time.Now()
	if _, err := v.Verify(t.Context(), sample); !errors.Is(err, verifier.ErrExpired) {
		t.Errorf("000 access sample today: %v, want expired", err)
	}
	if _, err := v.Verify(t.Context(), sourceDocTokens[1]); !errors.Is(err, verifier.ErrWrongType) {
		t.Errorf("000 refresh sample: %v, want wrong type", err)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	hsOnly := filepath.Join(dir, "hs.jwk")
	os.WriteFile(hsOnly, []byte(`{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`), 0o600)
	_, err := verifier.New(verifier.Config{Leeway: -time.Second, Issuers: []verifier.IssuerConfig{
		{Issuer: "", Audiences: nil, KeyFiles: []string{filepath.Join(dir, "missing.pem")}},
		{Issuer: "a", Audiences: []string{"x"}, Algorithms: []string{"ES256", "none"}, KeyFiles: []string{empty}},
		{Issuer: "b", Audiences: []string{"x"}, KeyFiles: []string{hsOnly}},
		{Issuer: "c", Audiences: []string{"x"}},
		{Issuer: "d", Audiences: []string{"x"}, JWKSURLs: []string{"ftp://keys"}},
		{Issuer: "e", Audiences: []string{"x"}, JWKSURLs: []string{"https://keys.test/jwks"}, MaxLifetime: -time.Hour},
	}}, zap.NewNop())
	if !errors.Is(err, verifier.ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"leeway", "issuer is empty", "no audience", "missing.pem", `unsupported algorithm "none"`,
		"no key files in directory", "allows none of the algorithms", "no key source", "ftp://keys", "max lifetime must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := verifier.New(verifier.Config{}, zap.NewNop()); !errors.Is(err, verifier.ErrInvalidConfig) {
		t.Errorf("no issuers: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	k := newKeys(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDir := filepath.Join(dir, "keys")
	os.Mkdir(keyDir, 0o700)
	os.WriteFile(filepath.Join(keyDir, "ec.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(k["ES256"].Public()))}), 0o600)
	os.WriteFile(filepath.Join(keyDir, "rsa.pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(k["RS256"].Public().(*rsa.PublicKey))}), 0o600)
	os.WriteFile(filepath.Join(keyDir, ".hidden"), []byte("not a key"), 0o600)
	edJWKS := write("ed.jwks", (&testkit.Key{Alg: "EdDSA", KID: "ed-1", Private: k["EdDSA"].Private}).JWKS(t))
	hsJWK := write("hs.jwk", []byte(`{"kty":"oct","kid":"hs-1","k":"`+base64.RawURLEncoding.EncodeToString(k["HS256"].Private.([]byte))+`"}`))

	v := newVerifier(t, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"ES256", "RS256", "EdDSA", "HS256"},
		KeyFiles: []string{keyDir, edJWKS, hsJWK},
	}, 0)
	for _, tc := range []struct {
		alg string
		kid any // nil: no kid (PEM keys get thumbprint kids)
	}{{"ES256", nil}, {"RS256", nil}, {"EdDSA", "ed-1"}, {"HS256", "hs-1"}} {
		hdr := map[string]any{}
		if tc.kid != nil {
			hdr["kid"] = tc.kid
		}
		if _, err := v.Verify(t.Context(), k[tc.alg].Sign(t, claims(), hdr)); err != nil {
			t.Errorf("%s from file: %v", tc.alg, err)
		}
	}
	// The PEM keys' kid is their RFC 7638 thumbprint.
	tp := must((&jose.JSONWebKey{Key: k["ES256"].Public()}).Thumbprint(cryptoSHA256))
	if _, err := v.Verify(t.Context(), k["ES256"].Sign(t, claims(), map[string]any{"kid": base64.RawURLEncoding.EncodeToString(tp)})); err != nil {
		t.Errorf("ES256 with thumbprint kid: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestMaxLifetime(t *testing.T) {
	k := newKeys(t)
	newV := func(maxLifetime time.Duration, refresh bool) *verifier.Verifier {
		return newVerifier(t, verifier.IssuerConfig{
			Issuer: iss, Audiences: []string{aud}, Sources: []verifier.KeySource{k.keySet()},
			MaxLifetime: maxLifetime, Refresh: refresh,
		}, time.Minute)
	}
	def, twoHours, refresh := newV(0, false), newV(2*time.Hour, false), newV(0, true)
	// lifetime signs an access token issued at iat (omitted when zero) and
	// expiring at exp; edit, if not nil, adjusts the claims further.
	lifetime := func(iat, exp time.Time, edit func(jwt.MapClaims)) string {
		c := claims()
		delete(c, "nbf")
		delete(c, "iat")
		if !iat.IsZero() {
			c["iat"] = iat.Unix()
		}
		c["exp"] = exp.Unix()
		if edit != nil {
			edit(c)
		}
		return k["ES256"].Sign(t, c, map[string]any{"kid": "ec"})
	}
	asRefresh := func(c jwt.MapClaims) { c["type"] = "refresh" }
	never := time.Time{}
	tests := []struct {
		name  string
		v     *verifier.Verifier
		token string
		want  error // nil: valid
	}{
		{"default: a day", def, lifetime(now, now.Add(24*time.Hour), nil), nil},
		{"default: a day and the leeway", def, lifetime(now, now.Add(24*time.Hour+time.Minute), nil), nil},
		{"default: beyond the leeway", def, lifetime(now, now.Add(24*time.Hour+time.Minute+time.Second), nil), verifier.ErrLifetime},
		{"default: a week", def, lifetime(now, now.Add(7*24*time.Hour), nil), verifier.ErrLifetime},
		{"default: issued long ago, expiring soon", def, lifetime(now.Add(-30*24*time.Hour), now.Add(time.Hour), nil), verifier.ErrLifetime},
		{"default: year 9999", def, lifetime(now, time.Unix(253402300799, 0), nil), verifier.ErrLifetime},
		{"default: no iat, a day from now", def, lifetime(never, now.Add(24*time.Hour), nil), nil},
		{"default: no iat, a year from now", def, lifetime(never, now.Add(365*24*time.Hour), nil), verifier.ErrLifetime},
		{"two hours: two", twoHours, lifetime(now, now.Add(2*time.Hour), nil), nil},
		{"two hours: three", twoHours, lifetime(now, now.Add(3*time.Hour), nil), verifier.ErrLifetime},
		{"two hours: no iat, three from now", twoHours, lifetime(never, now.Add(3*time.Hour), nil), verifier.ErrLifetime},
		{"refresh: thirty days", refresh, lifetime(now, now.Add(720*time.Hour), asRefresh), nil},
		{"refresh: a year", refresh, lifetime(now, now.Add(365*24*time.Hour), asRefresh), verifier.ErrLifetime},
		{"refresh: no sub", refresh, lifetime(now, now.Add(time.Hour), func(c jwt.MapClaims) { asRefresh(c); delete(c, "sub") }), verifier.ErrMalformed},
		{"refresh: empty sub", refresh, lifetime(now, now.Add(time.Hour), func(c jwt.MapClaims) { asRefresh(c); c["sub"] = "" }), verifier.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.v.Verify(t.Context(), tt.token)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("got %v (token %v), want %v", err, tok != nil, tt.want)
			case tt.want == verifier.ErrLifetime && (verifier.Reason(err) != "lifetime_too_long" || verifier.Description(err) != "token lifetime too long"):
				t.Errorf("reason %q, description %q", verifier.Reason(err), verifier.Description(err))
			}
		})
	}
}

func TestConstrain(t *testing.T) {
	k := newKeys(t)
	var calls atomic.Int64
	errBlocked := fmt.Errorf("%w: profile blocked", verifier.ErrWrongType)
	v := newVerifier(t, verifier.IssuerConfig{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"ES256", "HS256"}, Sources: []verifier.KeySource{k.keySet()},
		// Tokens signed with the shared secret confer no scopes; some
		// profiles are refused outright, some fail for no sentinel.
		Constrain: func(tok *verifier.Token) error {
			calls.Add(1)
			switch tok.Claims["profile"] {
			case "blocked":
				return errBlocked
			case "broken":
				return errors.New("policy store down")
			}
			if tok.Algorithm() == "HS256" {
				delete(tok.Claims, "scope")
			}
			return nil
		},
	}, time.Minute)
	sign := func(alg, profile string) string {
		return k[alg].Access(t, testkit.Claims(iss, aud, now, func(c jwt.MapClaims) { c["profile"] = profile }))
	}
	tests := []struct {
		name      string
		token     string
		wantAlg   string
		wantScope bool
		wantErr   error // nil: valid
	}{
		{"ES256 keeps its scopes", sign("ES256", "p-1"), "ES256", true, nil},
		{"HS256 loses its scopes", sign("HS256", "p-1"), "HS256", false, nil},
		{"refused with a sentinel", sign("ES256", "blocked"), "", false, verifier.ErrWrongType},
		{"refused with a plain error", sign("HS256", "broken"), "", false, verifier.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			first, err := v.Verify(t.Context(), tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || first != nil {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				// A refused token is not cached: the next use asks again.
				if _, err := v.Verify(t.Context(), tt.token); !errors.Is(err, tt.wantErr) || calls.Load() != before+2 {
					t.Errorf("second use: %v after %d calls, want refused after 2", err, calls.Load()-before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			second, err := v.Verify(t.Context(), tt.token)
			if err != nil || second != first {
				t.Fatalf("second use: %v, cached %v", err, second == first)
			}
			if got := calls.Load() - before; got != 1 {
				t.Errorf("Constrain called %d times, want once (the cache holds the constrained token)", got)
			}
			for i, tok := range []*verifier.Token{first, second} {
				if _, has := tok.Claims["scope"]; tok.Algorithm() != tt.wantAlg || has != tt.wantScope {
					t.Errorf("use %d: Algorithm %q, scope present %v; want %q, %v", i+1, tok.Algorithm(), has, tt.wantAlg, tt.wantScope)
				}
			}
		})
	}
}

// TestDescriptionsAreGeneric: what a client is told of a refusal names no
// trusted issuer, audience, kid or algorithm; the error text, for the debug
// log, keeps the detail.
func TestDescriptionsAreGeneric(t *testing.T) {
	const (
		trustedIss = "https://idp.internal.example"
		trustedAud = "catalog-internal"
		trustedKID = "prod-signing-2026"
	)
	good, attacker := testkit.NewKey(t, "ES256", trustedKID), testkit.NewKey(t, "ES256", trustedKID)
	v := newVerifier(t, verifier.IssuerConfig{
		Issuer: trustedIss, Audiences: []string{trustedAud}, Algorithms: []string{"ES256", "RS256"},
		Sources: []verifier.KeySource{verifier.NewKeySet(&verifier.Key{ID: trustedKID, Algorithms: []string{"ES256"}, Public: good.Public()})},
	}, time.Minute)
	edit := func(f func(jwt.MapClaims)) jwt.MapClaims { return testkit.Claims(trustedIss, trustedAud, now, f) }
	tests := []struct {
		name        string
		token       string
		want        error
		description string
		detail      string // the error text names it, for the log
	}{
		{"signed with an attacker's key", attacker.Access(t, edit(nil)), verifier.ErrBadSignature, "bad signature", ""},
		{"wrong audience", good.Access(t, edit(func(c jwt.MapClaims) { c["aud"] = "elsewhere" })), verifier.ErrWrongAudience, "wrong audience", ""},
		{"wrong issuer", good.Access(t, edit(func(c jwt.MapClaims) { c["iss"] = "https://idp.internal.example.evil" })), verifier.ErrWrongIssuer, "untrusted issuer", ""},
		{"unknown kid", good.Sign(t, edit(nil), map[string]any{"typ": "at+jwt", "kid": "guess-1"}), verifier.ErrUnknownKey, "unknown signing key", "guess-1"},
		{"algorithm not allowed", testkit.NewKey(t, "EdDSA", trustedKID).Access(t, edit(nil)), verifier.ErrAlgorithm, "bad signature", "EdDSA"},
		{"lifetime too long", good.Access(t, edit(func(c jwt.MapClaims) { c["exp"] = now.AddDate(1, 0, 0).Unix() })), verifier.ErrLifetime, "token lifetime too long", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			d := verifier.Description(err)
			if d != tt.description {
				t.Errorf("Description = %q, want %q", d, tt.description)
			}
			for _, secret := range []string{trustedIss, "idp.internal", trustedAud, trustedKID, "ES256", "RS256"} {
				if strings.Contains(d, secret) {
					t.Errorf("Description %q names %q", d, secret)
				}
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error text %q lacks %q", err, tt.detail)
			}
		})
	}
}
