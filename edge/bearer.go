package edge

import (
	"net/http"
	"strings"
)

// TokenStatus says what BearerToken found.
type TokenStatus int

const (
	// TokenFound: a well-formed Bearer token.
	TokenFound TokenStatus = iota
	// TokenMissing: no Authorization header.
	TokenMissing
	// TokenInvalid: an Authorization header that is not exactly one
	// RFC 6750 Bearer credential.
	TokenInvalid
)

// BearerToken extracts the RFC 6750 Bearer token from h. There must be
// exactly one Authorization header; the scheme is case-insensitive and
// separated from the token by spaces; the token is a b64token. Tokens in
// query strings are not accepted: they end up in access logs.
func BearerToken(h http.Header) (string, TokenStatus) {
	tok, status := BearerCredential(h)
	if status == TokenFound && !IsB64Token(tok) {
		return "", TokenInvalid
	}
	return tok, status
}

// BearerCredential is BearerToken without the check of the token's
// characters, for a caller that verifies first and calls IsB64Token only
// when verification fails (the proxy: a token in the verified-token cache
// is known to be well formed, and scanning every byte of it costs more
// than the lookup). Both orders refuse exactly the same requests.
func BearerCredential(h http.Header) (string, TokenStatus) {
	vals := h["Authorization"]
	switch len(vals) {
	case 0:
		return "", TokenMissing
	case 1:
	default:
		return "", TokenInvalid
	}
	v := vals[0]
	const scheme = "bearer"
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) || v[len(scheme)] != ' ' {
		return "", TokenInvalid
	}
	tok := strings.TrimLeft(v[len(scheme):], " ")
	if tok == "" {
		return "", TokenInvalid
	}
	return tok, TokenFound
}

// b64tokenChars marks the bytes RFC 6750's b64token allows before the
// trailing "=" padding. A table: the check runs on every request, over the
// whole token.
var b64tokenChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

// IsB64Token reports whether s matches RFC 6750's
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func IsB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChars[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
