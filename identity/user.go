package identity

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
)

// User is one user of the users file. Users hands out deep copies: changing
// one changes nothing in the loaded file. The password hash is not here on
// purpose, so it can be neither serialised nor logged through a User.
type User struct {
	ID        string
	Username  string   // may be empty when Email is set
	Email     string   // may be empty when Username is set
	Profiles  []string // the first is the default
	Role      string
	PartnerID string
	// Claims are extra claims for tokens and userinfo. Values are what
	// encoding/json can encode: YAML numbers stay numbers (int, int64,
	// uint64 or float64), strings stay strings, and lists and maps become
	// []any and map[string]any. Never nil.
	Claims map[string]any
	// MaxSessions, when positive, overrides the session limit for this
	// user.
	MaxSessions int
	// PasswordStamp fingerprints the password hash of the users file (a
	// truncated SHA-256 of it, which reveals nothing usable): sessions
	// started under another stamp end at their next refresh. "" for users
	// of a backend without hashes.
	PasswordStamp string
}

// passwordStamp fingerprints an encoded password hash.
func passwordStamp(hash string) string {
	sum := sha256.Sum256([]byte("tollgate password stamp\x00" + hash))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// DefaultProfile returns the user's first profile, or "" when the user has
// none.
func (u *User) DefaultProfile() string {
	if len(u.Profiles) == 0 {
		return ""
	}
	return u.Profiles[0]
}

// HasProfile reports whether id is one of the user's profiles.
func (u *User) HasProfile(id string) bool { return slices.Contains(u.Profiles, id) }

// KeptProfile returns id, a session's profile, while it is still one of
// the user's (or empty), and the user's default profile once it is not.
func (u *User) KeptProfile(id string) string {
	if id != "" && !u.HasProfile(id) {
		return u.DefaultProfile()
	}
	return id
}

// clone returns a deep copy of u.
func (u *User) clone() *User {
	c := *u
	c.Profiles = slices.Clone(u.Profiles)
	c.Claims = cloneValue(u.Claims).(map[string]any)
	return &c
}

// cloneValue deep-copies a normalised claim value (see normalizeClaim).
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = cloneValue(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = cloneValue(e)
		}
		return c
	default:
		return v // scalars are values
	}
}
