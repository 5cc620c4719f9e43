package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// errorResponse is one precomputed refusal: status, WWW-Authenticate and
// JSON body, so the hot path formats nothing.
type errorResponse struct {
	status int
	www    string
	body   []byte
}

func newErrorResponse(status int, www, code, description string) *errorResponse {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	return &errorResponse{status: status, www: www, body: append(body, '\n')}
}

var (
	errNoRoute          = newErrorResponse(http.StatusNotFound, "", "not_found", "no route")
	errNonCanonicalPath = newErrorResponse(http.StatusBadRequest, "", "invalid_request", "path is not canonical")
	errBadGateway       = newErrorResponse(http.StatusBadGateway, "", "bad_gateway", "the upstream could not be reached")
	errTimeout          = newErrorResponse(http.StatusGatewayTimeout, "", "gateway_timeout", "the upstream did not answer in time")
	errInternal         = newErrorResponse(http.StatusInternalServerError, "", "server_error", "internal error")
)

// descriptions are the error_description texts per verifier.Reason.
var descriptions = map[string]string{
	"expired":        "token expired",
	"not_yet_valid":  "token not yet valid",
	"bad_signature":  "bad signature",
	"unknown_key":    "unknown signing key",
	"wrong_issuer":   "untrusted issuer",
	"wrong_audience": "wrong audience",
	"wrong_type":     "not an access token",
	"malformed":      "malformed token",
}

// responses holds the realm-specific refusals.
type responses struct {
	realm             string
	invalid           map[string]*errorResponse
	missing           *errorResponse
	invalidRequest    *errorResponse
	insufficientNoScp *errorResponse
}

func newResponses(realm string) *responses {
	r := &responses{realm: quote(realm), invalid: map[string]*errorResponse{}}
	base := "Bearer realm=" + r.realm
	for reason, d := range descriptions {
		r.invalid[reason] = newErrorResponse(http.StatusUnauthorized,
			base+`, error="invalid_token", error_description=`+quote(d), "invalid_token", d)
	}
	r.missing = newErrorResponse(http.StatusUnauthorized, base, "missing_token", "a Bearer access token is required")
	r.invalidRequest = newErrorResponse(http.StatusUnauthorized,
		base+`, error="invalid_request", error_description="the Authorization header is not one Bearer token"`,
		"invalid_request", "the Authorization header is not one Bearer token")
	r.insufficientNoScp = newErrorResponse(http.StatusForbidden,
		base+`, error="insufficient_scope", error_description="the token lacks a required role"`,
		"insufficient_scope", "the token lacks a required role")
	return r
}

func (r *responses) invalidToken(reason string) *errorResponse {
	if e, ok := r.invalid[reason]; ok {
		return e
	}
	return r.invalid["malformed"]
}

// forbidden builds the 403 for a route requiring scopes or roles.
func (r *responses) forbidden(scopes []string) *errorResponse {
	if len(scopes) == 0 {
		return r.insufficientNoScp
	}
	scope := strings.Join(scopes, " ")
	return newErrorResponse(http.StatusForbidden,
		"Bearer realm="+r.realm+`, error="insufficient_scope", error_description="the token lacks a required scope", scope=`+quote(scope),
		"insufficient_scope", "the token lacks a required scope")
}

// write sends e. Shared responses are never mutated.
func (r *responses) write(w http.ResponseWriter, e *errorResponse) {
	h := w.Header()
	if e.www != "" {
		h["Www-Authenticate"] = []string{e.www}
	}
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(e.body))}
	w.WriteHeader(e.status)
	w.Write(e.body)
}

// quote makes an RFC 9110 quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
