package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/jwk"
)

// Key is a signing key generated for one JWS algorithm.
type Key struct {
	// Alg is ES256, RS256, EdDSA or HS256.
	Alg string
	// KID goes into the header of every token signed, unless "".
	KID string
	// Private is the private key, or the []byte secret for HS256.
	Private any
}

// NewKey generates a key for alg (RSA keys have 2048 bits, HMAC secrets
// 32 bytes).
func NewKey(t testing.TB, alg, kid string) *Key {
	t.Helper()
	var priv any
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "HS256":
		secret := make([]byte, 32)
		rand.Read(secret)
		priv = secret
	default:
		t.Fatalf("testkit: no key for %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Alg: alg, KID: kid, Private: priv}
}

// Public returns the verification half: a public key, or the secret.
func (k *Key) Public() any { return jwk.Public(k.Private) }

// Sign mints a token with claims. The header is jwt's default (alg, typ
// JWT) with the key's kid; header then sets entries, or deletes those set
// to nil.
func (k *Key) Sign(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	if k.KID != "" {
		tok.Header["kid"] = k.KID
	}
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Access mints an RFC 9068 access token (typ at+jwt) with claims.
func (k *Key) Access(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return k.Sign(t, claims, map[string]any{"typ": "at+jwt"})
}

// JWKS returns a JWK Set publishing the key's public half.
func (k *Key) JWKS(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Signer returns the private key as a crypto.Signer (nil for HS256).
func (k *Key) Signer() crypto.Signer {
	s, _ := k.Private.(crypto.Signer)
	return s
}

// Claims returns access-token claims from iss for aud, issued at now
// and valid for an hour, with the session claims tollgate's tokens carry;
// edit, if not nil, adjusts them.
func Claims(iss, aud string, now time.Time, edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": "user-1", "jti": "token-1", "sid": "session-1", "profile": "profile-1",
		"client_id": "stb", "scope": "openid catalog", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// Clock is a settable clock; its Now is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Echoed is what an Echo upstream received.
type Echoed struct {
	Upstream string            `json:"upstream"`
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	RawPath  string            `json:"raw_path"`
	Query    string            `json:"query"`
	Host     string            `json:"host"`
	Header   http.Header       `json:"header"`
	Headers  map[string]string `json:"headers"` // each header's values joined with ","
}

// Echo starts an upstream named name that answers every request with the
// JSON of what it received; it closes when the test ends.
func Echo(t testing.TB, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		joined := make(map[string]string, len(r.Header))
		for k, v := range r.Header {
			joined[k] = strings.Join(v, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Echoed{Upstream: name, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
			Query: r.URL.RawQuery, Host: r.Host, Header: r.Header, Headers: joined})
	}))
	t.Cleanup(srv.Close)
	return srv
}
