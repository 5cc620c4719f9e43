package issuer

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
)

// grantOn posts a token request to h and returns the status and the
// decoded answer.
func grantOn(t *testing.T, h http.Handler, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	return rec.Code, out
}

// refreshHeader decodes a token's header, failing the test if it is no JWT.
func refreshHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	h, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("refresh token %.40s…: %v", token, err)
	}
	return h.Header
}

// replica is another issuer on the same keys directory and users, as a
// second replica of a deployment has, with signing as its refresh token
// signing.
func (f *fixture) replica(t *testing.T, signing string) *Issuer {
	t.Helper()
	keys, err := LoadKeys(KeysConfig{Dir: f.keys.cfg.Dir}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := New(Config{Issuer: "https://auth.test", Audience: "api", RefreshSigning: signing}, keys, f.iss.users, f.iss.access, zap.NewNop(),
		WithClock(func() time.Time { return f.now }))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

const (
	passwordGrant = "grant_type=password&client_id=anonymous&username=alice&password=pw"
	refreshGrant  = "grant_type=refresh_token&client_id=anonymous&refresh_token="
)

// TestStatelessRefreshTokensAreMACed: without a session store, a refresh
// token is a JWT (clients read its exp) MACed with the signing key's
// derived refresh key; every replica on the same keys accepts it, and
// replicas signing refresh tokens (an earlier version's way, or
// RefreshSignature during an upgrade) and MACing them accept each other's.
func TestStatelessRefreshTokensAreMACed(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			code, out := grantOn(t, f.iss.Handler(), passwordGrant)
			if code != 200 {
				t.Fatalf("login: %d %v", code, out)
			}
			refresh := out["refresh_token"].(string)
			kid := "rt-" + f.keys.Current().ID
			if h := refreshHeader(t, refresh); h["alg"] != "HS256" || h["kid"] != kid || h["typ"] != "JWT" {
				t.Errorf("refresh token header %v, want HS256 with kid %s", h, kid)
			}
			parsed, _, _ := jwt.NewParser().ParseUnverified(refresh, jwt.MapClaims{})
			if c := parsed.Claims.(jwt.MapClaims); c["type"] != "refresh" || c["exp"] == nil {
				t.Errorf("refresh token claims %v", c)
			}
			if h := refreshHeader(t, out["access_token"].(string)); h["alg"] != alg {
				t.Errorf("access token header %v", h)
			}

			// Another replica on the same keys takes it, and so does one
			// that signs its refresh tokens; the MACing one takes those.
			signer := f.replica(t, RefreshSignature)
			code, out = grantOn(t, f.replica(t, RefreshMAC).Handler(), refreshGrant+refresh)
			if code != 200 {
				t.Fatalf("refresh on a replica: %d %v", code, out)
			}
			code, out = grantOn(t, signer.Handler(), refreshGrant+out["refresh_token"].(string))
			if code != 200 {
				t.Fatalf("refresh on a replica signing refresh tokens: %d %v", code, out)
			}
			signed := out["refresh_token"].(string)
			if h := refreshHeader(t, signed); h["alg"] != alg || h["kid"] != f.keys.Current().ID {
				t.Errorf("signed refresh token header %v", h)
			}
			if code, out = grantOn(t, f.iss.Handler(), refreshGrant+signed); code != 200 {
				t.Fatalf("a signed refresh token on a MACing replica: %d %v", code, out)
			}
		})
	}
}

// TestRefreshMACKeyIsNobodyElses: the refresh grant takes an HS256
// refresh token under the derived key alone — not under the legacy
// clients' shared HMAC key, not with a public key as the secret, not under
// a key of the same kid that is not the derived one — and a removed
// signing key retires the refresh tokens MACed with its derived key.
func TestRefreshMACKeyIsNobodyElses(t *testing.T) {
	f := newFixture(t, "ES256")
	shared := []byte("0123456789abcdef0123456789abcdef-legacy")
	legacy := `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(shared) + `"}`
	if err := os.WriteFile(filepath.Join(f.keys.cfg.Dir, "legacy.jwk"), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	code, out := grantOn(t, f.iss.Handler(), passwordGrant)
	if code != 200 {
		t.Fatalf("login: %d %v", code, out)
	}
	genuine := out["refresh_token"].(string)
	parsed, _, _ := jwt.NewParser().ParseUnverified(genuine, jwt.MapClaims{})
	claims := parsed.Claims.(jwt.MapClaims)
	der, err := x509.MarshalPKIXPublicKey(f.keys.Current().Public())
	if err != nil {
		t.Fatal(err)
	}
	legacyKID := f.keys.snap.Load().hmac.ID
	for _, tc := range []struct {
		name   string
		kid    string
		secret []byte
	}{
		{"the legacy clients' shared key, its kid", legacyKID, shared},
		{"the legacy clients' shared key, the refresh kid", "rt-" + f.keys.Current().ID, shared},
		{"the public key as the secret, its kid", f.keys.Current().ID, der},
		{"another secret under the refresh kid", "rt-" + f.keys.Current().ID, []byte(strings.Repeat("k", 32))},
		{"another secret, no kid", "", []byte(strings.Repeat("k", 32))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]any{"typ": "JWT"}
			if tc.kid != "" {
				header["kid"] = tc.kid
			}
			forged := (&testkit.Key{Alg: "HS256", Private: tc.secret}).Sign(t, claims, header)
			if code, out := grantOn(t, f.iss.Handler(), refreshGrant+forged); code != 400 || out["error"] != "invalid_grant" {
				t.Errorf("forged refresh token: %d %v", code, out)
			}
		})
	}
	if code, out := grantOn(t, f.iss.Handler(), refreshGrant+genuine); code != 200 {
		t.Fatalf("the genuine refresh token: %d %v", code, out)
	}

	// A new key signs; the old one is removed: its refresh tokens go.
	old := f.keys.Current()
	if _, _, err := GenerateKey(f.keys.cfg.Dir, "ES256", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	code, out = grantOn(t, f.iss.Handler(), passwordGrant)
	if code != 200 {
		t.Fatalf("login: %d %v", code, out)
	}
	if h := refreshHeader(t, out["refresh_token"].(string)); h["kid"] != "rt-"+f.keys.Current().ID || f.keys.Current().ID == old.ID {
		t.Errorf("after a rotation the refresh token header is %v", h)
	}
	if code, _ := grantOn(t, f.iss.Handler(), refreshGrant+genuine); code != 200 {
		t.Errorf("a refresh token of the previous key, while it is loaded: %d", code)
	}
	genuine2 := out["refresh_token"].(string)
	os.Remove(old.File)
	if err := f.keys.Reload(); err != nil {
		t.Fatal(err)
	}
	code, out = grantOn(t, f.iss.Handler(), refreshGrant+genuine)
	if code != 400 || out["error"] != "invalid_grant" {
		t.Errorf("a refresh token of a removed key: %d %v", code, out)
	}
	if code, _ := grantOn(t, f.iss.Handler(), refreshGrant+genuine2); code != 200 {
		t.Errorf("a refresh token of the current key: %d", code)
	}
}

func TestRefreshSigningIsChecked(t *testing.T) {
	f := newFixture(t, "ES256")
	_, err := New(Config{Issuer: "https://auth.test", Audience: "api", RefreshSigning: "hmac"}, f.keys, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `refresh token signing "hmac"`) {
		t.Errorf("err = %v", err)
	}
}
