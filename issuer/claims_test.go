package issuer

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/identity"
)

// FuzzAppendJSONString: whatever the string, what appendJSONString writes
// is valid JSON that decodes to what encoding/json's own encoding of it
// decodes to (invalid UTF-8 replaced the same way).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f",
		"<script>&amp;", "héllo wörld ✓", "\u2028\u2029", "bad \xff\xfe utf-8", "\xe2\x82", "emoji 😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ours := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(ours, &got); err != nil {
			t.Fatalf("%q written as %s: %v", s, ours, err)
		}
		theirs, _ := json.Marshal(s)
		var want string
		json.Unmarshal(theirs, &want)
		if got != want {
			t.Fatalf("%q: ours %s decodes to %q, encoding/json's %s to %q", s, ours, got, theirs, want)
		}
	})
}

// TestMintedClaims: an access token carries tollgate's claims and the
// user's own where they name none of tollgate's (a user claim named like
// one tollgate sets is tollgate's; one tollgate leaves out stays).
func TestMintedClaims(t *testing.T) {
	f := newFixture(t, "ES256")
	user := &identity.User{ID: "u1", Username: "alice", Role: "VIEWER", Profiles: []string{"p1"},
		Claims: map[string]any{"sub": "someone-else", "scope": "admin", "partnerId": "their-own", "tier": "gold",
			"flags": map[string]any{"hd": true, "n": json.Number("3")}, "quote": `a "b" \c`}}
	toks, err := f.iss.mint(&Client{ID: "stb"}, user, "openid profile", "p1", tokenSession{id: "s1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(toks.Access, func(*jwt.Token) (any, error) { return f.keys.Current().Public(), nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return f.now }))
	if err != nil {
		t.Fatalf("minted access token: %v", err)
	}
	c := parsed.Claims.(jwt.MapClaims)
	for name, want := range map[string]any{"iss": "https://auth.test", "sub": "u1", "aud": "api", "client_id": "stb",
		"scope": "openid profile", "type": "access", "sid": "s1", "profile": "p1", "preferred_username": "alice",
		"role": "VIEWER", "partnerId": "their-own", "tier": "gold", "quote": `a "b" \c`} {
		if c[name] != want {
			t.Errorf("%s = %v, want %v", name, c[name], want)
		}
	}
	if flags, _ := c["flags"].(map[string]any); flags["hd"] != true || flags["n"] != 3.0 {
		t.Errorf("flags = %v", c["flags"])
	}
	if _, ok := c["email"]; ok {
		t.Errorf("email set for a user without one: %v", c["email"])
	}
	exp, _ := c.GetExpirationTime()
	if !exp.Equal(f.now.Truncate(time.Second).Add(time.Hour)) || c["jti"] == "" {
		t.Errorf("exp %v, jti %v", exp, c["jti"])
	}
	if h := parsed.Header; h["kid"] != f.keys.Current().ID || h["typ"] != "at+jwt" {
		t.Errorf("header %v", h)
	}
	// Each token has exactly the claims it had when they were a map.
	names := func(token string) []string {
		p, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(p.Claims.(jwt.MapClaims)))
	}
	for _, tc := range []struct {
		name, token string
		want        []string
	}{
		{"access", toks.Access, []string{"aud", "client_id", "exp", "flags", "iat", "iss", "jti", "nbf", "partnerId", "preferred_username",
			"profile", "quote", "role", "scope", "session_exp", "sid", "sub", "tier", "type"}},
		{"refresh", toks.Refresh, []string{"aud", "auth_time", "client_id", "exp", "iat", "iss", "jti", "nbf", "profile", "scope",
			"session_exp", "sid", "sub", "type"}},
		{"id", toks.ID, []string{"aud", "auth_time", "azp", "exp", "iat", "iss", "preferred_username", "sid", "sub"}},
	} {
		if got := names(tc.token); !slices.Equal(got, tc.want) {
			t.Errorf("%s token claims %q, want %q", tc.name, got, tc.want)
		}
	}
	// A value JSON cannot hold fails the mint rather than the token.
	user.Claims = map[string]any{"bad": func() {}}
	if _, err := f.iss.mint(&Client{ID: "stb"}, user, "openid", "", tokenSession{id: "s2"}, ""); err == nil {
		t.Error("a claim JSON cannot hold was minted")
	}
	if !strings.HasPrefix(toks.Refresh, "eyJhbGciOiJIUzI1NiIs") { // {"alg":"HS256",
		t.Errorf("refresh token %.30s", toks.Refresh)
	}
}
