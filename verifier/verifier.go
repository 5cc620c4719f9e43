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

// Default MaxLifetime of an issuer: a day for access tokens; thirty days
// (the issuer package's default refresh lifetime) for refresh tokens, which
// live longer by design.
const (
	defaultMaxLifetime        = 24 * time.Hour
	defaultRefreshMaxLifetime = 720 * time.Hour
)

// maxNumericDate is 9999-12-31T23:59:59Z. A NumericDate beyond it (or
// before 1970) is refused rather than converted: time.Unix of a huge float
// overflows int64 and lands in the past, which would make a far-future nbf
// or iat pass.
const maxNumericDate = 253402300799

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
	// CacheSize bounds the verified-token cache, in tokens. Zero means
	// 100000, a replica's share of a large fleet; negative disables the
	// cache; more than 2³⁰ is 2³⁰. A token like tollgate's own, with the
	// proxy's header values, takes about 0.35 KiB with no claims kept
	// (CachedClaims nil), almost all of it outside the Go heap (see
	// OffHeapLimit) and mapped as tokens are cached; about 1 KiB of heap
	// with ten claims kept (tokens cached before a Memo consumer such as
	// the proxy first used one keep every claim until it uses them). The
	// index takes 30 bytes per token of CacheSize, allocated up front (3
	// MiB at the default). An entry lives until its token expires, the
	// remote key set that verified it changes or goes stale, KeysChanged
	// is called, or the cache needs its room for a token used more often
	// or more recently.
	CacheSize int
	// CachedClaims names the claims a Token served from the cache keeps in
	// Claims, for consumers that read claims by name; a token from a full
	// verification holds every claim either way. Nil or empty keeps none:
	// a cached token's Claims is then nil, and its consumers MUST use the
	// typed fields (SessionID, …), HasScope, HasRole and Memo instead, or
	// VerifyUncached — a session check reading Claims["sid"] would find no
	// session, and let a revoked one pass. tollgate's own consumers keep
	// none; the claims map is most of what a cached token would cost.
	CachedClaims []string
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
	// MaxLifetime bounds how long a token of this issuer may live: exp − iat,
	// or, for a token without iat, exp − now, beyond the leeway. A token
	// minted to live longer is refused (ErrLifetime) even though it is
	// signed: a long-lived token is a leaked token that cannot be retired.
	// Zero means 24 hours, or 720 hours for a Refresh issuer. Negative is a
	// configuration error.
	MaxLifetime time.Duration
	// Constrain, if not nil, is called with every token of this issuer
	// after its signature has verified and before it is cached or
	// returned, so a cached token is the constrained one. It may narrow
	// tok.Claims — drop scopes that, say, an HS256 token (tok.Algorithm())
	// must not confer — or refuse the token by returning an error that
	// wraps one of this package's sentinels (an error that wraps none is
	// refused as ErrMalformed). The fields derived from the claims
	// (Subject, Audience, …) are not recomputed. It must be safe for
	// concurrent use and must not keep tok.
	Constrain func(tok *Token) error
}

// Option configures optional Verifier behaviour.
type Option func(*options)

type options struct {
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	client   *http.Client
	observer Observer
}

func defaultOptions() options {
	return options{now: time.Now, after: time.After, observer: nopObserver{}}
}

// WithClock sets the time source; tests use it to move time without
// sleeping.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTimer sets how the remote key sets wait: for their next refresh or
// retry, and a lookup for the fetch it asked for. after(d) must return a
// channel that receives once d has passed on the clock set by WithClock.
// The default is time.After; tests pair it with WithClock to fire timers
// without sleeping.
func WithTimer(after func(d time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.after = after }
}

// WithHTTPClient sets the client used for JWKS fetches. Each fetch is
// bounded by its RemoteConfig.Timeout, and by c.Timeout too if that is
// shorter. The default client has no timeout of its own.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithObserver receives key-set events, for metrics.
func WithObserver(obs Observer) Option { return func(o *options) { o.observer = obs } }

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
	refresh     bool
	name        string
	audiences   []string
	algs        []string
	sources     []KeySource
	maxLifetime time.Duration
	constrain   func(*Token) error
	// origins holds the origin of a token signed with algs[i] naming
	// just audiences[j], at i×len(audiences)+j, shared by all such tokens.
	origins []origin
}

// New builds a Verifier. Key files are read here; remote JWKS are fetched
// only once Run is called. Every configuration problem is reported at once.
func New(cfg Config, logger *zap.Logger, opts ...Option) (*Verifier, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.observer == nil {
		o.observer = nopObserver{}
	}
	if o.client == nil {
		// No Timeout: each remote's RemoteConfig.Timeout bounds its fetches.
		o.client = &http.Client{}
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
	size := cfg.CacheSize
	if size == 0 {
		size = 100_000
	}
	if size > 0 {
		v.cache = newTokenCache(size, v.maxBytes, cfg.Leeway, slices.Clone(cfg.CachedClaims))
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
	if v.cache != nil {
		var origins []*origin
		for _, ic := range cfg.Issuers {
			for i := range v.issuers[ic.Issuer].origins {
				origins = append(origins, &v.issuers[ic.Issuer].origins[i])
			}
		}
		v.cache.setOrigins(origins)
		v.cache.setRemotes(v.remotes)
	}
	return v, nil
}

// KeysChanged tells the verifier that an in-process key source changed:
// every cached token is verified again on its next use. Owners of
// in-process sources call it after a reload. Remote key sets need no call:
// a fetch that changes a Remote's keys retires only the cached tokens that
// Remote's keys verified.
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
	maxLifetime := ic.MaxLifetime
	switch {
	case maxLifetime < 0:
		errs = append(errs, errors.New("max lifetime must not be negative"))
	case maxLifetime == 0 && ic.Refresh:
		maxLifetime = defaultRefreshMaxLifetime
	case maxLifetime == 0:
		maxLifetime = defaultMaxLifetime
	}
	iss := &issuer{name: ic.Issuer, audiences: ic.Audiences, algs: algs, sources: ic.Sources, refresh: ic.Refresh,
		maxLifetime: maxLifetime, constrain: ic.Constrain}
	for _, alg := range algs {
		for _, a := range ic.Audiences {
			iss.origins = append(iss.origins, origin{issuer: ic.Issuer, algorithm: alg, audience: []string{a}})
		}
	}
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
		r := newRemote(rc, algs, logger, o)
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
// It stays true when keys later go stale (see Status): every replica's keys
// go stale together, and failing readiness on all of them at once would be
// an outage of its own.
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

// Status reports the state of every remote key set, in configuration
// order, for a readiness report: a reason in words when a set is not ready,
// stale or failing.
func (v *Verifier) Status() []RemoteStatus {
	out := make([]RemoteStatus, len(v.remotes))
	for i, r := range v.remotes {
		out[i] = r.Status()
	}
	return out
}

// Verify checks raw and returns its claims. Errors wrap the package's
// sentinels; several claim failures are joined.
//
// A token verified before is answered from the cache while that
// verification stands (see Config.CacheSize): a hit allocates nothing and
// returns the Token it returned before, or the cached form of it, whose
// Claims holds only what Config.CachedClaims keeps — by default nothing.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	tok, _, err := v.verify(ctx, raw, true)
	return tok, err
}

// VerifyCached is Verify that also reports whether the cache answered,
// for the trace of a request.
func (v *Verifier) VerifyCached(ctx context.Context, raw string) (tok *Token, hit bool, err error) {
	return v.verify(ctx, raw, true)
}

// VerifyUncached checks raw in full, signature included, even if it is
// cached, and returns a Token holding every claim (Constrain applied):
// for consumers off the hot path that read claims Config.CachedClaims
// does not keep. The verification is cached as Verify's would be.
func (v *Verifier) VerifyUncached(ctx context.Context, raw string) (*Token, error) {
	tok, _, err := v.verify(ctx, raw, false)
	return tok, err
}

// verify is Verify, VerifyCached and VerifyUncached (useCache false); hit
// reports an answer from the cache.
func (v *Verifier) verify(ctx context.Context, raw string, useCache bool) (*Token, bool, error) {
	if len(raw) > v.maxBytes {
		return nil, false, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, v.maxBytes)
	}
	var gen uint64
	var tag tokenTag
	cacheable := false
	switch {
	case v.cache != nil && useCache:
		gen = v.gen.Load()
		var tok *Token
		var expired bool
		if tok, tag, cacheable, expired = v.cache.lookup(raw, v.now(), gen); tok != nil {
			return tok, true, nil
		} else if expired {
			return nil, false, errCachedExpired
		}
	case v.cache != nil:
		gen = v.gen.Load()
		tag, cacheable = v.cache.tags.tag(raw)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, false, fmt.Errorf("%w: want three dot-separated segments", ErrMalformed)
	}
	claims := jwt.MapClaims{}
	var tok *Token
	var used *keyUse
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		var err error
		tok, err = v.checkClaims(t.Header, claims)
		if err != nil {
			return nil, err
		}
		var key any
		key, used, err = v.keyFor(ctx, tok.Issuer(), t.Header)
		return key, err
	})
	if err != nil {
		return nil, false, mapError(err)
	}
	if constrain := v.issuers[tok.Issuer()].constrain; constrain != nil {
		if err := constrain(tok); err != nil {
			var own *Error
			if !errors.As(err, &own) {
				return nil, false, fmt.Errorf("%w: constrain: %w", ErrMalformed, err)
			}
			return nil, false, fmt.Errorf("verifier: constrain: %w", err)
		}
	}
	tok.setGrants()
	if cacheable {
		v.cache.hot.store(raw, v.cache.put(&tag, tok, used, gen))
	}
	return tok, false, nil
}

// checkClaims runs every cheap check on an unverified token: critical
// header extensions, issuer, algorithm, times, lifetime, audience, type and
// subject.
func (v *Verifier) checkClaims(header map[string]any, c jwt.MapClaims) (*Token, error) {
	if err := checkCrit(header); err != nil {
		return nil, err
	}
	alg, _ := header["alg"].(string)
	issName, ok := c["iss"].(string)
	if !ok {
		return nil, fmt.Errorf("%w: iss missing or not a string", ErrMalformed)
	}
	iss := v.issuers[issName]
	if iss == nil {
		return nil, ErrWrongIssuer
	}
	i := slices.Index(iss.algs, alg)
	if i < 0 {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	tok := &Token{Claims: c}
	var errs []error
	now := v.now()
	exp, expErr := numericDate(c, "exp")
	switch {
	case expErr != nil:
		errs = append(errs, expErr)
	case exp.IsZero():
		errs = append(errs, fmt.Errorf("%w: exp missing", ErrMalformed))
	case !now.Before(exp.Add(v.leeway)):
		errs = append(errs, ErrExpired)
	}
	tok.exp, tok.iat = exp.UnixMilli(), noTime
	var iat time.Time
	var iatErr error
	for _, name := range []string{"nbf", "iat"} {
		t, err := numericDate(c, name)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !t.IsZero() && now.Add(v.leeway).Before(t):
			errs = append(errs, fmt.Errorf("%w: %s in the future", ErrNotYetValid, name))
		}
		if name == "iat" {
			iat, iatErr = t, err
		}
	}
	if !iat.IsZero() {
		tok.iat = iat.UnixMilli()
	}
	if expErr == nil && iatErr == nil && !exp.IsZero() {
		from := iat
		if from.IsZero() {
			from = now
		}
		// d > maxLifetime ≥ 0, so d − maxLifetime cannot overflow.
		if d := exp.Sub(from); d > iss.maxLifetime && d-iss.maxLifetime > v.leeway {
			errs = append(errs, fmt.Errorf("%w: %v, at most %v", ErrLifetime, d, iss.maxLifetime))
		}
	}
	aud, err := stringList(c["aud"])
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("%w: aud: %v", ErrMalformed, err))
	case !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(iss.audiences, a) }):
		errs = append(errs, ErrWrongAudience)
	}
	// The configured strings, not the token's copies: a cached token then
	// holds no string of its own for them.
	if len(aud) == 1 {
		if j := slices.Index(iss.audiences, aud[0]); j >= 0 {
			tok.origin = &iss.origins[i*len(iss.audiences)+j]
		}
	}
	if tok.origin == nil {
		tok.origin = &origin{issuer: iss.name, algorithm: iss.algs[i], audience: aud}
	}
	check := checkType
	if iss.refresh {
		check = checkRefreshType
	}
	if err := check(header, c); err != nil {
		errs = append(errs, err)
	}
	// Every token names its subject: the proxy and the refresh grant act
	// on its behalf, and a token without one must not reach them.
	switch sub, ok := c["sub"].(string); {
	case !ok:
		errs = append(errs, fmt.Errorf("%w: sub missing or not a string", ErrMalformed))
	case sub == "":
		errs = append(errs, fmt.Errorf("%w: sub is empty", ErrMalformed))
	default:
		tok.Subject = sub
	}
	tok.SessionID, _ = c["sid"].(string)
	switch jti := c["jti"].(type) {
	case string:
		tok.ID = jti
	case nil:
	default:
		errs = append(errs, fmt.Errorf("%w: jti is not a string", ErrMalformed))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tok, nil
}

// checkCrit refuses a header with a crit parameter (RFC 7515 §4.1.11). crit
// lists extensions the recipient must understand to accept the token;
// tollgate understands none, so any crit at all makes the token one it
// must not accept — and a crit that is not a non-empty array of strings is
// malformed in itself.
func checkCrit(header map[string]any) error {
	v, ok := header["crit"]
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return fmt.Errorf("%w: crit is not a non-empty array", ErrMalformed)
	}
	for _, e := range list {
		if _, ok := e.(string); !ok {
			return fmt.Errorf("%w: crit holds a non-string", ErrMalformed)
		}
	}
	return fmt.Errorf("%w: crit names an extension this verifier does not understand", ErrMalformed)
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

// keyUse is what a cached verification depends on besides the verifier's
// own generation: the remote key sets that supplied candidate keys. It is
// immutable, and shared: a token verified with one remote set's keys uses
// that set's (remoteKeys.use).
type keyUse struct {
	// until is when the first of those sets stops being served (MaxStale).
	until time.Time
	// remotes are the sets, each with the generation whose keys were used.
	remotes []remoteGen
}

// remoteGen is a Remote and the generation of its key set.
type remoteGen struct {
	r   *Remote
	gen uint64
}

// keyFor returns the verification key (or key set) for a token whose claims
// have passed. The token's alg only filters keys; every key carries its own
// algorithms, fixed by its material and its issuer.
//
// It also returns which remote key sets supplied candidate keys, and when
// they stop being served, so that a cached verification ends when one of
// them changes or goes stale — and only then; nil if none did.
func (v *Verifier) keyFor(ctx context.Context, issName string, header map[string]any) (any, *keyUse, error) {
	alg, _ := header["alg"].(string)
	kid, _ := header["kid"].(string)
	iss := v.issuers[issName]
	var matches []jwt.VerificationKey
	var snaps []*remoteKeys
	var errs []error
	for _, src := range iss.sources {
		var keys []*Key
		var snap *remoteKeys
		var err error
		r, remote := src.(*Remote)
		if remote {
			keys, snap, err = r.keysOf(ctx, kid)
		} else {
			keys, err = src.Keys(ctx, kid)
		}
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
		if snap != nil && len(matches) > n {
			snaps = append(snaps, snap)
		}
	}
	used := keyUseOf(snaps)
	switch len(matches) {
	case 0:
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := errors.Join(errs...); err != nil {
			if errors.Is(err, ErrStaleKeys) {
				// A source knows the kid but may not serve its keys.
				return nil, nil, fmt.Errorf("verifier: kid %q alg %s: %w", kid, alg, err)
			}
			return nil, nil, fmt.Errorf("%w: kid %q alg %s: %w", ErrUnknownKey, kid, alg, err)
		}
		return nil, nil, fmt.Errorf("%w: kid %q alg %s", ErrUnknownKey, kid, alg)
	case 1:
		return matches[0], used, nil
	default:
		return jwt.VerificationKeySet{Keys: matches}, used, nil
	}
}

// keyUseOf is what a verification with keys from the remote snapshots
// depends on: nil for none, the snapshot's own for one.
func keyUseOf(snaps []*remoteKeys) *keyUse {
	switch len(snaps) {
	case 0:
		return nil
	case 1:
		return snaps[0].use
	}
	u := &keyUse{until: snaps[0].use.until}
	for _, s := range snaps {
		u.until = minTime(u.until, s.use.until)
		u.remotes = append(u.remotes, s.use.remotes...)
	}
	return u
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
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

// numericDate reads an optional NumericDate claim. A value before 1970 or
// after 9999 is malformed.
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
	if !(f >= 0 && f <= maxNumericDate) { // written so that NaN fails too
		return time.Time{}, fmt.Errorf("%w: %s out of range", ErrMalformed, name)
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
