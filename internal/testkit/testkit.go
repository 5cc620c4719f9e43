package testkit

import (
	"crypto"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
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
	if alg == "HS256" {
		secret := make([]byte, 32)
		rand.Read(secret)
		return &Key{Alg: alg, KID: kid, Private: secret}
	}
	priv, err := jwk.Generate(alg, 2048)
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

// WriteFile replaces path the way careful writers do (write aside,
// rename), so a reader polling it never sees half a file.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// CatalogueBody is what Catalogue answers.
const CatalogueBody = `{"channels":[101,102,103]}`

// Catalogue is an in-memory upstream (an http.RoundTripper) answering
// every request like a small JSON API, so a benchmark measures the
// gateway, not sockets.
type Catalogue struct{}

// RoundTrip implements http.RoundTripper.
func (Catalogue) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{
			"Content-Type":   {"application/json"},
			"Content-Length": {strconv.Itoa(len(CatalogueBody))},
			"Cache-Control":  {"private, max-age=60"},
			"Date":           {"Wed, 25 Nov 2026 07:00:00 GMT"},
		},
		ContentLength: int64(len(CatalogueBody)),
		Body:          io.NopCloser(strings.NewReader(CatalogueBody)),
	}, nil
}

// STBRequest is a set-top box's API call to path: the headers its HTTP
// stack sends, with authorization as the Authorization header.
func STBRequest(path, authorization string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", authorization)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) STB/4.2")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Accept-Language", "en-GB")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("X-Device-Serial", "STB-0042-7731")
	return req
}

// Faulty starts an upstream that fails on command, by path:
//   - /ok answers 200 with a small JSON body;
//   - /status/{code} answers that status;
//   - /hang holds the request until the client leaves or the test ends;
//   - /reset-headers writes half a status line and headers, then closes;
//   - /reset-body sends headers promising 1 MB, 1 KiB of it, then closes;
//   - /stream writes 1 KiB every time the test sends on the returned
//     channel, until it is closed.
//
// It closes when the test ends.
func Faulty(t testing.TB) (*httptest.Server, chan<- struct{}) {
	t.Helper()
	release := make(chan struct{})
	chunks := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	hijack := func(w http.ResponseWriter, raw string) {
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString(raw)
		buf.Flush()
		c.Close()
	}
	mux.HandleFunc("/reset-headers", func(w http.ResponseWriter, r *http.Request) {
		hijack(w, "HTTP/1.1 200 OK\r\nContent-Type: appl")
	})
	mux.HandleFunc("/reset-body", func(w http.ResponseWriter, r *http.Request) {
		hijack(w, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("x", 1024))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		for {
			select {
			case _, ok := <-chunks:
				if !ok {
					return
				}
				w.Write([]byte(strings.Repeat("s", 1024)))
				http.NewResponseController(w).Flush()
			case <-r.Context().Done():
				return
			case <-release:
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before Close
	return srv, chunks
}
