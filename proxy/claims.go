package proxy

import (
	"strings"

	"github.com/tollgate/tollgate/jsonpath"
	"github.com/tollgate/tollgate/verifier"
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

// hasScopes reports whether tok grants every one of want.
func hasScopes(tok *verifier.Token, want []string) bool {
	for _, w := range want {
		if !tok.HasScope(w) {
			return false
		}
	}
	return true
}

// hasAnyRole reports whether tok holds one of want (in "roles", "role" or
// Keycloak's realm_access.roles; see verifier.Token.HasRole); true when
// want is empty.
func hasAnyRole(tok *verifier.Token, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if tok.HasRole(w) {
			return true
		}
	}
	return false
}
