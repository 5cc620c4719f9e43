package issuer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/tracing"
	"github.com/tollgate/tollgate/verifier"
)

// endpoint is one pattern the issuer serves, with a bounded name for logs
// and metrics and the dialect its errors are written in.
type endpoint struct {
	pattern string
	name    string
	dialect string
	serve   func(i *Issuer, w http.ResponseWriter, r *http.Request, dialect string)
}

var endpoints = []endpoint{
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
	{"GET /.well-known/oauth-authorization-server", "discovery", "", (*Issuer).serveDiscovery},
	{"GET /auth/realms/{realm}/.well-known/openid-configuration", "keycloak_discovery", "", (*Issuer).serveDiscovery},
	{"GET /realms/{realm}/.well-known/openid-configuration", "keycloak_discovery", "", (*Issuer).serveDiscovery},
	{"GET /.well-known/jwks.json", "jwks", "", (*Issuer).serveJWKS},
	{"POST /oauth/introspect", "introspect", "", (*Issuer).serveIntrospect},
}

// storeEndpoints exist only with a session store: without one there is
// nothing to end (the documents' stateless logout is the client deleting
// its tokens), and these paths stay the upstreams'.
var storeEndpoints = []endpoint{
	{"DELETE /api/auth/v1/access_tokens", "jsonapi_logout", "jsonapi", (*Issuer).serveJSONAPILogout},
	{"POST /oauth/logout", "logout", "oauth", (*Issuer).serveLogout},
	{"POST /auth/realms/{realm}/protocol/openid-connect/logout", "keycloak_logout", "keycloak", (*Issuer).serveLogout},
	{"POST /realms/{realm}/protocol/openid-connect/logout", "keycloak_logout", "keycloak", (*Issuer).serveLogout},
	{"POST /oauth/revoke", "revoke", "oauth", (*Issuer).serveRevoke},
	{"POST /auth/realms/{realm}/protocol/openid-connect/revoke", "keycloak_revoke", "keycloak", (*Issuer).serveRevoke},
	{"POST /realms/{realm}/protocol/openid-connect/revoke", "keycloak_revoke", "keycloak", (*Issuer).serveRevoke},
	{"GET /api/auth/v1/sessions", "sessions", "jsonapi", (*Issuer).serveSessions},
	{"DELETE /api/auth/v1/sessions/{id}", "end_session", "jsonapi", (*Issuer).serveEndSession},
}

// deviceEndpoints exist with the device authorization grant (RFC 8628).
var deviceEndpoints = []endpoint{
	{"POST /oauth/device/code", "device_code", "oauth", (*Issuer).serveDeviceCode},
	{"POST /auth/realms/{realm}/protocol/openid-connect/auth/device", "keycloak_device_code", "keycloak", (*Issuer).serveDeviceCode},
	{"POST /realms/{realm}/protocol/openid-connect/auth/device", "keycloak_device_code", "keycloak", (*Issuer).serveDeviceCode},
	{"GET /device", "device_page", "", (*Issuer).serveDevicePage},
	{"POST /device", "device_page", "", (*Issuer).serveDevicePage},
	{"GET /oauth/device/qr", "device_qr", "", (*Issuer).serveDeviceQR},
}

const userinfoPath = "/oauth/userinfo"

// Endpoints returns the issuer's endpoints for the public listener's
// dispatch. Each names its route in the request's edge.Info, so the access
// log and the metrics label it.
func (i *Issuer) Endpoints() []edge.Endpoint {
	all := endpoints
	if i.store != nil {
		all = append(slices.Clone(endpoints), storeEndpoints...)
	}
	if i.deviceFlow != nil {
		all = append(slices.Clone(all), deviceEndpoints...)
	}
	out := make([]edge.Endpoint, 0, len(all))
	for _, e := range all {
		out = append(out, edge.Endpoint{Pattern: e.pattern, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			edge.SetRoute(r.Context(), e.name)
			e.serve(i, w, r, e.dialect)
		})})
	}
	return out
}

// Handler serves the issuer's endpoints alone (no proxy behind them).
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, e := range i.Endpoints() {
		mux.Handle(e.Pattern, e.Handler)
	}
	return mux
}

// readBody reads a bounded request body.
func (i *Issuer) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, i.cfg.MaxBodyBytes))
	if err != nil {
		return nil, refuse(ErrInvalidRequest, fmt.Sprintf("body unreadable or larger than %d bytes", i.cfg.MaxBodyBytes))
	}
	return body, nil
}

// parseForm parses an application/x-www-form-urlencoded body leniently:
// whitespace around each &-separated pair is ignored (docs/CLIENTS.md §3.2
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
			return nil, refuse(ErrInvalidRequest, "bad form encoding")
		}
		key = strings.TrimSpace(key)
		val, err := url.QueryUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, refuse(ErrInvalidRequest, "bad form encoding of a parameter")
		}
		if _, dup := out[key]; dup {
			return nil, refuse(ErrInvalidRequest, "a parameter is given twice")
		}
		out[key] = val
	}
	return out, nil
}

// jsonAPIBody is the body of POST /api/auth/v1/access_tokens
// (docs/CLIENTS.md §1.1, §1.2).
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
// Content-Type says (docs/CLIENTS.md §1.1 labels it form-urlencoded).
func parseJSONAPI(body []byte) (*grant, error) {
	var b jsonAPIBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&b); err != nil {
		return nil, refuse(ErrInvalidRequest, "body is not a JSON object")
	}
	if dec.More() {
		return nil, refuse(ErrInvalidRequest, "trailing data after the JSON object")
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
			login = f["email"] // docs/CLIENTS.md §4.1
		}
		g = &grant{Type: f["grant_type"], ClientID: f["client_id"], ClientSecret: f["client_secret"],
			Username: login, Password: f["password"], RefreshToken: f["refresh_token"], Scope: f["scope"],
			DeviceCode: f["device_code"]}
	}
	g.PartnerID = r.URL.Query().Get("partnerId")
	if id, secret, ok := basicAuth(r); ok {
		if g.ClientID != "" && g.ClientID != id {
			return nil, refuse(ErrInvalidRequest, "client_id differs from the Basic credentials")
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
	if err == nil {
		g.clientIP = edge.ClientIP(r, i.cfg.TrustedProxies)
	}
	var t *Tokens
	if err == nil {
		t, err = i.exchange(i.withIssuerOf(r), g)
	}
	i.observe(r, g, dialect, err)
	if err != nil {
		i.writeOAuthError(w, r, err)
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
	if t.Refresh == "" {
		delete(resp, "refresh_token")
		delete(resp, "refresh_expires_in")
	}
	writeJSON(w, http.StatusOK, resp)
}

// refused logs a refused request and returns it as an *Error. A fault of
// tollgate's or a backend's is logged at error level with its cause; a
// client's mistake at debug. Either way with the request ID, so the line
// joins the access log.
func (i *Issuer) refused(r *http.Request, err error) *Error {
	e := errorOf(err)
	fields := append(edge.LogFields(r.Context()), zap.String("code", e.Code), zap.String("description", e.Description))
	if e.Reason != "" {
		fields = append(fields, zap.String("reason", e.Reason))
	}
	if e.cause != nil {
		fields = append(fields, zap.Error(e.cause))
	}
	if e.Status >= 500 {
		i.logger.Error("token request failed", fields...)
	} else if ce := i.logger.Check(zap.DebugLevel, "token request refused"); ce != nil {
		ce.Write(fields...)
	}
	return e
}

// writeOAuthError writes err as RFC 6749 §5.2 ({"error","error_description"}).
func (i *Issuer) writeOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if i.gone(r, err) {
		return
	}
	e := i.refused(r, err)
	setErrorHeaders(w, e)
	writeJSON(w, e.Status, map[string]string{"error": e.Code, "error_description": e.Description})
}

// writeJSONAPIError writes err as JSON:API ({"errors":[{"status","code",
// "title"}]}); invalid_grant is 401 in this dialect.
func (i *Issuer) writeJSONAPIError(w http.ResponseWriter, r *http.Request, err error) {
	if i.gone(r, err) {
		return
	}
	e := i.refused(r, err)
	status := e.Status
	if e.Code == ErrInvalidGrant.Code {
		status = http.StatusUnauthorized
	}
	setErrorHeaders(w, e)
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{
		"status": strconv.Itoa(status), "code": e.Code, "title": e.Description,
	}}})
}

// setErrorHeaders sets an error's WWW-Authenticate and Retry-After.
func setErrorHeaders(w http.ResponseWriter, e *Error) {
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
}

// gone reports a request whose client went away, so nothing is written
// and the access log says 499.
func (i *Issuer) gone(r *http.Request, err error) bool {
	if !clientGone(r.Context(), err) {
		return false
	}
	if info := edge.InfoFrom(r.Context()); info != nil {
		info.Status = edge.StatusClientClosed
	}
	return true
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
		g.clientIP = edge.ClientIP(r, i.cfg.TrustedProxies)
		t, err = i.exchange(r.Context(), g)
	}
	i.observe(r, g, dialect, err)
	i.writeJSONAPI(w, r, t, err)
}

// writeJSONAPI writes tokens, or an error, in the JSON:API dialect
// (docs/CLIENTS.md §1.1).
func (i *Issuer) writeJSONAPI(w http.ResponseWriter, r *http.Request, t *Tokens, err error) {
	if err != nil {
		i.writeJSONAPIError(w, r, err)
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
			"refresh_token":        nilIfEmpty(t.Refresh),
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

// exchangeGrant reads an exchange's form: its fields, and the client's
// credentials from the form or HTTP Basic, as the token endpoint reads
// them.
func (i *Issuer) exchangeGrant(w http.ResponseWriter, r *http.Request, grantType string) (*grant, map[string]string, error) {
	f, err := i.formBody(w, r)
	if err != nil {
		return &grant{Type: grantType}, nil, err
	}
	g := &grant{Type: grantType, ClientID: f["client_id"], ClientSecret: f["client_secret"], Scope: f["scope"],
		clientIP: edge.ClientIP(r, i.cfg.TrustedProxies)}
	if id, secret, ok := basicAuth(r); ok {
		if g.ClientID != "" && g.ClientID != id {
			return g, nil, refuse(ErrInvalidRequest, "client_id differs from the Basic credentials")
		}
		g.ClientID, g.ClientSecret, g.BasicAuth = id, secret, true
	}
	return g, f, nil
}

// serveTokenExchange is login_with_token (docs/CLIENTS.md §1.3).
func (i *Issuer) serveTokenExchange(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	g, f, err := i.exchangeGrant(w, r, "login_with_token")
	var t *Tokens
	if err == nil {
		t, err = i.tokenExchange(r.Context(), g, f)
	}
	i.observe(r, g, dialect, err)
	i.writeJSONAPI(w, r, t, err)
}

// serveCookieExchange turns a legacy session cookie into tokens.
func (i *Issuer) serveCookieExchange(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	g, _, err := i.exchangeGrant(w, r, "cookie_exchange")
	var t *Tokens
	if err == nil {
		t, err = i.cookieExchange(r.Context(), r, g)
	}
	i.observe(r, g, dialect, err)
	i.writeJSONAPI(w, r, t, err)
}

// serveProfileToken mints a token for one of the bearer's profiles.
func (i *Issuer) serveProfileToken(w http.ResponseWriter, r *http.Request, dialect string) {
	noStore(w)
	t, err := i.profileToken(r.Context(), r, r.PathValue("profile_id"))
	g := &grant{Type: "profile"}
	if t != nil {
		g.ClientID = t.ClientID
	}
	i.observe(r, g, dialect, err)
	i.writeJSONAPI(w, r, t, err)
}

// serveUserinfo answers with the bearer's identity: sub plus the user's
// claims (docs/CLIENTS.md §4.2: agentId, siteId, role). A bad token is
// refused exactly as the proxy refuses it.
func (i *Issuer) serveUserinfo(w http.ResponseWriter, r *http.Request, _ string) {
	noStore(w)
	raw, status := edge.BearerToken(r.Header)
	switch status {
	case edge.TokenMissing:
		i.bearer.Missing.Write(w)
		return
	case edge.TokenInvalid:
		i.bearer.InvalidRequest.Write(w)
		return
	}
	tok, err := i.access.VerifyUncached(r.Context(), raw) // its profile claim
	if err == nil && !i.isSelf(tok.Issuer()) {
		err = verifier.ErrWrongIssuer
	}
	if err != nil {
		if i.gone(r, err) {
			return
		}
		i.bearer.InvalidToken(verifier.Reason(err), verifier.Description(err)).Write(w)
		return
	}
	if ended, err := i.sessionEnded(r.Context(), tok); err != nil {
		i.writeOAuthError(w, r, err)
		return
	} else if ended {
		i.bearer.InvalidToken(verifier.ErrRevoked.Reason, verifier.ErrRevoked.Description).Write(w)
		return
	}
	u, err := i.users.Lookup(r.Context(), tok.Subject)
	if err != nil {
		if e := errorOf(identityError(err)); e.Status >= 500 {
			i.writeOAuthError(w, r, e) // the user backend is down
			return
		}
		i.bearer.InvalidToken("unknown_user", "unknown user").Write(w)
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

// sessionEnded reports, with a store, whether the session of a token of
// this issuer has ended (answered from the store: the token endpoints may
// afford the round trip the proxy avoids).
func (i *Issuer) sessionEnded(ctx context.Context, tok *verifier.Token) (bool, error) {
	if i.store == nil || !i.isSelf(tok.Issuer()) {
		return false, nil
	}
	_, err := i.liveSession(ctx, tok)
	if errors.Is(err, session.ErrUnavailable) {
		return false, storeError(err)
	}
	return err != nil, nil
}

// serveDiscovery answers OpenID Connect Discovery and RFC 8414 with one
// document; at a configured realm's path (Keycloak-style) the realm URL is
// the issuer and its endpoints are the realm's, as Keycloak's are, because
// clients insist that the issuer they discovered is the tokens' iss.
func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request, _ string) {
	base := strings.TrimRight(i.cfg.Issuer, "/")
	issuer, endpoints := i.cfg.Issuer, base
	realm := r.PathValue("realm")
	if realm != "" {
		if !slices.Contains(i.cfg.Realms, realm) {
			i.writeOAuthError(w, r, refuse(ErrNotEnabled, "no such realm"))
			return
		}
		issuer = i.issuerFrom(i.withIssuerOf(r))
		endpoints = issuer + "/protocol/openid-connect"
	}
	token, logout, revoke, device := base+"/oauth/token", base+"/oauth/logout", base+"/oauth/revoke", base+"/oauth/device/code"
	if realm != "" {
		token, logout, revoke, device = endpoints+"/token", endpoints+"/logout", endpoints+"/revoke", endpoints+"/auth/device"
	}
	grants := []string{"password", "refresh_token"}
	var deviceEndpoint any
	if i.deviceFlow != nil {
		grants, deviceEndpoint = append(grants, deviceGrantType), device
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	doc := map[string]any{
		"issuer":                        issuer,
		"token_endpoint":                token,
		"userinfo_endpoint":             base + userinfoPath,
		"jwks_uri":                      base + "/.well-known/jwks.json",
		"introspection_endpoint":        base + "/oauth/introspect",
		"revocation_endpoint":           i.storeURL(revoke),
		"end_session_endpoint":          i.storeURL(logout),
		"grant_types_supported":         grants,
		"device_authorization_endpoint": deviceEndpoint,
		// No authorization endpoint is served, so no response type is
		// advertised (OpenID Connect Discovery requires the field; RFC
		// 8414 its values be ones the authorization endpoint serves).
		"response_types_supported":                      []string{},
		"subject_types_supported":                       []string{"public"},
		"id_token_signing_alg_values_supported":         i.keys.Algorithms(),
		"token_endpoint_auth_methods_supported":         []string{"none", "client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":    i.storeAny([]string{"none", "client_secret_basic", "client_secret_post"}),
		"scopes_supported":                              append(slices.Clone(standardScopes), slices.Sorted(maps.Keys(i.scopes))...),
		"claims_supported":                              []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "email", "preferred_username", "role", "profile", "sid"},
		"request_parameter_supported":                   false,
		"claims_parameter_supported":                    false,
	}
	for k, v := range doc {
		if v == nil {
			delete(doc, k) // an endpoint that does not exist here
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

// storeAny is v when a session store is on, else nil.
func (i *Issuer) storeAny(v any) any {
	if i.store == nil {
		return nil
	}
	return v
}

// storeURL is u when a session store is on (the endpoint exists), else nil
// (left out of discovery).
func (i *Issuer) storeURL(u string) any {
	if i.store == nil {
		return nil
	}
	return u
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
		i.writeOAuthError(w, r, refuse(ErrInvalidClient, "introspection needs a confidential client").
			challenge("Basic realm="+edge.Quote(i.cfg.Realm)))
		return
	}
	body, err := i.readBody(w, r)
	var f map[string]string
	if err == nil {
		f, err = parseForm(body)
	}
	if err != nil || f["token"] == "" {
		i.writeOAuthError(w, r, refuse(ErrInvalidRequest, "token is required"))
		return
	}
	if i.store != nil {
		i.introspectStored(w, r, f["token"])
		return
	}
	// token_type_hint says where to look first (RFC 7662 §2.1).
	verifiers := []AccessVerifier{i.access, i.refresh}
	if f["token_type_hint"] == "refresh_token" {
		verifiers = []AccessVerifier{i.refresh, i.access}
	}
	var tok *verifier.Token
	for _, v := range verifiers {
		if tok, err = v.VerifyUncached(r.Context(), f["token"]); err == nil { // its claims
			break
		}
	}
	if err != nil || !i.isSelf(tok.Issuer()) {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	resp := map[string]any{"active": true, "sub": tok.Subject, "iss": tok.Issuer(),
		"exp": tok.ExpiresAt().Unix(), "iat": tok.IssuedAt().Unix(), "aud": tok.Audience(), "jti": tok.ID}
	if tok.Claims["type"] != "refresh" {
		resp["token_type"] = "Bearer" // RFC 7662: the RFC 6749 §7.1 type of an access token
	}
	for _, k := range []string{"client_id", "scope", "sid", "profile"} {
		if v, ok := tok.Claims[k]; ok {
			resp[k] = v
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// nilIfEmpty makes an absent token null in JSON.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
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
func (i *Issuer) observe(r *http.Request, g *grant, dialect string, err error) {
	grantType := "other"
	if g != nil && slices.Contains([]string{"password", "refresh_token", "login_with_token", "cookie_exchange", "profile"}, g.Type) {
		grantType = g.Type
	}
	switch {
	case grantType == "login_with_token":
		grantType = "token_exchange" // the metric's label since it was first counted
	case g != nil && g.Type == deviceGrantType:
		grantType = "device_code"
	}
	client := "unregistered"
	if g != nil && i.clients != nil && i.clients[g.ClientID] != nil {
		client = g.ClientID
	}
	// The request's span says what was asked and how it ended; never a
	// credential, a user or a claim.
	span := tracing.FromContext(r.Context())
	span.SetAttributes(attribute.String("tollgate.grant", grantType), attribute.String("tollgate.client", client),
		attribute.String("tollgate.dialect", dialect))
	if err != nil {
		e := errorOf(err)
		span.SetAttributes(attribute.String("tollgate.token_error", e.Code))
		i.obs.TokenError(r.Context(), grantType, e.Code, e.Reason)
		return
	}
	i.obs.TokenIssued(r.Context(), grantType, client, dialect)
}
