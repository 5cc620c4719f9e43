package edge

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Refusal is one precomputed error answer: status, WWW-Authenticate and
// JSON body ({"error":…,"error_description":…}), so refusing formats
// nothing. Refusals are shared between requests and never modified.
type Refusal struct {
	Status int
	// Challenge is the WWW-Authenticate value; "" sends none.
	Challenge   string
	Code        string
	Description string
	body        []byte
}

// NewRefusal builds a Refusal.
func NewRefusal(status int, challenge, code, description string) *Refusal {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	return &Refusal{Status: status, Challenge: challenge, Code: code, Description: description, body: append(body, '\n')}
}

// Write sends the refusal with Cache-Control: no-store.
func (f *Refusal) Write(w http.ResponseWriter) {
	h := w.Header()
	if f.Challenge != "" {
		h["Www-Authenticate"] = []string{f.Challenge}
	}
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(f.body))}
	w.WriteHeader(f.Status)
	w.Write(f.body)
}

// Challenges are the RFC 6750 refusals of one realm, for every endpoint
// that takes a Bearer token: the proxy and the token endpoints answer a
// bad token in the same words.
type Challenges struct {
	realm string // quoted
	// Missing answers a request without a token (RFC 6750 §3.1: no error
	// code).
	Missing *Refusal
	// InvalidRequest answers an Authorization header that is not exactly
	// one Bearer credential.
	InvalidRequest *Refusal
	// insufficientRole answers a token without a required role.
	insufficientRole *Refusal
	invalid          sync.Map // reason → *Refusal
}

// NewChallenges builds the refusals of realm.
func NewChallenges(realm string) *Challenges {
	c := &Challenges{realm: Quote(realm)}
	base := "Bearer realm=" + c.realm
	c.Missing = NewRefusal(http.StatusUnauthorized, base, "missing_token", "a Bearer access token is required")
	c.InvalidRequest = NewRefusal(http.StatusUnauthorized,
		base+`, error="invalid_request", error_description="the Authorization header is not one Bearer token"`,
		"invalid_request", "the Authorization header is not one Bearer token")
	c.insufficientRole = NewRefusal(http.StatusForbidden,
		base+`, error="insufficient_scope", error_description="the token lacks a required role"`,
		"insufficient_scope", "the token lacks a required role")
	return c
}

// InvalidToken answers a token refused for reason (a bounded label), with
// description for the client. One Refusal is built per reason.
func (c *Challenges) InvalidToken(reason, description string) *Refusal {
	if f, ok := c.invalid.Load(reason); ok {
		return f.(*Refusal)
	}
	f := NewRefusal(http.StatusUnauthorized,
		"Bearer realm="+c.realm+`, error="invalid_token", error_description=`+Quote(description), "invalid_token", description)
	actual, _ := c.invalid.LoadOrStore(reason, f)
	return actual.(*Refusal)
}

// Forbidden builds the 403 for a route that requires scopes (named in the
// challenge) or, with none, roles.
func (c *Challenges) Forbidden(scopes []string) *Refusal {
	if len(scopes) == 0 {
		return c.insufficientRole
	}
	return NewRefusal(http.StatusForbidden,
		"Bearer realm="+c.realm+`, error="insufficient_scope", error_description="the token lacks a required scope", scope=`+Quote(strings.Join(scopes, " ")),
		"insufficient_scope", "the token lacks a required scope")
}

// Quote makes an RFC 9110 quoted-string.
func Quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
