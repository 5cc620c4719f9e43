package proxy

import (
	"strings"

	"github.com/tollgate/tollgate/jsonpath"
)

// claimValue renders the claim at path as a header value. Strings,
// numbers (json.Number keeps the exact text) and booleans are used as they
// are, arrays of them joined with spaces; objects, empty values and values
// that could not be sent in a header are skipped.
func claimValue(claims map[string]any, path jsonpath.Path) (string, bool) {
	v, ok := path.Lookup(claims)
	if !ok {
		return "", false
	}
	var s string
	if _, isArray := v.([]any); isArray {
		s = strings.Join(path.Texts(claims), " ")
	} else if s, ok = jsonpath.Text(v); !ok {
		return "", false
	}
	if s == "" || !validHeaderValue(s) {
		return "", false
	}
	return s, true
}

// validHeaderValue refuses control characters, so a claim can never split
// or smuggle a header.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// holds reports whether claim, a space-separated string or an array of
// strings, contains want. It allocates nothing: it runs on every request.
func holds(claim any, want string) bool {
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

// hasScopes reports whether the scope claim grants every one of want.
func hasScopes(claims map[string]any, want []string) bool {
	scope := claims["scope"]
	for _, w := range want {
		if !holds(scope, w) {
			return false
		}
	}
	return true
}

// hasAnyRole reports whether the token holds one of want, from "roles",
// "role" or Keycloak's realm_access.roles.
func hasAnyRole(claims map[string]any, want []string) bool {
	if len(want) == 0 {
		return true
	}
	roles, role := claims["roles"], claims["role"]
	var realm any
	if ra, ok := claims["realm_access"].(map[string]any); ok {
		realm = ra["roles"]
	}
	for _, w := range want {
		if holds(roles, w) || holds(realm, w) {
			return true
		}
		if r, ok := role.(string); ok && r == w {
			return true
		}
	}
	return false
}
