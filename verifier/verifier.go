package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate/tollgate/httpurl"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// defaultAlgorithms are the algorithms an issuer accepts when its config
// names none. HMAC is deliberately absent: it must be asked for by name.
var defaultAlgorithms = []string{"ES256", "RS256", "EdDSA"}

// supportedAlgorithms are the JWS algorithms the verifier knows how to check.
var supportedAlgorithms = []string{
	"ES256", "ES384", "ES512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"EdDSA",
	"HS256", "HS384", "HS512",
}

// Config configures a Verifier.
type Config struct {
	// Issuers lists every trusted issuer. At least one is required.
	Issuers []IssuerConfig
	// Leeway is the clock skew tolerated on exp, nbf and iat. Set-top box
	// clocks drift. Zero means no leeway.
	Leeway time.Duration
	// MaxTokenBytes bounds the length of a raw token. Zero means 8192.
	MaxTokenBytes int
	// CacheSize bounds the verified-token cache (entries; a token with its
	// claims takes 1–3 KiB). Zero means 10000; negative disables the cache.
	// An entry lives until its token expires or the keys change.
	CacheSize int
}

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	// Issuer is the exact iss value. Required.
	Issuer string
	// Audiences lists accepted aud values; a token must name at least one.
	// Required.
	Audiences []string
	// Algorithms lists the JWS algorithms accepted from this issuer. Empty
	// means ES256, RS256 and EdDSA. HS256/384/512 must be listed explicitly.
	Algorithms []string
	// KeyFiles are PEM, JWK or JWKS files or directories of them.
	KeyFiles []string
	// JWKSURLs are remote JWK Sets, refreshed in the background by Run.
	JWKSURLs []string
	// Remote tunes the JWKS fetching; its URL field is ignored.
	Remote RemoteConfig
	// Sources are in-process key sources, such as tollgate's own signing
	// keys, consulted without any network round trip.
	Sources []KeySource
	// Refresh makes this issuer's tokens acceptable only as refresh tokens
	// (claim type "refresh"), for the token endpoint's refresh grant. By
	// default only access tokens are accepted.
	Refresh bool
}

// Option configures optional Verifier behaviour.
type Option func(*options)

type options struct {
	now      func() time.Time
	client   *http.Client
	observer Observer
}

// WithClock sets the time source; tests use it to move time without
// sleeping.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithHTTPClient sets the client used for JWKS fetches. The default has a
// 10 second timeout.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithObserver receives key-set events, for metrics.
func WithObserver(obs Observer) Option { return func(o *options) { o.observer = obs } }

// Token is a verified access token.
type Token struct {
	Issuer    string
	Subject   string
	ID        string
	Audience  []string
	ExpiresAt time.Time
	IssuedAt  time.Time
	// Claims holds every claim; numbers are json.Number so that ids keep
	// their exact text.
	Claims map[string]any

	// memo holds one value derived from the token by its consumer (the
	// proxy's header values), so that a cache hit derives nothing.
	memo atomic.Pointer[memo]
}

type memo struct {
	key   any
	value any
}

// Memo returns fn(t), computed once per token for key. A Token is shared
// by every request that presents the same raw token while it is cached;
// the proxy keeps the token's upstream header values here. Values for
// another key are computed without being kept.
func (t *Token) Memo(key any, fn func(*Token) any) any {
	if m := t.memo.Load(); m != nil && m.key == key {
		return m.value
	}
	v := fn(t)
	t.memo.CompareAndSwap(nil, &memo{key: key, value: v})
	return v
}

// Verifier checks access tokens against a fixed set of trusted issuers.
// It is safe for concurrent use.
type Verifier struct {
	cache    *tokenCache // nil when disabled
	gen      atomic.Uint64
	issuers  map[string]*issuer
	remotes  []*Remote
	leeway   time.Duration
	maxBytes int
	now      func() time.Time
	parser   *jwt.Parser
}

type issuer struct {
	refresh   bool
	name      string
	audiences []string
	algs      []string
	sources   []KeySource
}

// New builds a Verifier. Key files are read here; remote JWKS are fetched
// only once Run is called. Every configuration problem is reported at once.
func New(cfg Config, logger *zap.Logger, opts ...Option) (*Verifier, error) {
	o := options{now: time.Now, observer: nopObserver{}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		o.client = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	logger = logger.Named("verifier")
	v := &Verifier{
		issuers:  make(map[string]*issuer, len(cfg.Issuers)),
		leeway:   cfg.Leeway,
		maxBytes: cfg.MaxTokenBytes,
		now:      o.now,
		// Claims are validated by Verifier itself, before any signature
		// work; numbers stay json.Number.
		parser: jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithJSONNumber()),
	}
	if v.maxBytes <= 0 {
		v.maxBytes = 8192
	}
	switch {
	case cfg.CacheSize == 0:
		v.cache = newTokenCache(10000)
	case cfg.CacheSize > 0:
		v.cache = newTokenCache(cfg.CacheSize)
	}
	var errs []error
	if len(cfg.Issuers) == 0 {
		errs = append(errs, errors.New("no trusted issuer configured"))
	}
	if cfg.Leeway < 0 {
		errs = append(errs, errors.New("leeway must not be negative"))
	}
	for i, ic := range cfg.Issuers {
		iss, remotes, err := newIssuer(ic, o, logger)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuer %d (%q): %w", i, ic.Issuer, err))
			continue
		}
		if _, dup := v.issuers[iss.name]; dup {
			errs = append(errs, fmt.Errorf("issuer %q configured twice", iss.name))
			continue
		}
		v.issuers[iss.name] = iss
		v.remotes = append(v.remotes, remotes...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	for _, r := range v.remotes {
		r.onChange = v.KeysChanged
	}
	return v, nil
}

// KeysChanged tells the verifier that a key source changed: cached tokens
// are verified again on their next use. Remote key sets call it after each
// successful fetch; owners of in-process sources call it after a reload.
func (v *Verifier) KeysChanged() { v.gen.Add(1) }

// CacheStats returns the verified-token cache's counters (zero when the
// cache is disabled).
func (v *Verifier) CacheStats() CacheStats {
	if v.cache == nil {
		return CacheStats{}
	}
	return v.cache.stats()
}

// errCachedExpired is returned for a cached token that has expired since.
var errCachedExpired = fmt.Errorf("%w: since it was cached", ErrExpired)

func newIssuer(ic IssuerConfig, o options, logger *zap.Logger) (*issuer, []*Remote, error) {
	var errs []error
	if ic.Issuer == "" {
		errs = append(errs, errors.New("issuer is empty"))
	}
	if len(ic.Audiences) == 0 {
		errs = append(errs, errors.New("no audience configured"))
	}
	algs := ic.Algorithms
	if len(algs) == 0 {
		algs = defaultAlgorithms
	}
	for _, a := range algs {
		if !slices.Contains(supportedAlgorithms, a) {
			errs = append(errs, fmt.Errorf("unsupported algorithm %q", a))
		}
	}
	if len(ic.KeyFiles)+len(ic.JWKSURLs)+len(ic.Sources) == 0 {
		errs = append(errs, errors.New("no key source (key files, JWKS URLs)"))
	}
	iss := &issuer{name: ic.Issuer, audiences: ic.Audiences, algs: algs, sources: ic.Sources, refresh: ic.Refresh}
	if len(ic.KeyFiles) > 0 {
		keys, err := loadKeyFiles(ic.KeyFiles, algs)
		if err != nil {
			errs = append(errs, err)
		} else {
			iss.sources = append(iss.sources, NewKeySet(keys...))
			o.observer.KeysLoaded(context.Background(), ic.Issuer, len(keys))
		}
	}
	var remotes []*Remote
	for _, u := range ic.JWKSURLs {
		if _, err := httpurl.Parse(u); err != nil {
			errs = append(errs, fmt.Errorf("JWKS URL: %w", err))
			continue
		}
		rc := ic.Remote
		rc.URL = u
		r := NewRemote(rc, algs, o.client, logger, o.now, o.observer)
		remotes = append(remotes, r)
		iss.sources = append(iss.sources, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return iss, remotes, nil
}

// Run keeps the remote key sets fresh until ctx is done.
func (v *Verifier) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range v.remotes {
		g.Go(func() error { return r.Run(ctx) })
	}
	return g.Wait()
}

// Ready reports whether every remote key set has been fetched at least once.
func (v *Verifier) Ready() bool {
	for _, r := range v.remotes {
		select {
		case <-r.Ready():
		default:
			return false
		}
	}
	return true
}

// Verify checks raw and returns its claims. Errors wrap the package's
// sentinels; several claim failures are joined.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, v.maxBytes)
	}
	var gen uint64
	if v.cache != nil {
		gen = v.gen.Load()
		tok, expired := v.cache.get(raw, v.now(), gen)
		if tok != nil {
			return tok, nil
		}
		if expired {
			return nil, errCachedExpired
		}
	}
	if strings.Count(raw, ".") != 2 {
		return nil, fmt.Errorf("%w: want three dot-separated segments", ErrMalformed)
	}
	claims := jwt.MapClaims{}
	var tok *Token
	var keysUntil time.Time // when the keys used stop being served; zero: never
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		var err error
		tok, err = v.checkClaims(t.Header, claims)
		if err != nil {
			return nil, err
		}
		var key any
		key, keysUntil, err = v.keyFor(ctx, tok.Issuer, t.Header)
		return key, err
	})
	if err != nil {
		return nil, mapError(err)
	}
	if v.cache != nil {
		v.cache.put(raw, tok, tok.ExpiresAt.Add(v.leeway), keysUntil, gen, v.now())
	}
	return tok, nil
}

// checkClaims runs every cheap check on an unverified token: issuer,
// algorithm, times, audience and type.
func (v *Verifier) checkClaims(header map[string]any, c jwt.MapClaims) (*Token, error) {
	alg, _ := header["alg"].(string)
	issName, ok := c["iss"].(string)
	if !ok {
		return nil, fmt.Errorf("%w: iss missing or not a string", ErrMalformed)
	}
	iss := v.issuers[issName]
	if iss == nil {
		return nil, ErrWrongIssuer
	}
	if !slices.Contains(iss.algs, alg) {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	tok := &Token{Issuer: issName, Claims: c}
	var errs []error
	now := v.now()
	exp, err := numericDate(c, "exp")
	switch {
	case err != nil:
		errs = append(errs, err)
	case exp.IsZero():
		errs = append(errs, fmt.Errorf("%w: exp missing", ErrMalformed))
	case !now.Before(exp.Add(v.leeway)):
		errs = append(errs, ErrExpired)
	}
	tok.ExpiresAt = exp
	for _, name := range []string{"nbf", "iat"} {
		t, err := numericDate(c, name)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !t.IsZero() && now.Add(v.leeway).Before(t):
			errs = append(errs, fmt.Errorf("%w: %s in the future", ErrNotYetValid, name))
		}
		if name == "iat" {
			tok.IssuedAt = t
		}
	}
	aud, err := stringList(c["aud"])
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("%w: aud: %v", ErrMalformed, err))
	case !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(iss.audiences, a) }):
		errs = append(errs, ErrWrongAudience)
	}
	tok.Audience = aud
	check := checkType
	if iss.refresh {
		check = checkRefreshType
	}
	if err := check(header, c); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"sub", &tok.Subject}, {"jti", &tok.ID}} {
		switch s := c[f.name].(type) {
		case string:
			*f.dst = s
		case nil:
		default:
			errs = append(errs, fmt.Errorf("%w: %s is not a string", ErrMalformed, f.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tok, nil
}

// checkType accepts a token whose header typ is at+jwt (RFC 9068) or whose
// type claim is "access". A token that says it is anything else — refresh,
// id — is refused even if the other marker looks right.
func checkType(header map[string]any, c jwt.MapClaims) error {
	typ, _ := header["typ"].(string)
	typ = strings.ToLower(strings.TrimPrefix(strings.ToLower(typ), "application/"))
	claim, hasClaim := c["type"]
	switch {
	case hasClaim && claim != "access":
		return fmt.Errorf("%w: type claim %q", ErrWrongType, fmt.Sprint(claim))
	case typ != "" && typ != "jwt" && typ != "at+jwt":
		return fmt.Errorf("%w: typ %q", ErrWrongType, typ)
	case typ == "at+jwt" || hasClaim:
		return nil
	default:
		return fmt.Errorf("%w: neither typ at+jwt nor type access", ErrWrongType)
	}
}

// checkRefreshType accepts only a token whose type claim is "refresh" and
// whose header typ, if any, is plain JWT.
func checkRefreshType(header map[string]any, c jwt.MapClaims) error {
	typ, _ := header["typ"].(string)
	if c["type"] != "refresh" || (typ != "" && !strings.EqualFold(typ, "jwt")) {
		return fmt.Errorf("%w: not a refresh token", ErrWrongType)
	}
	return nil
}

// keyFor returns the verification key (or key set) for a token whose claims
// have passed. The token's alg only filters keys; every key carries its own
// algorithms, fixed by its material and its issuer.
//
// It also returns when the keys it used stop being served (a remote set's
// MaxStale), so that a cached verification ends then too.
func (v *Verifier) keyFor(ctx context.Context, issName string, header map[string]any) (any, time.Time, error) {
	alg, _ := header["alg"].(string)
	kid, _ := header["kid"].(string)
	iss := v.issuers[issName]
	var matches []jwt.VerificationKey
	var until time.Time
	var errs []error
	for _, src := range iss.sources {
		keys, err := src.Keys(ctx, kid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := len(matches)
		for _, k := range keys {
			if k.allows(alg) {
				matches = append(matches, k.Public)
			}
		}
		if st, ok := src.(staleSource); ok && len(matches) > n {
			if u := st.servedUntil(); !u.IsZero() && (until.IsZero() || u.Before(until)) {
				until = u
			}
		}
	}
	switch len(matches) {
	case 0:
		if err := ctx.Err(); err != nil {
			return nil, until, err
		}
		if err := errors.Join(errs...); err != nil {
			return nil, until, fmt.Errorf("%w: kid %q alg %s: %w", ErrUnknownKey, kid, alg, err)
		}
		return nil, until, fmt.Errorf("%w: kid %q alg %s", ErrUnknownKey, kid, alg)
	case 1:
		return matches[0], until, nil
	default:
		return jwt.VerificationKeySet{Keys: matches}, until, nil
	}
}

// staleSource is a key source whose keys stop being served at some time.
type staleSource interface {
	servedUntil() time.Time
}

// mapError turns golang-jwt errors into this package's sentinels, keeping
// any sentinel already present.
func mapError(err error) error {
	var own *Error
	switch {
	case errors.As(err, &own):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// golang-jwt could not find the alg (e.g. "none" or unknown).
		return fmt.Errorf("%w: %v", ErrAlgorithm, err)
	default:
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
}

// numericDate reads an optional NumericDate claim.
func numericDate(c jwt.MapClaims, name string) (time.Time, error) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
}

// stringList reads a claim that is a string or an array of strings.
func stringList(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("array element is not a string")
			}
			out = append(out, s)
		}
		return out, nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("unexpected %T", v)
	}
}
