package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/identity"
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

// Sessions tells whose legacy session the cookies are;
// *identity.CookieSessions satisfies it.
type Sessions interface {
	UserID(ctx context.Context, cookies []*http.Cookie) (string, error)
}

// WithExternal enables POST /api/oauth/login_with_token.
func WithExternal(x ExternalTokens) Option { return func(i *Issuer) { i.external = x } }

// WithSessions enables POST /api/auth/v1/cookie_exchange.
func WithSessions(s Sessions) Option { return func(i *Issuer) { i.sessions = s } }

// AccessVerifier verifies access tokens (for userinfo and introspection);
// *verifier.Verifier satisfies it.
type AccessVerifier interface {
	Verify(ctx context.Context, raw string) (*verifier.Token, error)
}

// Client is a registered OAuth client.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret, if set, must be presented (HTTP Basic or client_secret);
	// empty means a public client.
	Secret string
	// Grants lists the allowed grant types. Empty means password and
	// refresh_token.
	Grants []string
	// Scopes lists the scopes the client may ask for. Empty means any.
	Scopes []string
	// Audience overrides Config.Audience for this client's access tokens.
	Audience string
	// PartnerID, if set, must match the user's partner.
	PartnerID string
	// AccessTTL and RefreshTTL override the global lifetimes when non-zero.
	AccessTTL, RefreshTTL time.Duration
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
	// than exhaust memory. Zero means 2 × GOMAXPROCS.
	MaxConcurrentLogins int
}

// Option configures optional Issuer behaviour.
type Option func(*Issuer)

// WithClock sets the time source.
func WithClock(now func() time.Time) Option { return func(i *Issuer) { i.now = now } }

// Observer receives token outcomes, for metrics. Labels are bounded: the
// client is a registered client id or "unregistered".
type Observer interface {
	TokenIssued(grant, client, dialect string)
	// TokenError reports a refused request by RFC 6749 code; loginFailure
	// is invalid_credentials, partner_mismatch or unknown_profile for a
	// failed password login, else "".
	TokenError(grant, code, loginFailure string)
}

type nopObserver struct{}

func (nopObserver) TokenIssued(string, string, string) {}
func (nopObserver) TokenError(string, string, string)  {}

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
	external ExternalTokens // nil: login_with_token disabled
	sessions Sessions       // nil: cookie_exchange disabled
}

// Errors of the token endpoint, mapped to RFC 6749 §5.2 codes by the
// handlers.
var (
	ErrInvalidRequest       = errors.New("invalid_request")
	ErrInvalidClient        = errors.New("invalid_client")
	ErrInvalidGrant         = errors.New("invalid_grant")
	ErrUnauthorizedClient   = errors.New("unauthorized_client")
	ErrUnsupportedGrantType = errors.New("unsupported_grant_type")
	ErrInvalidScope         = errors.New("invalid_scope")
	// ErrForbidden: the caller may not have this (another user's profile,
	// a legacy session the legacy system refuses).
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: a backend (external OAuth server, legacy system) is
	// down or answered nonsense; nothing was cached.
	ErrUnavailable = errors.New("temporarily_unavailable")
	// ErrNotEnabled: the endpoint's backend is not configured.
	ErrNotEnabled = errors.New("not_found")
	// ErrInvalidConfig wraps every problem New finds.
	ErrInvalidConfig = errors.New("issuer: invalid config")

	// Why a password login failed, for metrics; all are invalid_grant to
	// the client, with the same description.
	errBadCredentials  = errors.New("invalid credentials")
	errPartnerMismatch = errors.New("partner mismatch")
	errUnknownProfile  = errors.New("unknown profile")
)

// loginFailure names why a password login failed, or "".
func loginFailure(err error) string {
	switch {
	case errors.Is(err, errBadCredentials):
		return "invalid_credentials"
	case errors.Is(err, errPartnerMismatch):
		return "partner_mismatch"
	case errors.Is(err, errUnknownProfile):
		return "unknown_profile"
	}
	return ""
}

// New validates cfg and builds the Issuer. access verifies bearer tokens
// at userinfo; it is normally the proxy's verifier, which trusts Keys.
func New(cfg Config, keys *Keys, users Users, access AccessVerifier, logger *zap.Logger, opts ...Option) (*Issuer, error) {
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
		cfg.MaxConcurrentLogins = 2 * runtime.GOMAXPROCS(0)
	}
	var errs []error
	if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("issuer %q is not an http(s) URL", cfg.Issuer))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("no access token audience"))
	}
	i := &Issuer{cfg: cfg, keys: keys, users: users, access: access, logger: logger.Named("issuer"), now: time.Now,
		logins: make(chan struct{}, cfg.MaxConcurrentLogins), obs: nopObserver{}}
	for _, o := range opts {
		o(i)
	}
	i.audience = []string{cfg.Audience}
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
				if g != "password" && g != "refresh_token" {
					errs = append(errs, fmt.Errorf("client %q: grant %q is not password or refresh_token", c.ID, g))
				}
			}
			if c.SigningAlg != "" && c.SigningAlg != "HS256" {
				errs = append(errs, fmt.Errorf("client %q: signing_alg %q: only HS256 may be chosen", c.ID, c.SigningAlg))
			}
			if c.SigningAlg == "HS256" && !keys.HasHMAC() {
				errs = append(errs, fmt.Errorf("client %q: signing_alg HS256 needs an HMAC key (*.jwk) in the keys directory", c.ID))
			}
			if len(c.Grants) == 0 {
				c.Grants = []string{"password", "refresh_token"}
			}
			if c.Audience != "" && !slices.Contains(i.audience, c.Audience) {
				i.audience = append(i.audience, c.Audience)
			}
			i.clients[c.ID] = &c
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	// No cache for refresh tokens: each is presented about once, and a
	// removed signing key must retire its refresh tokens at once.
	rv, err := verifier.New(verifier.Config{CacheSize: -1, Issuers: []verifier.IssuerConfig{{
		Issuer: cfg.Issuer, Audiences: []string{cfg.Issuer}, Algorithms: SelfAlgorithms,
		Sources: []verifier.KeySource{keys}, Refresh: true,
	}}}, logger, verifier.WithClock(func() time.Time { return i.now() }))
	if err != nil {
		return nil, err
	}
	i.refresh = rv
	if i.clients == nil {
		i.logger.Warn("no clients configured: any client_id is accepted as a public client for password and refresh_token grants")
	}
	return i, nil
}

// SelfAlgorithms are the algorithms of tokens this issuer mints.
var SelfAlgorithms = []string{"ES256", "RS256", "EdDSA", "HS256"}

// Audiences lists every audience this issuer's access tokens may carry,
// for the verifier that trusts them.
func (i *Issuer) Audiences() []string { return slices.Clone(i.audience) }

// Tokens is the outcome of a grant.
type Tokens struct {
	Access, Refresh, ID        string
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
	Scope        string
	PartnerID    string // the partnerId query parameter (003)
	Profile      string // a profile of the user (profile tokens)
}

// authenticateClient finds the client and checks its secret.
func (i *Issuer) authenticateClient(g *grant) (*Client, error) {
	if g.ClientID == "" {
		// The JSON:API dialect (000/001) sends no client_id.
		g.ClientID = "anonymous"
	}
	if i.clients == nil {
		return &Client{ID: g.ClientID, Grants: []string{"password", "refresh_token"}}, nil
	}
	c := i.clients[g.ClientID]
	if c == nil {
		// Compare anyway, so unknown clients cost what known ones do.
		secretsEqual(g.ClientSecret, "unknown-client")
		return nil, fmt.Errorf("%w: unknown client", ErrInvalidClient)
	}
	if c.Secret != "" && !secretsEqual(g.ClientSecret, c.Secret) {
		return nil, fmt.Errorf("%w: bad client credentials", ErrInvalidClient)
	}
	if !slices.Contains(c.Grants, g.Type) {
		return nil, fmt.Errorf("%w: grant %s is not allowed for this client", ErrUnauthorizedClient, g.Type)
	}
	return c, nil
}

// secretsEqual compares in constant time, also in length.
func secretsEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Exchange runs a grant and mints tokens.
func (i *Issuer) Exchange(ctx context.Context, g *grant) (*Tokens, error) {
	switch g.Type {
	case "password", "refresh_token":
	case "":
		return nil, fmt.Errorf("%w: grant_type is required", ErrInvalidRequest)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedGrantType, g.Type)
	}
	client, err := i.authenticateClient(g)
	if err != nil {
		return nil, err
	}
	if g.Type == "password" {
		return i.passwordGrant(ctx, client, g)
	}
	return i.refreshGrant(ctx, client, g)
}

func (i *Issuer) passwordGrant(ctx context.Context, client *Client, g *grant) (*Tokens, error) {
	if g.Username == "" || g.Password == "" {
		return nil, fmt.Errorf("%w: username (or email) and password are required", ErrInvalidRequest)
	}
	scope, err := i.scope(client, g.Scope, "")
	if err != nil {
		return nil, err
	}
	select {
	case i.logins <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	user, err := i.users.Authenticate(ctx, g.Username, []byte(g.Password))
	<-i.logins
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	if errors.Is(err, identity.ErrBackend) {
		return nil, fmt.Errorf("%w: the login backend is unavailable: %w", ErrUnavailable, err)
	}
	if err != nil && !errors.Is(err, identity.ErrInvalidCredentials) {
		return nil, fmt.Errorf("check password: %w", err) // a server fault, not a wrong password
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGrant, errBadCredentials)
	}
	if !partnerMatches(user, client, g.PartnerID) {
		// Worded like bad credentials: do not confirm the account exists.
		return nil, fmt.Errorf("%w: %w", ErrInvalidGrant, errPartnerMismatch)
	}
	profile := user.DefaultProfile()
	if g.Profile != "" {
		if !user.HasProfile(g.Profile) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGrant, errUnknownProfile)
		}
		profile = g.Profile
	}
	return i.mint(client, user, scope, profile, newID())
}

// partnerMatches checks the partnerId query parameter and the client's
// partner against the user's.
func partnerMatches(u *identity.User, c *Client, partnerID string) bool {
	if partnerID != "" && partnerID != u.PartnerID {
		return false
	}
	return c.PartnerID == "" || c.PartnerID == u.PartnerID
}

// refreshGrant renews a pair. The new pair keeps user, profile, client,
// scope and session; a new refresh token restarts its lifetime. This is the
// seam where a session store will make refresh tokens one-time.
func (i *Issuer) refreshGrant(ctx context.Context, client *Client, g *grant) (*Tokens, error) {
	if g.RefreshToken == "" {
		return nil, fmt.Errorf("%w: refresh_token is required", ErrInvalidRequest)
	}
	tok, err := i.refresh.Verify(ctx, g.RefreshToken)
	if err != nil {
		return nil, fmt.Errorf("%w: refresh token %s", ErrInvalidGrant, verifier.Reason(err))
	}
	claim := func(name string) string { s, _ := tok.Claims[name].(string); return s }
	if claim("client_id") != client.ID {
		return nil, fmt.Errorf("%w: refresh token was issued to another client", ErrInvalidGrant)
	}
	user, err := i.users.Lookup(ctx, tok.Subject)
	if errors.Is(err, identity.ErrBackend) {
		return nil, fmt.Errorf("%w: the user backend is unavailable: %w", ErrUnavailable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: user no longer exists", ErrInvalidGrant)
	}
	scope, err := i.scope(client, g.Scope, claim("scope"))
	if err != nil {
		return nil, err
	}
	profile := claim("profile")
	if profile != "" && !user.HasProfile(profile) {
		profile = user.DefaultProfile()
	}
	return i.mint(client, user, scope, profile, claim("sid"))
}

// scope returns the granted scope: the request's (or, on refresh, the
// original grant's), which must be within the client's and, on refresh,
// within the original.
func (i *Issuer) scope(c *Client, requested, original string) (string, error) {
	want := strings.Fields(requested)
	if len(want) == 0 {
		want = strings.Fields(original)
	}
	if len(want) == 0 {
		want = strings.Fields(i.cfg.DefaultScope)
	}
	for _, s := range want {
		if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, s) {
			return "", fmt.Errorf("%w: %q is not allowed for this client", ErrInvalidScope, s)
		}
		if original != "" && !slices.Contains(strings.Fields(original), s) {
			return "", fmt.Errorf("%w: %q was not granted originally", ErrInvalidScope, s)
		}
	}
	return strings.Join(slices.Compact(want), " "), nil
}

// mint signs an access token, a refresh token and, for openid, an ID token.
func (i *Issuer) mint(c *Client, u *identity.User, scope, profile, sid string) (*Tokens, error) {
	now := i.now().Truncate(time.Second)
	accessTTL, refreshTTL := i.cfg.AccessTTL, i.cfg.RefreshTTL
	if c.AccessTTL > 0 {
		accessTTL = c.AccessTTL
	}
	if c.RefreshTTL > 0 {
		refreshTTL = c.RefreshTTL
	}
	aud := i.cfg.Audience
	if c.Audience != "" {
		aud = c.Audience
	}
	access := jwt.MapClaims{}
	for k, v := range u.Claims {
		access[k] = v
	}
	for k, v := range map[string]any{
		"iss": i.cfg.Issuer, "sub": u.ID, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(accessTTL).Unix(), "jti": newID(), "client_id": c.ID, "scope": scope,
		"type": "access", "sid": sid,
	} {
		access[k] = v
	}
	setIf(access, "profile", profile)
	setIf(access, "email", u.Email)
	setIf(access, "preferred_username", u.Username)
	setIf(access, "role", u.Role)
	setIf(access, "partnerId", u.PartnerID)
	t := &Tokens{ClientID: c.ID, IssuedAt: now, AccessExpires: now.Add(accessTTL), RefreshExp: now.Add(refreshTTL), Scope: scope,
		SessionID: sid, Profile: profile, User: u, AccessTTL: accessTTL, RefreshLifetime: refreshTTL}
	legacy := c.SigningAlg == "HS256"
	var err error
	if t.Access, err = i.keys.sign(access, "at+jwt", legacy); err != nil {
		return nil, err
	}
	refresh := jwt.MapClaims{
		"iss": i.cfg.Issuer, "sub": u.ID, "aud": i.cfg.Issuer, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(refreshTTL).Unix(), "jti": newID(), "client_id": c.ID, "scope": scope,
		"type": "refresh", "sid": sid,
	}
	setIf(refresh, "profile", profile)
	if t.Refresh, err = i.keys.sign(refresh, "JWT", legacy); err != nil {
		return nil, err
	}
	if slices.Contains(strings.Fields(scope), "openid") {
		id := jwt.MapClaims{
			"iss": i.cfg.Issuer, "sub": u.ID, "aud": c.ID, "iat": now.Unix(), "exp": now.Add(accessTTL).Unix(),
			"auth_time": now.Unix(), "sid": sid, "azp": c.ID,
		}
		setIf(id, "email", u.Email)
		setIf(id, "preferred_username", u.Username)
		if t.ID, err = i.keys.sign(id, "JWT", legacy); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func setIf(c jwt.MapClaims, k, v string) {
	if v != "" {
		c[k] = v
	}
}

// newID returns a random identifier (UUID v4 format: the source documents'
// session and token ids look like this).
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
