package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/httpurl"
	"github.com/tollgate/tollgate/jsonpath"
)

// ErrInvalidConfig wraps every problem New finds in a Config.
var ErrInvalidConfig = errors.New("proxy: invalid config")

// AuthMode says what a route requires of a request's Bearer token.
type AuthMode string

const (
	// AuthRequired refuses requests without a valid access token. It is
	// the default.
	AuthRequired AuthMode = "required"
	// AuthOptional forwards requests without a token anonymously; a token
	// that is present must be valid.
	AuthOptional AuthMode = "optional"
	// AuthNone forwards without looking at the token. Identity headers are
	// still stripped.
	AuthNone AuthMode = "none"
)

// Upstream is a named upstream API.
type Upstream struct {
	// Name is a bounded label for logs and metrics, e.g. "legacy".
	Name string
	// URL is http(s)://host[:port][/base]; a base path is joined in front
	// of the forwarded path.
	URL string
}

// Route sends requests under a path prefix to an upstream.
type Route struct {
	// Name labels the route in logs and metrics. Empty means Prefix.
	Name string
	// Prefix matches on a segment boundary: "/api" matches /api and
	// /api/x but not /apix. "/" matches everything.
	Prefix string
	// Upstream names an Upstream.
	Upstream string
	// Auth is the route's auth mode. Empty means AuthRequired.
	Auth AuthMode
	// Scopes must all be granted by the token's "scope" claim.
	Scopes []string
	// Roles: at least one must be held ("roles", "role" or Keycloak's
	// realm_access.roles claim).
	Roles []string
	// StripPrefix removes Prefix before forwarding.
	StripPrefix bool
	// DropAuthorization stops the Authorization header from being
	// forwarded. By default it is forwarded on routes that verify it; on
	// AuthNone routes it is dropped unless ForwardAuthorization is set.
	DropAuthorization bool
	// ForwardAuthorization forwards the Authorization header on an
	// AuthNone route, where tollgate has not verified it.
	ForwardAuthorization bool
	// Issuers, if set, are the only token issuers this route accepts (a
	// partner's identity provider cannot assert roles for a route meant for
	// tollgate's own users); other tokens are refused as wrong_issuer.
	Issuers []string
	// CaseSensitive matches Prefix in exact letter case. By default /ADMIN
	// matches the route /admin, as upstreams on case-insensitive stacks
	// would serve it.
	CaseSensitive bool
}

// HeaderMapping sets an upstream header from a claim.
type HeaderMapping struct {
	// Header is the header name, e.g. X-User-Id.
	Header string
	// Claim is a dotted path into the claims, e.g. "sub", "data.userId" or
	// "realm_access.roles.0" (package jsonpath). Arrays are joined with
	// spaces; numbers keep their exact text; objects are skipped.
	Claim string
}

// defaultHeaders returns the identity headers used when Config.Headers is
// nil.
func defaultHeaders() []HeaderMapping {
	return []HeaderMapping{
		{Header: "X-User-Id", Claim: "sub"},
		{Header: "X-Profile-Id", Claim: "profile"},
		{Header: "X-Session-Id", Claim: "sid"},
		{Header: "X-Client-Id", Claim: "client_id"},
		{Header: "X-Scopes", Claim: "scope"},
		{Header: "X-User-Issuer", Claim: "iss"},
	}
}

// defaultStripHeaders are inbound headers that frameworks route or
// authenticate by (IIS and Symfony rewrite by X-Original-URL, Apache
// modules trust X-Remote-User, many apps log X-Real-IP as the client):
// a client must not choose them.
func defaultStripHeaders() []string {
	return []string{"X-Original-URL", "X-Rewrite-URL", "X-Remote-User", "X-Forwarded-User", "X-Authenticated-User",
		"X-Real-IP", "X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server", "X-Original-Host"}
}

// Config configures a Proxy.
type Config struct {
	Upstreams []Upstream
	// Routes: the longest matching prefix wins.
	Routes []Route
	// Headers maps claims to upstream headers. Nil means X-User-Id ← sub,
	// X-Profile-Id ← profile, X-Session-Id ← sid, X-Client-Id ←
	// client_id, X-Scopes ← scope, X-User-Issuer ← iss.
	Headers []HeaderMapping
	// StripHeaders are removed from every inbound request, like the
	// identity headers. Nil means X-Original-URL, X-Rewrite-URL,
	// X-Remote-User, X-Forwarded-User, X-Authenticated-User, X-Real-IP,
	// X-Forwarded-Prefix, X-Forwarded-Port, X-Forwarded-Server and
	// X-Original-Host; empty means none.
	StripHeaders []string
	// Realm is the WWW-Authenticate realm. Empty means "tollgate".
	Realm string
	// DialTimeout bounds connecting to an upstream. Zero means 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// headers; exceeding it gives a 504. Zero means 30s.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes idle upstream connections. Zero means 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool per upstream. Zero means 64.
	MaxIdleConnsPerHost int
	// MaxIdleConns is the keep-alive pool overall. Zero means 256.
	MaxIdleConns int
}

func (c *Config) setDefaults() {
	if c.Headers == nil {
		c.Headers = defaultHeaders()
	}
	if c.StripHeaders == nil {
		c.StripHeaders = defaultStripHeaders()
	}
	if c.Realm == "" {
		c.Realm = "tollgate"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 5*time.Second)
	def(&c.ResponseHeaderTimeout, 30*time.Second)
	def(&c.IdleConnTimeout, 90*time.Second)
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = 64
	}
	if c.MaxIdleConns <= 0 {
		c.MaxIdleConns = 256
	}
}

// validate reports every problem in c at once.
func (c *Config) validate() (map[string]*url.URL, error) {
	var errs []error
	targets := make(map[string]*url.URL, len(c.Upstreams))
	named := make(map[string]bool, len(c.Upstreams)) // also the names of invalid ones
	for i, u := range c.Upstreams {
		if u.Name == "" {
			errs = append(errs, fmt.Errorf("upstream %d: name is empty", i))
			continue
		}
		if named[u.Name] {
			errs = append(errs, fmt.Errorf("upstream %q: defined twice", u.Name))
			continue
		}
		named[u.Name] = true
		t, err := httpurl.Parse(u.URL)
		if err == nil && t.RawQuery != "" {
			err = errors.New("a query has no place in an upstream URL")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %q: %w", u.Name, err))
			continue
		}
		targets[u.Name] = t
	}
	if len(c.Routes) == 0 {
		errs = append(errs, errors.New("no routes"))
	}
	prefixes := map[string]bool{}
	for i, r := range c.Routes {
		where := fmt.Sprintf("route %d (%q)", i, r.Prefix)
		if !strings.HasPrefix(r.Prefix, "/") {
			errs = append(errs, fmt.Errorf("%s: prefix must start with /", where))
		}
		if p := normPrefix(r.Prefix); prefixes[p] {
			errs = append(errs, fmt.Errorf("%s: prefix routed twice", where))
		} else {
			prefixes[p] = true
		}
		if _, ok := targets[r.Upstream]; !ok {
			errs = append(errs, fmt.Errorf("%s: unknown upstream %q", where, r.Upstream))
		}
		switch r.Auth {
		case "", AuthRequired, AuthOptional, AuthNone:
		default:
			errs = append(errs, fmt.Errorf("%s: auth %q is not required, optional or none", where, r.Auth))
		}
		if r.Auth == AuthNone && len(r.Scopes)+len(r.Roles)+len(r.Issuers) > 0 {
			errs = append(errs, fmt.Errorf("%s: scopes, roles or issuers need auth required or optional", where))
		}
		if r.Auth != AuthNone && r.ForwardAuthorization {
			errs = append(errs, fmt.Errorf("%s: forward_authorization is for auth none routes (verified tokens are forwarded anyway)", where))
		}
	}
	seen := map[string]bool{}
	for i, h := range c.Headers {
		name := http.CanonicalHeaderKey(h.Header)
		switch {
		case !validHeaderName(h.Header):
			errs = append(errs, fmt.Errorf("header mapping %d: %q is not a valid header name", i, h.Header))
		case seen[name]:
			errs = append(errs, fmt.Errorf("header mapping %d: %s mapped twice", i, name))
		case name == "Authorization" || name == "Host" || name == "X-Request-Id" || strings.HasPrefix(name, "X-Forwarded-"):
			errs = append(errs, fmt.Errorf("header mapping %d: %s cannot carry a claim", i, name))
		}
		seen[name] = true
		if _, err := jsonpath.Parse(h.Claim); h.Claim == "" || err != nil {
			errs = append(errs, fmt.Errorf("header mapping %d (%s): claim path %q is invalid", i, h.Header, h.Claim))
		}
	}
	for i, h := range c.StripHeaders {
		if name := http.CanonicalHeaderKey(h); !validHeaderName(h) || name == "Authorization" || name == "Host" || name == "X-Request-Id" {
			errs = append(errs, fmt.Errorf("strip header %d: %q cannot be stripped", i, h))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return targets, nil
}

// normPrefix drops a trailing slash, so "/api" and "/api/" are one prefix.
func normPrefix(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}

// validHeaderName reports whether s is an RFC 9110 field name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
