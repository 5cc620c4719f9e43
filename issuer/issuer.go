package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/httpurl"
	"github.com/tollgate/tollgate/identity"
	"github.com/tollgate/tollgate/session"
	"github.com/tollgate/tollgate/verifier"
)

// Users finds users; *identity.Users satisfies it.
type Users interface {
	// Authenticate checks a login (username or email) and password.
	Authenticate(ctx context.Context, login string, password []byte) (*identity.User, error)
	// Lookup finds a user by id.
	Lookup(ctx context.Context, id string) (*identity.User, error)
}

// ExternalTokens exchanges an external OAuth server's access token for a
// local user; *identity.External satisfies it.
type ExternalTokens interface {
	Exchange(ctx context.Context, service, token string) (*identity.User, error)
}

// LegacySessions tells whose session of the legacy system the cookies
// are; *identity.CookieSessions satisfies it.
type LegacySessions interface {
	UserID(ctx context.Context, cookies []*http.Cookie) (string, error)
}

// WithExternal enables POST /api/oauth/login_with_token.
func WithExternal(x ExternalTokens) Option { return func(i *Issuer) { i.external = x } }

// WithLegacySessions enables POST /api/auth/v1/cookie_exchange.
func WithLegacySessions(s LegacySessions) Option { return func(i *Issuer) { i.legacy = s } }

// AccessVerifier verifies access tokens (for userinfo, introspection,
// sessions and profile tokens); *verifier.Verifier satisfies it.
type AccessVerifier interface {
	// Verify may answer from a cache, with a Token whose Claims holds only
	// some claims, or none: what it is used for reads the Token's fields.
	Verify(ctx context.Context, raw string) (*verifier.Token, error)
	// VerifyUncached gives a Token with every claim, for what reads
	// claims by name (userinfo, introspection, a session's claims).
	VerifyUncached(ctx context.Context, raw string) (*verifier.Token, error)
}

// Client is a registered OAuth client.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret, if set, must be presented (HTTP Basic or client_secret);
	// empty means a public client.
	Secret string
	// Grants lists the allowed grant types: password, refresh_token,
	// login_with_token, cookie_exchange. Empty means password and
	// refresh_token; an exchange is allowed only when listed.
	Grants []string
	// Scopes lists the scopes the client may ask for, each a standard
	// OpenID scope or one of Config.Scopes. Empty means the default scope
	// only.
	Scopes []string
	// Roles lists the roles an HS256 token of this client may confer: the
	// shared secret lets anyone holding it forge such tokens, so the proxy
	// drops any other role from them. Ignored for other clients.
	Roles []string
	// Audience overrides Config.Audience for this client's access tokens.
	Audience string
	// PartnerID, if set, must match the user's partner.
	PartnerID string
	// AccessTTL and RefreshTTL override the global lifetimes when non-zero.
	AccessTTL, RefreshTTL time.Duration
	// IDTokenAlg is the algorithm of this client's ID tokens (its
	// registered id_token_signed_response_alg): a loaded key of it signs
	// them. Empty means RS256 when an RS256 key is loaded, else the newest
	// key's.
	IDTokenAlg string
	// SigningAlg "HS256" signs this client's tokens with the newest HMAC
	// key (a *.jwk file in the keys directory), for legacy apps that verify
	// tokens with a shared secret. Empty means the newest asymmetric key.
	SigningAlg string
}

// Config configures an Issuer.
type Config struct {
	// Issuer is the iss of every token and the base of discovery: the
	// public URL of tollgate, e.g. https://auth.example.com. Required.
	Issuer string
	// Audience is the aud of access tokens. Required.
	Audience string
	// AccessTTL is the access token lifetime. Zero means 1h.
	AccessTTL time.Duration
	// RefreshTTL is the refresh token lifetime. Zero means 720h.
	RefreshTTL time.Duration
	// RefreshSigning is how stateless refresh tokens (no session store)
	// are signed: RefreshMAC (the default, "" too) or RefreshSignature.
	// Either kind is accepted whatever this says, so that replicas of
	// this version and of earlier ones (which accept only signed refresh
	// tokens) can run side by side with RefreshSignature during an
	// upgrade.
	RefreshSigning string
	// Clients is the client registry. Nil means any client_id is accepted
	// as a public client for password and refresh_token, as the source
	// documents' clients send arbitrary ids.
	Clients []Client
	// DefaultScope is granted when a request names none. Empty means
	// "openid profile".
	DefaultScope string
	// MaxBodyBytes bounds request bodies. Zero means 64 KiB.
	MaxBodyBytes int64
	// MaxConcurrentLogins bounds password checks running at once: an
	// argon2id comparison holds ~19 MiB, so a login storm must queue rather
	// than exhaust memory; hashing is CPU-bound, so more checks than cores
	// at once would only hold more memory. Zero means GOMAXPROCS.
	MaxConcurrentLogins int
	// Realm is the realm of WWW-Authenticate challenges. Empty means
	// "tollgate".
	Realm string
	// Realms are Keycloak-style realm names whose paths
	// (/auth/realms/{realm}/…, /realms/{realm}/…) serve discovery and mint
	// tokens with the realm URL as their issuer, as Keycloak does: clients
	// that find the token endpoint through a realm's discovery document
	// insist that the document's issuer and the tokens' match. Token
	// requests to a realm not listed are served with Issuer as before.
	Realms []string
	// Scopes is the registry of scopes beyond the standard OpenID ones
	// (openid, profile, email, offline_access). A scope nobody registered
	// is refused with invalid_scope.
	Scopes []Scope
	// MaxLoginQueue bounds the password checks waiting for a slot: beyond
	// it a login is answered 503 at once instead of queueing. Zero means
	// 8 × MaxConcurrentLogins.
	MaxLoginQueue int
	// TrustedProxies are the networks whose X-Forwarded-For tollgate
	// believes when it limits logins per client IP. Empty: the
	// connection's address is the client's.
	TrustedProxies []netip.Prefix
}

// Scope is a registered scope.
type Scope struct {
	// Name is the scope as clients ask for it. Required.
	Name string
	// Roles, if set, restricts the scope to users holding one of them.
	Roles []string
	// Users, if set, restricts the scope to these user ids.
	Users []string
}

// Option configures optional Issuer behaviour.
type Option func(*Issuer)

// WithClock sets the time source.
func WithClock(now func() time.Time) Option { return func(i *Issuer) { i.now = now } }

// Observer receives token outcomes, for metrics. Labels are bounded: the
// client is a registered client id or "unregistered".
type Observer interface {
	TokenIssued(ctx context.Context, grant, client, dialect string)
	// TokenError reports a refused request by its wire code; loginFailure
	// is the Error's Reason (invalid_credentials, partner_mismatch,
	// unknown_profile for a failed password login), else "".
	TokenError(ctx context.Context, grant, code, loginFailure string)
}

type nopObserver struct{}

func (nopObserver) TokenIssued(context.Context, string, string, string) {}
func (nopObserver) TokenError(context.Context, string, string, string)  {}

// WithObserver receives token outcomes.
func WithObserver(o Observer) Option { return func(i *Issuer) { i.obs = o } }

// Issuer mints tokens and serves the token endpoints.
type Issuer struct {
	cfg      Config
	keys     *Keys
	users    Users
	access   AccessVerifier
	refresh  *verifier.Verifier
	clients  map[string]*Client // nil: open registry
	logger   *zap.Logger
	now      func() time.Time
	audience []string      // every audience access tokens may carry
	logins   chan struct{} // semaphore of password checks
	obs      Observer
	external ExternalTokens   // nil: login_with_token disabled
	legacy   LegacySessions   // nil: cookie_exchange disabled
	bearer   *edge.Challenges // refusals of a bad Bearer token
	scopes   map[string]*Scope
	// selfIssuers are the issuers of the tokens this issuer mints: the
	// public URL and the configured realms' URLs.
	selfIssuers []string
	limits      loginLimits
	store       Sessions // nil: stateless
	deviceFlow  *device  // nil: no device authorization grant
	storeCfg    StoreConfig
	sessObs     SessionObserver
	waiting     atomic.Int64 // logins waiting for a slot of logins
	warnings    []string
}

// grantTypes are the grants a client may list ("device_code" is an alias
// of RFC 8628's URN).
var grantTypes = []string{"password", "refresh_token", "login_with_token", "cookie_exchange", deviceGrantType, "device_code"}

// Warnings lists what an operator should know about this configuration
// (for check-config and the start-up log).
func (i *Issuer) Warnings() []string { return slices.Clone(i.warnings) }

// Why a password login failed, for metrics; all are invalid_grant to the
// client, with the same description, so an attacker cannot tell which
// accounts exist.
const (
	reasonBadCredentials  = "invalid_credentials"
	reasonPartnerMismatch = "partner_mismatch"
	badCredentials        = "invalid credentials"
)

// How stateless refresh tokens are signed (Config.RefreshSigning).
const (
	// RefreshMAC: HS256 with the signing key's refresh MAC key, which
	// only tollgate can derive (see refreshMACKey): the refresh grant
	// then costs one signature (the access token's) instead of three
	// operations.
	RefreshMAC = "mac"
	// RefreshSignature: signed like access tokens, with the newest key.
	RefreshSignature = "signature"
)

// New validates cfg and builds the Issuer. access verifies bearer tokens
// at userinfo; it is normally the proxy's verifier, which trusts Keys. A
// nil logger logs nothing.
func New(cfg Config, keys *Keys, users Users, access AccessVerifier, logger *zap.Logger, opts ...Option) (*Issuer, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.Realm == "" {
		cfg.Realm = "tollgate"
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = time.Hour
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 720 * time.Hour
	}
	if cfg.DefaultScope == "" {
		cfg.DefaultScope = "openid profile"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.MaxConcurrentLogins <= 0 {
		cfg.MaxConcurrentLogins = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxLoginQueue <= 0 {
		cfg.MaxLoginQueue = 8 * cfg.MaxConcurrentLogins
	}
	var errs []error
	if u, err := httpurl.Parse(cfg.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	} else if u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("issuer %q: a query has no place in an issuer", cfg.Issuer))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("no access token audience"))
	}
	switch cfg.RefreshSigning {
	case "":
		cfg.RefreshSigning = RefreshMAC
	case RefreshMAC, RefreshSignature:
	default:
		errs = append(errs, fmt.Errorf("refresh token signing %q: want %q or %q", cfg.RefreshSigning, RefreshMAC, RefreshSignature))
	}
	i := &Issuer{cfg: cfg, keys: keys, users: users, access: access, logger: logger.Named("issuer"), now: time.Now,
		logins: make(chan struct{}, cfg.MaxConcurrentLogins), obs: nopObserver{}, bearer: edge.NewChallenges(cfg.Realm)}
	for _, o := range opts {
		o(i)
	}
	i.audience = []string{cfg.Audience}
	errs = append(errs, i.loadScopes(cfg.Scopes)...)
	for _, r := range cfg.Realms {
		if r == "" || strings.ContainsAny(r, "/?#%{} ") {
			errs = append(errs, fmt.Errorf("realm %q: want a plain path segment", r))
		}
	}
	if keys != nil && !slices.Contains(keys.Algorithms(), "RS256") {
		i.warnings = append(i.warnings, "no RS256 signing key: OpenID Connect Discovery requires RS256 among the ID token algorithms, and some clients (authlib) refuse the metadata without it; add one with `tollgate keygen -alg RS256` (ID tokens are then signed with it, access tokens with the newest key)")
	}
	if cfg.Clients != nil {
		i.clients = map[string]*Client{}
		for n, c := range cfg.Clients {
			switch {
			case c.ID == "":
				errs = append(errs, fmt.Errorf("client %d: id is empty", n))
				continue
			case i.clients[c.ID] != nil:
				errs = append(errs, fmt.Errorf("client %q: defined twice", c.ID))
				continue
			}
			for _, g := range c.Grants {
				if !slices.Contains(grantTypes, g) {
					errs = append(errs, fmt.Errorf("client %q: grant %q is not one of %s", c.ID, g, strings.Join(grantTypes, ", ")))
				}
			}
			for _, sc := range c.Scopes {
				if !i.knownScope(sc) {
					errs = append(errs, fmt.Errorf("client %q: scope %q is neither a standard scope nor in the scopes registry", c.ID, sc))
				}
			}
			if c.SigningAlg != "" && c.SigningAlg != "HS256" {
				errs = append(errs, fmt.Errorf("client %q: signing_alg %q: only HS256 may be chosen", c.ID, c.SigningAlg))
			}
			if c.SigningAlg == "HS256" && !keys.hasHMAC() {
				errs = append(errs, fmt.Errorf("client %q: signing_alg HS256 needs an HMAC key (*.jwk) in the keys directory", c.ID))
			}
			if c.IDTokenAlg != "" && !slices.Contains([]string{"ES256", "RS256", "EdDSA"}, c.IDTokenAlg) {
				errs = append(errs, fmt.Errorf("client %q: id_token_signing_alg %q is not ES256, RS256 or EdDSA", c.ID, c.IDTokenAlg))
			}
			if c.SigningAlg == "HS256" && i.store == nil {
				errs = append(errs, fmt.Errorf("client %q: signing_alg HS256 needs a session store (TOLLGATE_SESSION_STORE): every holder of the shared secret can forge its tokens, and only a store can tell a forged session from a real one", c.ID))
			}
			if c.SigningAlg == "HS256" {
				i.warnings = append(i.warnings, fmt.Sprintf("client %q signs its access tokens with the shared HMAC key: anyone holding the key can forge them; tollgate caps them to the client's scopes and roles and its access token lifetime", c.ID))
			}
			if len(c.Grants) == 0 {
				c.Grants = []string{"password", "refresh_token"}
			}
			c.Grants = slices.Clone(c.Grants)
			for n, g := range c.Grants {
				if g == "device_code" {
					c.Grants[n] = deviceGrantType
				}
			}
			if c.Audience != "" && !slices.Contains(i.audience, c.Audience) {
				i.audience = append(i.audience, c.Audience)
			}
			i.clients[c.ID] = &c
		}
	}
	if i.deviceFlow != nil && i.store == nil {
		errs = append(errs, errors.New("the device flow needs a session store (TOLLGATE_SESSION_STORE): its codes live there"))
	}
	errs = append(errs, i.setUpDevice()...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	// No cache for refresh tokens: each is presented about once, and a
	// removed signing key must retire its refresh tokens at once. Their
	// keys are the private keys' public halves and refresh MAC keys
	// (Keys.RefreshKeys), never a legacy client's shared HMAC key: whoever
	// holds that must not mint sessions.
	i.selfIssuers = SelfIssuers(cfg.Issuer, cfg.Realms)
	var refreshIssuers []verifier.IssuerConfig
	for _, iss := range i.selfIssuers {
		refreshIssuers = append(refreshIssuers, verifier.IssuerConfig{
			Issuer: iss, Audiences: []string{iss}, Algorithms: []string{"HS256", "ES256", "RS256", "EdDSA"},
			Sources: []verifier.KeySource{keys.RefreshKeys()}, Refresh: true, MaxLifetime: i.maxRefreshTTL(),
		})
	}
	rv, err := verifier.New(verifier.Config{CacheSize: -1, Issuers: refreshIssuers}, logger,
		verifier.WithClock(func() time.Time { return i.now() }))
	if err != nil {
		return nil, err
	}
	i.refresh = rv
	if i.clients == nil {
		i.logger.Warn("no clients configured: any client_id is accepted as a public client for password and refresh_token grants")
	}
	return i, nil
}

// SelfIssuers lists the issuers of tokens tollgate mints: its public URL
// and, for each realm, the realm URL at both Keycloak paths
// (base/auth/realms/{realm}, base/realms/{realm}). The proxy trusts them
// all as tollgate's own.
func SelfIssuers(base string, realms []string) []string {
	out := []string{base}
	b := strings.TrimRight(base, "/")
	for _, r := range realms {
		out = append(out, b+"/auth/realms/"+r, b+"/realms/"+r)
	}
	return out
}

// isSelf reports whether iss is one of this issuer's.
func (i *Issuer) isSelf(iss string) bool { return slices.Contains(i.selfIssuers, iss) }

// issuerKey carries, in a request's context, the issuer its tokens are
// minted with: a realm's URL when the request came through a realm path.
type issuerKey struct{}

// withIssuerOf returns r's context with the issuer of the realm path it
// came through, if that realm is configured.
func (i *Issuer) withIssuerOf(r *http.Request) context.Context {
	realm := r.PathValue("realm")
	if realm == "" || !slices.Contains(i.cfg.Realms, realm) {
		return r.Context()
	}
	prefix := "/realms/"
	if strings.HasPrefix(r.URL.Path, "/auth/") {
		prefix = "/auth/realms/"
	}
	return context.WithValue(r.Context(), issuerKey{}, strings.TrimRight(i.cfg.Issuer, "/")+prefix+realm)
}

// issuerFrom returns the issuer to mint with for a request's context.
func (i *Issuer) issuerFrom(ctx context.Context) string {
	if iss, ok := ctx.Value(issuerKey{}).(string); ok {
		return iss
	}
	return i.cfg.Issuer
}

// maxRefreshTTL is the longest refresh token this issuer mints.
func (i *Issuer) maxRefreshTTL() time.Duration {
	d := i.cfg.RefreshTTL
	for _, c := range i.clients {
		d = max(d, c.RefreshTTL)
	}
	return d
}

// ConstrainHMAC caps what an HS256 access token of this issuer confers;
// the verifier of tollgate's own tokens calls it (IssuerConfig.Constrain).
// Every legacy app holds the shared HMAC secret, so anyone who has it can
// forge such a token: it must name a client registered with signing_alg
// HS256, live no longer than that client's access tokens, and it confers
// only that client's scopes (the default scope when it lists none) and
// roles, whatever it claims. With a session store it must also name a live
// session of that user and client, and confers at most that session's
// scope, role and profile, within its expiry.
func (i *Issuer) ConstrainHMAC(tok *verifier.Token) error {
	if tok.Algorithm() != "HS256" {
		return nil
	}
	id, _ := tok.Claims["client_id"].(string)
	c := i.clients[id]
	if c == nil || c.SigningAlg != "HS256" {
		return fmt.Errorf("%w: an HS256 token of a client that does not sign with HS256", verifier.ErrBadSignature)
	}
	ttl := i.cfg.AccessTTL
	if c.AccessTTL > 0 {
		ttl = c.AccessTTL
	}
	if tok.IssuedAt().IsZero() || tok.ExpiresAt().Sub(tok.IssuedAt()) > ttl {
		return fmt.Errorf("%w: an HS256 token outliving its client's access tokens", verifier.ErrLifetime)
	}
	allowed := c.Scopes
	if len(allowed) == 0 {
		allowed = strings.Fields(i.cfg.DefaultScope)
	}
	if i.store != nil {
		// With a store, the token must name a live session of that user and
		// client, and confers nothing beyond what the session was granted.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := i.liveSession(ctx, tok)
		switch {
		case errors.Is(err, session.ErrUnavailable):
			return fmt.Errorf("%w: the session store cannot vouch for an HS256 token: %v", verifier.ErrRevocationUnknown, err)
		case err != nil, s.ClientID != c.ID:
			return fmt.Errorf("%w: an HS256 token naming no live session of its user and client", verifier.ErrRevoked)
		case tok.ExpiresAt().After(s.Expires):
			return fmt.Errorf("%w: an HS256 token outliving its session", verifier.ErrLifetime)
		}
		allowed = slices.DeleteFunc(slices.Clone(allowed), func(sc string) bool { return !slices.Contains(strings.Fields(s.Scope), sc) })
		if s.Profile != "" {
			tok.Claims["profile"] = s.Profile
		}
		if role, _ := tok.Claims["role"].(string); role != s.Role {
			delete(tok.Claims, "role")
		}
	}
	var kept []string
	switch v := tok.Claims["scope"].(type) {
	case string:
		kept = strings.Fields(v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				kept = append(kept, s)
			}
		}
	}
	kept = slices.DeleteFunc(kept, func(s string) bool { return !slices.Contains(allowed, s) })
	tok.Claims["scope"] = strings.Join(kept, " ")
	if role, _ := tok.Claims["role"].(string); !slices.Contains(c.Roles, role) {
		delete(tok.Claims, "role")
	}
	delete(tok.Claims, "roles") // tollgate mints "role" only
	delete(tok.Claims, "realm_access")
	return nil
}

// SelfAlgorithms lists the algorithms of tokens this issuer mints, for the
// verifier that trusts them.
func SelfAlgorithms() []string { return []string{"ES256", "RS256", "EdDSA", "HS256"} }

// Audiences lists every audience this issuer's access tokens may carry,
// for the verifier that trusts them.
func (i *Issuer) Audiences() []string { return slices.Clone(i.audience) }

// Tokens is the outcome of a grant.
type Tokens struct {
	// Access, Refresh and ID are the signed tokens (ID only for openid).
	Access, Refresh, ID string
	// Issuer is their iss; AuthTime when the user authenticated.
	Issuer   string
	AuthTime time.Time
	// RefreshID is the refresh token's jti.
	RefreshID                  string
	AccessExpires, RefreshExp  time.Time
	IssuedAt                   time.Time
	Scope, SessionID, Profile  string
	ClientID                   string
	User                       *identity.User
	AccessTTL, RefreshLifetime time.Duration
}

// grant is what a token request asks for, after parsing.
type grant struct {
	Type         string
	ClientID     string
	ClientSecret string
	BasicAuth    bool
	Username     string
	Password     string
	RefreshToken string
	DeviceCode   string // RFC 8628
	Scope        string
	PartnerID    string // the partnerId query parameter (docs/CLIENTS.md §4.1)
	clientIP     netip.Addr
}

// authenticateClient finds the client and checks its secret.
func (i *Issuer) authenticateClient(g *grant) (*Client, error) {
	if g.ClientID == "" {
		// The JSON:API dialect sends no client_id (docs/CLIENTS.md §1.1).
		g.ClientID = "anonymous"
	}
	if i.clients == nil {
		return &Client{ID: g.ClientID, Grants: []string{"password", "refresh_token"}}, nil
	}
	c := i.clients[g.ClientID]
	var err *Error
	switch {
	case c == nil:
		// Compare anyway, so unknown clients cost what known ones do.
		secretsEqual(g.ClientSecret, "unknown-client")
		err = refuse(ErrInvalidClient, "unknown client")
	case c.Secret != "" && !secretsEqual(g.ClientSecret, c.Secret):
		err = refuse(ErrInvalidClient, "bad client credentials")
	case !slices.Contains(c.Grants, g.Type):
		return nil, refuse(ErrUnauthorizedClient, "this grant is not allowed for this client")
	default:
		return c, nil
	}
	if g.BasicAuth { // RFC 6749 §5.2: answer Basic with a Basic challenge
		err.challenge("Basic realm=" + edge.Quote(i.cfg.Realm))
	}
	return nil, err
}

// secretsEqual compares in constant time, also in length.
func secretsEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Login runs the password grant for clientID, as the token endpoints do,
// and returns the first pair of a new session. The demo prints tokens
// minted this way.
func (i *Issuer) Login(ctx context.Context, clientID, login, password string) (*Tokens, error) {
	return i.exchange(ctx, &grant{Type: "password", ClientID: clientID, Username: login, Password: password})
}

// exchange runs a grant and mints tokens.
func (i *Issuer) exchange(ctx context.Context, g *grant) (*Tokens, error) {
	switch g.Type {
	case "password", "refresh_token":
	case deviceGrantType:
		if i.deviceFlow == nil {
			return nil, refuse(ErrUnsupportedGrantType, "the device flow needs a session store")
		}
	case "":
		return nil, refuse(ErrInvalidRequest, "grant_type is required")
	default:
		return nil, refuse(ErrUnsupportedGrantType, "this grant_type is not supported")
	}
	client, err := i.authenticateClient(g)
	if err != nil {
		return nil, err
	}
	switch g.Type {
	case "password":
		return i.passwordGrant(ctx, client, g)
	case deviceGrantType:
		return i.deviceGrant(ctx, client, g)
	}
	return i.refreshGrant(ctx, client, g)
}

func (i *Issuer) passwordGrant(ctx context.Context, client *Client, g *grant) (*Tokens, error) {
	if g.Username == "" || g.Password == "" {
		return nil, refuse(ErrInvalidRequest, "username (or email) and password are required")
	}
	scope, err := i.scope(client, g.Scope, "")
	if err != nil {
		return nil, err
	}
	release, err := i.limits.take(ctx, g.Username, g.clientIP)
	if err != nil {
		return nil, err
	}
	if err := i.waitForLogin(ctx); err != nil {
		release(false)
		return nil, err
	}
	user, err := i.users.Authenticate(ctx, g.Username, []byte(g.Password))
	<-i.logins
	release(err == nil)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	case errors.Is(err, identity.ErrBackend):
		return nil, refuse(ErrUnavailable, "the login backend is unavailable").because(err)
	case errors.Is(err, identity.ErrInvalidCredentials):
		return nil, refuse(ErrInvalidGrant, badCredentials).reason(reasonBadCredentials)
	case err != nil:
		return nil, fmt.Errorf("check password: %w", err) // a server fault, not a wrong password
	}
	if !partnerMatches(user, client, g.PartnerID) {
		// Worded like bad credentials: do not confirm the account exists.
		return nil, refuse(ErrInvalidGrant, badCredentials).reason(reasonPartnerMismatch)
	}
	return i.startSession(ctx, client, user, scope, user.DefaultProfile())
}

// waitForLogin takes a slot of the password checks, queueing while
// MaxLoginQueue others wait; beyond that it refuses at once (503), so a
// login storm costs memory and time in bounds.
func (i *Issuer) waitForLogin(ctx context.Context) error {
	select {
	case i.logins <- struct{}{}:
		return nil
	default:
	}
	if i.waiting.Add(1) > int64(i.cfg.MaxLoginQueue) {
		i.waiting.Add(-1)
		return refuse(ErrBusy, "too many logins at once; retry shortly").retryAfter(time.Second).reason("queue_full")
	}
	defer i.waiting.Add(-1)
	select {
	case i.logins <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// partnerMatches checks the partnerId query parameter and the client's
// partner against the user's.
func partnerMatches(u *identity.User, c *Client, partnerID string) bool {
	if partnerID != "" && partnerID != u.PartnerID {
		return false
	}
	return c.PartnerID == "" || c.PartnerID == u.PartnerID
}

// refreshGrant renews a pair: the session continues with the user,
// profile, client and scope of the refresh token.
func (i *Issuer) refreshGrant(ctx context.Context, client *Client, g *grant) (*Tokens, error) {
	if g.RefreshToken == "" {
		return nil, refuse(ErrInvalidRequest, "refresh_token is required")
	}
	if i.store != nil {
		return i.refreshStored(ctx, client, g)
	}
	tok, err := i.refresh.Verify(ctx, g.RefreshToken)
	if err != nil {
		return nil, refuse(ErrInvalidGrant, "refresh token: "+verifier.Description(err)).because(err)
	}
	s := sessionOf(tok)
	if s.clientID != client.ID {
		return nil, refuse(ErrInvalidGrant, "the refresh token was issued to another client")
	}
	user, err := i.users.Lookup(ctx, tok.Subject)
	if errors.Is(err, identity.ErrBackend) {
		return nil, refuse(ErrUnavailable, "the user backend is unavailable").because(err)
	}
	if err != nil {
		return nil, refuse(ErrInvalidGrant, "the user no longer exists").because(err)
	}
	scope, err := i.scope(client, g.Scope, s.scope)
	if err != nil {
		return nil, err
	}
	profile := user.KeptProfile(s.profile)
	s.expires = time.Time{} // a refresh restarts the session's lifetime
	s.renewal, s.askedOIDC = true, slices.Contains(strings.Fields(g.Scope), "openid")
	return i.continueSession(ctx, client, user, s, scope, profile)
}

// tokenSession is what a token tells of the session it belongs to.
type tokenSession struct {
	id, clientID, scope, profile string
	// expires is when the session ends: its refresh token's expiry, which
	// every token of the session carries (claim session_exp). Zero: the
	// next pair may run a full refresh lifetime.
	expires time.Time
	// renewal marks a refresh: it gets an ID token only when the request
	// asks for openid itself (OpenID Connect Core §12.2 lets a refresh
	// answer go without one, and each costs a signature a renewing fleet
	// pays on every refresh).
	renewal   bool
	askedOIDC bool
	// issuer is the iss of the tokens ("": the issuer's public URL).
	issuer string
	// authTime is when the user authenticated (the ID token's auth_time,
	// the same across refreshes: OpenID Connect Core §12.2); zero: now.
	authTime time.Time
}

// sessionClaim carries the session's end in every token of a session, so
// a pair minted from an access token alone (a profile switch) never
// outlives the session it comes from.
const sessionClaim = "session_exp"

// sessionOf reads the session claims of a verified token with every claim
// (a refresh token, or an access token from VerifyUncached: a cached one
// keeps none). A token without session_exp ends its session at its own
// expiry.
func sessionOf(tok *verifier.Token) tokenSession {
	claim := func(name string) string { s, _ := tok.Claims[name].(string); return s }
	s := tokenSession{id: claim("sid"), clientID: claim("client_id"), scope: claim("scope"), profile: claim("profile"), expires: tok.ExpiresAt()}
	if n, ok := tok.Claims[sessionClaim].(json.Number); ok {
		if sec, err := n.Int64(); err == nil {
			s.expires = time.Unix(sec, 0)
		}
	}
	if n, ok := tok.Claims["auth_time"].(json.Number); ok {
		if sec, err := n.Int64(); err == nil {
			s.authTime = time.Unix(sec, 0)
		}
	}
	return s
}

// startSession begins a new session for u and mints its first pair. Every
// grant that authenticates a user anew (password, exchanges) ends here.
func (i *Issuer) startSession(ctx context.Context, c *Client, u *identity.User, scope, profile string) (*Tokens, error) {
	if err := i.userMayHave(u, scope); err != nil {
		return nil, err
	}
	if i.store != nil {
		return i.startStoredSession(ctx, c, u, scope, profile)
	}
	return i.mint(c, u, scope, profile, tokenSession{id: newID(), issuer: i.issuerFrom(ctx)}, "")
}

// refreshTTL is the refresh token lifetime of c's sessions.
func (i *Issuer) refreshTTL(c *Client) time.Duration {
	if c.RefreshTTL > 0 {
		return c.RefreshTTL
	}
	return i.cfg.RefreshTTL
}

// continueSession mints the next pair of the existing session s: a
// refresh, or a switch to another of the user's profiles. Every grant that
// carries a session on ends here, so that a session is never forked. A
// scope the user no longer may have (a role taken away) is dropped.
func (i *Issuer) continueSession(ctx context.Context, c *Client, u *identity.User, s tokenSession, scope, profile string) (*Tokens, error) {
	s.issuer = i.issuerFrom(ctx)
	return i.mint(c, u, i.narrowForUser(u, scope), profile, s, "")
}

// scope returns the granted scope: the request's (or, on refresh, the
// original grant's, else the default scope). Every scope must be known (a
// standard one or registered), within the client's list (the default
// scope for a client without one) and, on refresh, within the original.
// Whether the user may have it is checked once the user is known.
func (i *Issuer) scope(c *Client, requested, original string) (string, error) {
	want := strings.Fields(requested)
	if len(want) == 0 {
		want = strings.Fields(original)
	}
	if len(want) == 0 {
		want = strings.Fields(i.cfg.DefaultScope)
	}
	allowed := c.Scopes
	if len(allowed) == 0 {
		allowed = strings.Fields(i.cfg.DefaultScope)
	}
	for _, s := range want {
		switch {
		case !i.knownScope(s):
			return "", refuse(ErrInvalidScope, "a requested scope is unknown")
		case !slices.Contains(allowed, s):
			return "", refuse(ErrInvalidScope, "a requested scope is not allowed for this client")
		case original != "" && !slices.Contains(strings.Fields(original), s):
			return "", refuse(ErrInvalidScope, "a requested scope was not granted originally")
		}
	}
	return strings.Join(slices.Compact(want), " "), nil
}

// mint signs an access token, a refresh token and, for openid, an ID token.
//
// The pair ends no later than s.expires, when set. With a session store
// the refresh token is handle, the session's one-time handle, not a JWT
// (accessOnly: none).
func (i *Issuer) mint(c *Client, u *identity.User, scope, profile string, s tokenSession, handle string) (*Tokens, error) {
	now := i.now().Truncate(time.Second)
	sid := s.id
	iss := s.issuer
	if iss == "" {
		iss = i.cfg.Issuer
	}
	if s.authTime.IsZero() {
		s.authTime = now
	}
	accessTTL, refreshTTL := i.cfg.AccessTTL, i.cfg.RefreshTTL
	if c.AccessTTL > 0 {
		accessTTL = c.AccessTTL
	}
	if c.RefreshTTL > 0 {
		refreshTTL = c.RefreshTTL
	}
	if !s.expires.IsZero() {
		left := s.expires.Sub(now)
		if left <= 0 {
			return nil, refuse(ErrInvalidGrant, "the session has ended")
		}
		refreshTTL, accessTTL = min(refreshTTL, left), min(accessTTL, left)
	}
	sessionEnd := now.Add(refreshTTL).Unix()
	aud := i.cfg.Audience
	if c.Audience != "" {
		aud = c.Audience
	}
	access := newClaimSet()
	access.str("iss", iss)
	access.str("sub", u.ID)
	access.str("aud", aud)
	access.num("iat", now.Unix())
	access.num("nbf", now.Unix())
	access.num("exp", now.Add(accessTTL).Unix())
	access.str("jti", newID())
	access.str("client_id", c.ID)
	access.str("scope", scope)
	access.str("type", "access")
	access.str("sid", sid)
	access.num(sessionClaim, sessionEnd)
	access.strIf("profile", profile)
	access.strIf("email", u.Email)
	access.strIf("preferred_username", u.Username)
	access.strIf("role", u.Role)
	access.strIf("partnerId", u.PartnerID)
	// The user's own claims, where they name none of the above: those
	// are tollgate's to say.
	if err := access.extra(u.Claims); err != nil {
		return nil, fmt.Errorf("user %s: claims: %w", u.ID, err)
	}
	t := &Tokens{Issuer: iss, AuthTime: s.authTime, ClientID: c.ID, IssuedAt: now, AccessExpires: now.Add(accessTTL), RefreshExp: now.Add(refreshTTL), Scope: scope,
		SessionID: sid, Profile: profile, User: u, AccessTTL: accessTTL, RefreshLifetime: refreshTTL}
	legacy := c.SigningAlg == "HS256"
	var err error
	if t.Access, err = i.keys.sign(access.json(), "at+jwt", legacy); errors.Is(err, errNoKeys) {
		return nil, refuse(ErrBusy, "no signing key is loaded").because(err)
	} else if err != nil {
		return nil, err
	}
	switch handle {
	case "":
		if err := i.mintRefresh(t, c); err != nil {
			return nil, err
		}
	case accessOnly:
	default:
		t.Refresh = handle
	}
	if slices.Contains(strings.Fields(scope), "openid") && (!s.renewal || s.askedOIDC) {
		if err := i.mintID(t, c, u, sid, now, accessTTL, legacy); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// accessOnly, as mint's handle, mints no refresh token: a profile switch
// of a stored session, whose one refresh handle stays the client's.
const accessOnly = "\x00access-only"

// mintRefresh signs a stateless refresh token: a JWT that only this
// issuer accepts, ending with the session.
func (i *Issuer) mintRefresh(t *Tokens, c *Client) error {
	t.RefreshID = newID()
	refresh := newClaimSet()
	refresh.str("iss", t.Issuer)
	refresh.str("sub", t.User.ID)
	refresh.str("aud", t.Issuer)
	refresh.num("iat", t.IssuedAt.Unix())
	refresh.num("nbf", t.IssuedAt.Unix())
	refresh.num("exp", t.RefreshExp.Unix())
	refresh.str("jti", t.RefreshID)
	refresh.str("client_id", c.ID)
	refresh.str("scope", t.Scope)
	refresh.str("type", "refresh")
	refresh.str("sid", t.SessionID)
	refresh.num(sessionClaim, t.RefreshExp.Unix())
	refresh.num("auth_time", t.AuthTime.Unix())
	refresh.strIf("profile", t.Profile)
	// Never with the shared HMAC key: whoever holds it could mint sessions.
	var err error
	t.Refresh, err = i.keys.signRefresh(refresh.json(), i.cfg.RefreshSigning == RefreshMAC)
	return err
}

// mintID signs an OpenID Connect ID token, with the newest RS256 key when
// one is loaded (OpenID Connect's default algorithm, which every client
// library can verify) or the client's registered algorithm; otherwise with
// the newest key.
func (i *Issuer) mintID(t *Tokens, c *Client, u *identity.User, sid string, now time.Time, accessTTL time.Duration, legacy bool) error {
	id := newClaimSet()
	id.str("iss", t.Issuer)
	id.str("sub", u.ID)
	id.str("aud", c.ID)
	id.num("iat", now.Unix())
	id.num("exp", now.Add(accessTTL).Unix())
	id.num("auth_time", t.AuthTime.Unix())
	id.str("sid", sid)
	id.str("azp", c.ID)
	id.strIf("email", u.Email)
	id.strIf("preferred_username", u.Username)
	var err error
	if legacy {
		t.ID, err = i.keys.sign(id.json(), "JWT", true)
		return err
	}
	alg := c.IDTokenAlg
	if alg == "" {
		alg = "RS256"
	}
	t.ID, err = i.keys.signWith(id.json(), "JWT", alg)
	return err
}

// newID returns a random identifier in UUID v4 format, as the fielded
// clients' session and token ids look (docs/CLIENTS.md §1.1).
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
