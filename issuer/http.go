package issuer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/verifier"
)

// Endpoint is one pattern Handler serves, with a bounded name for logs and
// metrics.
type Endpoint struct {
	Pattern string
	Name    string
	dialect string
	serve   func(i *Issuer, w http.ResponseWriter, r *http.Request, dialect string)
}

var endpoints = []Endpoint{
	{"POST /oauth/token", "oauth_token", "oauth", (*Issuer).serveOAuthToken},
	{"POST /auth/realms/{realm}/protocol/openid-connect/token", "keycloak_token", "keycloak", (*Issuer).serveOAuthToken},
	{"POST /realms/{realm}/protocol/openid-connect/token", "keycloak_token", "keycloak", (*Issuer).serveOAuthToken},
	{"POST /api/auth/v1/access_tokens", "jsonapi_token", "jsonapi", (*Issuer).serveJSONAPIToken},
	{"POST /api/oauth/login_with_token", "login_with_token", "jsonapi", (*Issuer).serveTokenExchange},
	{"POST /api/auth/v1/cookie_exchange", "cookie_exchange", "jsonapi", (*Issuer).serveCookieExchange},
	{"POST /api/auth/v1/profiles/{profile_id}/access_tokens", "profile_token", "jsonapi", (*Issuer).serveProfileToken},
	{"GET /oauth/userinfo", "userinfo", "", (*Issuer).serveUserinfo},
	{"POST /oauth/userinfo", "userinfo", "", (*Issuer).serveUserinfo},
	{"GET /.well-known/openid-configuration", "discovery", "", (*Issuer).serveDiscovery},
	{"GET /.well-known/jwks.json", "jwks", "", (*Issuer).serveJWKS},
	{"POST /oauth/introspect", "introspect", "", (*Issuer).serveIntrospect},
}

const userinfoPath = "/oauth/userinfo"

// Endpoints lists the patterns Handler serves, for mounting in a mux.
func (i *Issuer) Endpoints() []Endpoint { return slices.Clone(endpoints) }

// Handler serves the token, userinfo, discovery, JWKS and introspection
// endpoints.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, e := range endpoints {
		mux.HandleFunc(e.Pattern, func(w http.ResponseWriter, r *http.Request) { e.serve(i, w, r, e.dialect) })
	}
	return mux
}

// readBody reads a bounded request body.
func (i *Issuer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, i.cfg.MaxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: body unreadable or larger than %d bytes", ErrInvalidRequest, i.cfg.MaxBodyBytes)
	}
	return body, nil
}

// parseForm parses an application/x-www-form-urlencoded body leniently:
// whitespace around each &-separated pair is ignored (source-doc 002's curl
// sends "client_id=anonymous& grant_type=password"), while a parameter
// given twice is an error (RFC 6749 §3.2).
func parseForm(body []byte) (map[string]string, error) {
	out := map[string]string{}
	for pair := range strings.SplitSeq(string(body), "&") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("%w: bad form encoding", ErrInvalidRequest)
		}
		key = strings.TrimSpace(key)
		val, err := url.QueryUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%w: bad form encoding of %s", ErrInvalidRequest, key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: parameter %s given twice", ErrInvalidRequest, key)
		}
		out[key] = val
	}
	return out, nil
}

// jsonAPIBody is the body of POST /api/auth/v1/access_tokens (000/001).
type jsonAPIBody struct {
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
	ClientID     string `json:"client_id"`
	Scope        string `json:"scope"`
	Credentials  struct {
		Username string `json:"username"`
		Email    string `json:"email"`
		Password string `json:"password"`
	} `json:"credentials"`
}

// parseJSONAPI parses the JSON:API dialect's body. It is JSON whatever the
// Content-Type says (000's curl labels it form-urlencoded).
func parseJSONAPI(body []byte) (*grant, error) {
	var b jsonAPIBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrInvalidRequest)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidRequest)
	}
	login := b.Credentials.Username
	if login == "" {
		login = b.Credentials.Email
	}
	return &grant{Type: b.GrantType, RefreshToken: b.RefreshToken, ClientID: b.ClientID, Scope: b.Scope,
		Username: login, Password: b.Credentials.Password}, nil
}

// oauthGrant reads a token request in the OAuth form dialect: form body (or
// JSON, when that is what was sent), client credentials from Basic auth or
// the form, partnerId from the query.
func oauthGrant(r *http.Request, body []byte) (*grant, error) {
	var g *grant
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
		var err error
		if g, err = parseJSONAPI(trimmed); err != nil {
			return nil, err
		}
	} else {
		f, err := parseForm(body)
		if err != nil {
			return nil, err
		}
		login := f["username"]
		if login == "" {
			login = f["email"]
		}
		g = &grant{Type: f["grant_type"], ClientID: f["client_id"], ClientSecret: f["client_secret"],
			Username: login, Password: f["password"], RefreshToken: f["refresh_token"], Scope: f["scope"]}
	}
	g.PartnerID = r.URL.Query().Get("partnerId")
	if id, secret, ok := basicAuth(r); ok {
		if g.ClientID != "" && g.ClientID != id {
			return nil, fmt.Errorf("%w: client_id differs from the Basic credentials", ErrInvalidRequest)
		}
		g.ClientID, g.ClientSecret, g.BasicAuth = id, secret, true
	}
	return g, nil
}

// basicAuth reads RFC 6749 §2.3.1 client credentials (form-encoded inside
// Basic).
func basicAuth(r *http.Request) (string, string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 6 || !strings.EqualFold(h[:6], "basic ") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
	if err != nil {
		return "", "", false
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(id)
	secret, err2 := url.QueryUnescape(secret)
	return id, secret, ok && err1 == nil && err2 == nil
}

func (i *Issuer) serveOAuthToken(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	body, err := i.readBody(w, r)
	var g *grant
	if err == nil {
		g, err = oauthGrant(r, body)
	}
	var t *Tokens
	if err == nil {
		t, err = i.Exchange(r.Context(), g)
	}
	i.observe(g, dialect, err)
	if err != nil {
		i.oauthError(w, g, err)
		return
	}
	resp := map[string]any{
		"access_token": t.Access, "token_type": "Bearer", "expires_in": int(t.AccessTTL.Seconds()),
		"refresh_token": t.Refresh, "refresh_expires_in": int(t.RefreshLifetime.Seconds()),
		"scope": t.Scope, "session_state": t.SessionID, "not-before-policy": 0,
	}
	if t.ID != "" {
		resp["id_token"] = t.ID
	}
	writeJSON(w, http.StatusOK, resp)
}

// oauthError writes an RFC 6749 §5.2 error. The description never carries
// a token, password or secret.
func (i *Issuer) oauthError(w http.ResponseWriter, g *grant, err error) {
	code, status := errorCode(err)
	if code == "server_error" {
		i.logger.Error("token request failed", zap.Error(err))
	}
	if errors.Is(err, ErrInvalidClient) && g != nil && g.BasicAuth {
		w.Header().Set("WWW-Authenticate", `Basic realm="tollgate"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": description(err)})
}

// errorCode maps an Exchange error to its RFC 6749 code and status.
func errorCode(err error) (string, int) {
	for _, e := range []struct {
		err    error
		status int
	}{
		{ErrInvalidRequest, 400}, {ErrInvalidClient, 401}, {ErrInvalidGrant, 400},
		{ErrUnauthorizedClient, 400}, {ErrUnsupportedGrantType, 400}, {ErrInvalidScope, 400},
		{ErrForbidden, 403}, {ErrUnavailable, 502}, {ErrNotEnabled, 404},
	} {
		if errors.Is(err, e.err) {
			return e.err.Error(), e.status
		}
	}
	return "server_error", http.StatusInternalServerError
}

// description is the text after the sentinel: "invalid_grant: invalid
// credentials" gives "invalid credentials".
func description(err error) string {
	code, _ := errorCode(err)
	if code == "server_error" {
		return "internal error"
	}
	if errors.Is(err, errPartnerMismatch) {
		return errBadCredentials.Error() // do not confirm the account exists
	}
	_, d, _ := strings.Cut(err.Error(), ": ")
	return d
}

func (i *Issuer) serveJSONAPIToken(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	body, err := i.readBody(w, r)
	var g *grant
	if err == nil {
		g, err = parseJSONAPI(body)
	}
	var t *Tokens
	if err == nil {
		g.PartnerID = r.URL.Query().Get("partnerId")
		t, err = i.Exchange(r.Context(), g)
	}
	i.observe(g, dialect, err)
	i.writeJSONAPI(w, t, err)
}

// writeJSONAPI writes tokens, or an error, in the JSON:API dialect.
func (i *Issuer) writeJSONAPI(w http.ResponseWriter, t *Tokens, err error) {
	if err != nil {
		code, status := errorCode(err)
		if code == "invalid_grant" {
			status = http.StatusUnauthorized
		}
		if code == "server_error" || code == "temporarily_unavailable" {
			i.logger.Error("token request failed", zap.Error(err))
		}
		writeJSON(w, status, map[string]any{"errors": []map[string]string{{
			"status": strconv.Itoa(status), "code": code, "title": description(err),
		}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"type": "AuthenticationTokens",
		"id":   t.SessionID,
		"attributes": map[string]any{
			"login_timestamp":      t.IssuedAt.Unix(),
			"user_id":              t.User.ID,
			"user_profile_id":      t.Profile,
			"access_token":         t.Access,
			"expires_at_timestamp": t.AccessExpires.Unix(),
			"refresh_token":        t.Refresh,
		},
	}})
}

// formBody reads a bounded, leniently parsed form body.
func (i *Issuer) formBody(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	body, err := i.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return parseForm(body)
}

// serveTokenExchange is source-doc 000's login_with_token.
func (i *Issuer) serveTokenExchange(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	f, err := i.formBody(w, r)
	var t *Tokens
	if err == nil {
		t, err = i.tokenExchange(r.Context(), f)
	}
	i.observe(&grant{Type: "token_exchange", ClientID: f["client_id"]}, dialect, err)
	i.writeJSONAPI(w, t, err)
}

// serveCookieExchange turns a legacy session cookie into tokens.
func (i *Issuer) serveCookieExchange(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	f, err := i.formBody(w, r)
	var t *Tokens
	if err == nil {
		t, err = i.cookieExchange(r.Context(), r, f)
	}
	i.observe(&grant{Type: "cookie_exchange", ClientID: f["client_id"]}, dialect, err)
	i.writeJSONAPI(w, t, err)
}

// serveProfileToken mints a token for one of the bearer's profiles.
func (i *Issuer) serveProfileToken(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	t, err := i.profileToken(r.Context(), r, r.PathValue("profile_id"))
	g := &grant{Type: "profile"}
	if t != nil {
		g.ClientID = t.ClientID
	}
	i.observe(g, dialect, err)
	i.writeJSONAPI(w, t, err)
}

// serveUserinfo answers with the bearer's identity: sub plus the user's
// claims (003: agentId, siteId, role).
func (i *Issuer) serveUserinfo(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	raw, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "a Bearer access token is required"})
		return
	}
	tok, err := i.access.Verify(r.Context(), raw)
	if err == nil && tok.Issuer != i.cfg.Issuer {
		err = verifier.ErrWrongIssuer
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": verifier.Reason(err)})
		return
	}
	u, err := i.users.Lookup(r.Context(), tok.Subject)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "unknown user"})
		return
	}
	info := map[string]any{}
	for k, v := range u.Claims {
		info[k] = v
	}
	info["sub"] = u.ID
	for k, v := range map[string]string{"email": u.Email, "preferred_username": u.Username, "role": u.Role, "partnerId": u.PartnerID} {
		if v != "" {
			info[k] = v
		}
	}
	if p, _ := tok.Claims["profile"].(string); p != "" {
		info["profile"] = p
	}
	writeJSON(w, http.StatusOK, info)
}

// bearer reads an Authorization: Bearer header (003 sends no space after
// the colon, which net/http already handles).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(h[7:])
	return tok, tok != ""
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request, _ string) {
	base := strings.TrimRight(i.cfg.Issuer, "/")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                i.cfg.Issuer,
		"token_endpoint":                        base + "/oauth/token",
		"userinfo_endpoint":                     base + userinfoPath,
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"introspection_endpoint":                base + "/oauth/introspect",
		"grant_types_supported":                 []string{"password", "refresh_token"},
		"response_types_supported":              []string{"token", "id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": i.keys.Algorithms(),
		"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "email", "preferred_username", "role", "profile", "sid"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request, _ string) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(i.keys.JWKS())
}

// serveIntrospect implements RFC 7662 for this issuer's access and refresh
// tokens. Only registered confidential clients may introspect.
func (i *Issuer) serveIntrospect(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	id, secret, ok := basicAuth(r)
	c := i.clients[id]
	if !ok || i.clients == nil || c == nil || c.Secret == "" || !secretsEqual(secret, c.Secret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="tollgate"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "introspection needs a confidential client"})
		return
	}
	body, err := i.readBody(w, r)
	var f map[string]string
	if err == nil {
		f, err = parseForm(body)
	}
	if err != nil || f["token"] == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "token is required"})
		return
	}
	tok, err := i.access.Verify(r.Context(), f["token"])
	kind := "access_token"
	if err != nil {
		tok, err = i.refresh.Verify(r.Context(), f["token"])
		kind = "refresh_token"
	}
	if err != nil || tok.Issuer != i.cfg.Issuer {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	resp := map[string]any{"active": true, "token_type": kind, "sub": tok.Subject, "iss": tok.Issuer,
		"exp": tok.ExpiresAt.Unix(), "iat": tok.IssuedAt.Unix(), "aud": tok.Audience, "jti": tok.ID}
	for _, k := range []string{"client_id", "scope", "sid", "profile"} {
		if v, ok := tok.Claims[k]; ok {
			resp[k] = v
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// observe reports one token request to the Observer, with bounded labels.
func (i *Issuer) observe(g *grant, dialect string, err error) {
	grantType := "other"
	if g != nil && slices.Contains([]string{"password", "refresh_token", "token_exchange", "cookie_exchange", "profile"}, g.Type) {
		grantType = g.Type
	}
	if err != nil {
		code, _ := errorCode(err)
		i.obs.TokenError(grantType, code, loginFailure(err))
		return
	}
	client := "unregistered"
	if i.clients != nil && i.clients[g.ClientID] != nil {
		client = g.ClientID
	}
	i.obs.TokenIssued(grantType, client, dialect)
}
