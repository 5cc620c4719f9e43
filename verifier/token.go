package verifier

import (
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// Token is a verified access token. While its verification is cached,
// requests that present the same raw token may share one *Token (the
// first after a Memo keeps its value: the cached form, see Claims; a hit
// on a flat record builds a Token of its own, one in the hot table is
// shared), so it MUST be treated as read-only; Constrain alone may narrow
// Claims, before the token is cached.
type Token struct {
	// origin is the issuer, algorithm and audience, shared by the tokens
	// that have the same (see Issuer, Algorithm, Audience).
	origin *origin
	// Subject is the sub claim; never empty.
	Subject string
	// ID is the jti claim, if any.
	ID string
	// exp and iat are the exp and iat claims in Unix milliseconds (a
	// NumericDate is at most year 9999: they do not overflow), iat noTime
	// when the token has none: two words where two time.Time would take
	// six, in every cached token. See ExpiresAt and IssuedAt.
	exp, iat int64
	// SessionID is the sid claim when it is a string: the session the
	// token belongs to. Empty when the token has none.
	SessionID string
	// Claims holds the claims; numbers are json.Number so that ids keep
	// their exact text. A token from a full verification (a cache miss,
	// or VerifyUncached) holds every claim; one served from the cache
	// holds only the claims Config.CachedClaims keeps, by default none: it
	// is then nil (the map is most of what a cached token would cost).
	// The other fields, HasScope, HasRole and Memo answer the same on
	// both.
	Claims map[string]any

	// grants holds the scope items, a grantsSep, then the role items, each
	// item ended by a 0 byte; see setGrants. Empty only in a Token not
	// made by Verify.
	grants string
	// cell holds the Memo value; nil for a token that is not cached.
	cell *memoCell
}

// origin is what tokens of one issuer, algorithm and audience share: a
// token points at the verifier's copy (one per issuer, algorithm and
// accepted audience) instead of holding the three fields, 56 bytes, which
// a cached token would repeat. A token naming several audiences has its
// own.
type origin struct {
	issuer, algorithm string
	audience          []string
}

// Issuer is the iss claim: the configured issuer it matched.
func (t *Token) Issuer() string {
	if t.origin == nil {
		return ""
	}
	return t.origin.issuer
}

// Algorithm is the JWS alg the signature verified with (ES256, RS256,
// HS256, …), so a caller can tell a token signed with a shared secret from
// one signed with a private key.
func (t *Token) Algorithm() string {
	if t.origin == nil {
		return ""
	}
	return t.origin.algorithm
}

// Audience is the aud claim as a list; shared between tokens, so it MUST
// be treated as read-only.
func (t *Token) Audience() []string {
	if t.origin == nil {
		return nil
	}
	return t.origin.audience
}

// noTime is Token.iat of a token without an iat claim.
const noTime = math.MinInt64

// ExpiresAt is the exp claim, to the millisecond.
func (t *Token) ExpiresAt() time.Time { return time.UnixMilli(t.exp) }

// IssuedAt is the iat claim, to the millisecond; zero when the token has
// none.
func (t *Token) IssuedAt() time.Time {
	if t.iat == noTime {
		return time.Time{}
	}
	return time.UnixMilli(t.iat)
}

// HasScope reports whether the scope claim grants scope: the claim is a
// space-separated string or an array of strings. It allocates nothing. On
// a Token not made by Verify (a test's), it reads Claims.
func (t *Token) HasScope(scope string) bool {
	if t.grants == "" {
		return claimHolds(t.Claims["scope"], scope)
	}
	scopes, _, _ := strings.Cut(t.grants, grantsSep)
	return hasItem(scopes, scope)
}

// HasRole reports whether the token holds role: in its "roles" claim or
// Keycloak's realm_access.roles (each a space-separated string or an
// array of strings), or as the whole of its "role" claim. It allocates
// nothing. On a Token not made by Verify (a test's), it reads Claims.
func (t *Token) HasRole(role string) bool {
	if t.grants == "" {
		var realm any
		if ra, ok := t.Claims["realm_access"].(map[string]any); ok {
			realm = ra["roles"]
		}
		r, ok := t.Claims["role"].(string)
		return ok && r == role && validItem(role) || claimHolds(t.Claims["roles"], role) || claimHolds(realm, role)
	}
	_, roles, _ := strings.Cut(t.grants, grantsSep)
	return hasItem(roles, role)
}

// claimHolds reports whether claim, a space-separated string or an array
// of strings, holds want (items as setGrants keeps them).
func claimHolds(claim any, want string) bool {
	if !validItem(want) {
		return false
	}
	switch v := claim.(type) {
	case string:
		for f := range strings.FieldsSeq(v) {
			if f == want {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// grantsSep ends the scope items in Token.grants. An item holding it or a
// 0 byte is left out, so an item can never be read as another: a grant
// can be lost that way, never gained.
const grantsSep = "\x01"

// setGrants derives SessionID and the grants from t.Claims: after
// Constrain, so that they hold what it left.
func (t *Token) setGrants() {
	t.SessionID, _ = t.Claims["sid"].(string)
	var b strings.Builder
	appendItems(&b, t.Claims["scope"])
	b.WriteString(grantsSep)
	appendItems(&b, t.Claims["roles"])
	if ra, ok := t.Claims["realm_access"].(map[string]any); ok {
		appendItems(&b, ra["roles"])
	}
	if r, ok := t.Claims["role"].(string); ok {
		appendItem(&b, r)
	}
	t.grants = b.String()
}

// appendItems adds the items of a claim that is a space-separated string
// or an array of strings; anything else grants nothing.
func appendItems(b *strings.Builder, claim any) {
	switch v := claim.(type) {
	case string:
		for f := range strings.FieldsSeq(v) {
			appendItem(b, f)
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				appendItem(b, s)
			}
		}
	}
}

func appendItem(b *strings.Builder, item string) {
	if !validItem(item) {
		return
	}
	b.WriteString(item)
	b.WriteByte(0)
}

// validItem reports whether item can be kept in Token.grants.
func validItem(item string) bool { return !strings.ContainsAny(item, "\x00"+grantsSep) }

// hasItem reports whether list, items each ended by a 0 byte, holds want.
func hasItem(list, want string) bool {
	for list != "" {
		i := strings.IndexByte(list, 0)
		if list[:i] == want {
			return true
		}
		list = list[i+1:]
	}
	return false
}

// Memo returns fn(key, t), computed once per cached verification for key:
// a list of strings derived from the token, such as the proxy's upstream
// header values. A Token is shared by every request that presents the same
// raw token while it is cached, and so is the slice Memo returns: it MUST
// be treated as read-only. Values for another key are computed without
// being kept.
//
// fn MUST be a pure function of its arguments, safe for concurrent use:
// the first key used with a Verifier's tokens is remembered with fn, and
// the tokens it verifies afterwards have fn applied as they are cached —
// to the token with every claim, before Verify returns it — so that a
// cached token needs no claims for it. Since fn is kept, it should be a
// plain function or method expression, which the key is passed to: a
// method value or closure would be allocated at every call. fn for
// another key sees the token as Verify returned it, which on a cache hit
// holds only the claims Config.CachedClaims keeps.
//
// The value is kept flat, without an interface around it, and a token
// cached with its value has the value's strings in its own string
// allocation (see compact): a list costs the cache its slice's backing
// array and its bytes, nothing more.
func (t *Token) Memo(key any, fn func(key any, t *Token) []string) []string {
	c := t.cell
	if c == nil {
		return fn(key, t)
	}
	if c.state.Load() == memoKept {
		if c.key == key {
			return c.value
		}
		return fn(key, t)
	}
	v := fn(key, t)
	if c.state.CompareAndSwap(memoEmpty, memoWriting) {
		c.key, c.value = key, v
		c.state.Store(memoKept)
		// The cached token no longer needs every claim; and the tokens
		// cached from now on get this key's value as they are cached.
		if p := c.pending.Swap(nil); p != nil && p.deriver.Load() == nil {
			p.deriver.CompareAndSwap(nil, &derivation{key: key, fn: fn})
		}
	}
	return v
}

// memoCell is one cached verification's Memo value.
type memoCell struct {
	state atomic.Uint32 // memoEmpty, memoWriting or memoKept
	// key and value are written once, by the Memo that moves state from
	// memoWriting to memoKept; read only once state is memoKept.
	key   any
	value []string
	// pending is set while no value is kept, for a token cached before
	// the verifier knew a Memo key; nil for one cached with its value.
	pending atomic.Pointer[pendingMemo]
}

// pendingMemo is a cached token's state until a Memo keeps its value.
type pendingMemo struct {
	// full is the token with every claim, served on hits meanwhile, so
	// that the Memo sees every claim.
	full *Token
	// deriver is the verifier's derivation, for the Memo to set.
	deriver *atomic.Pointer[derivation]
}

const (
	memoEmpty uint32 = iota
	memoWriting
	memoKept
)

// derivation is the first Memo key and function used with a Verifier's
// tokens, applied to every token it caches afterwards.
type derivation struct {
	key any
	fn  func(any, *Token) []string
}
