package issuer

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/identity"
)

// standardScopes are the OpenID Connect scopes every issuer knows.
var standardScopes = []string{"openid", "profile", "email", "offline_access"}

// loadScopes builds the scope registry, reporting every problem.
func (i *Issuer) loadScopes(scopes []Scope) []error {
	var errs []error
	i.scopes = map[string]*Scope{}
	for n, sc := range scopes {
		switch {
		case sc.Name == "" || strings.ContainsAny(sc.Name, " \t\\\""):
			errs = append(errs, fmt.Errorf("scope %d: name %q is empty or holds a space, quote or backslash", n, sc.Name))
		case i.scopes[sc.Name] != nil || slices.Contains(standardScopes, sc.Name):
			errs = append(errs, fmt.Errorf("scope %q: defined twice (or a standard scope)", sc.Name))
		default:
			i.scopes[sc.Name] = &sc
		}
	}
	for _, s := range strings.Fields(i.cfg.DefaultScope) {
		if !i.knownScope(s) {
			errs = append(errs, fmt.Errorf("default scope %q is not registered", s))
		}
	}
	return errs
}

// knownScope reports whether s is a standard or a registered scope.
func (i *Issuer) knownScope(s string) bool {
	return slices.Contains(standardScopes, s) || i.scopes[s] != nil
}

// mayHave reports whether u may be granted the scope s.
func (i *Issuer) mayHave(u *identity.User, s string) bool {
	sc := i.scopes[s]
	if sc == nil {
		return true // a standard scope
	}
	if len(sc.Roles) > 0 && !slices.Contains(sc.Roles, u.Role) {
		return false
	}
	return len(sc.Users) == 0 || slices.Contains(sc.Users, u.ID)
}

// errScopeForUser refuses a scope restricted to other roles or users.
var errScopeForUser = errors.New("scope restricted to other users")

// userMayHave refuses a scope the user may not have.
func (i *Issuer) userMayHave(u *identity.User, scope string) error {
	for _, s := range strings.Fields(scope) {
		if !i.mayHave(u, s) {
			return refuse(ErrInvalidScope, "a requested scope is not available to this user").because(errScopeForUser)
		}
	}
	return nil
}

// narrowForUser drops the scopes the user may no longer have.
func (i *Issuer) narrowForUser(u *identity.User, scope string) string {
	kept := strings.Fields(scope)
	kept = slices.DeleteFunc(kept, func(s string) bool { return !i.mayHave(u, s) })
	return strings.Join(kept, " ")
}
