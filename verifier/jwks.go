package verifier

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxRetryBackoff caps the delay between fetches while a Remote has no
// keys to serve (RemoteConfig.RetryBackoff).
const maxRetryBackoff = 30 * time.Second

// RemoteConfig configures one remote JWKS endpoint.
type RemoteConfig struct {
	// URL of the JWK Set. Required.
	URL string
	// RefreshInterval is how long the keys are kept before they are
	// re-fetched in the background, counted from the end of the last
	// fetch of any kind: a slow fetch does not make the next one follow
	// at once. It is also the cycle over which NewKIDFetches counts.
	// Zero means 15 minutes.
	RefreshInterval time.Duration
	// Cooldown is the minimum time between two fetches triggered by
	// unknown kids beyond the NewKIDFetches of a cycle, so that a flood of
	// made-up kids cannot hammer the key server. Zero means 5 seconds.
	Cooldown time.Duration
	// NewKIDFetches is how many distinct unknown kids may each trigger a
	// fetch per RefreshInterval without waiting for the Cooldown, so that
	// a key rotation is picked up at once even right after a stray token
	// caused a fetch. A kid triggers at most one such fetch per cycle, and
	// at most NewKIDFetches kids are remembered. Together with the
	// Cooldown this bounds the fetches unknown kids can cause in each
	// RefreshInterval-long cycle to NewKIDFetches +
	// RefreshInterval/Cooldown + 1, however many kids a flood makes up.
	// Zero means 32; negative means none (the Cooldown alone decides).
	NewKIDFetches int
	// LookupWait bounds how long a lookup for an unknown kid waits for
	// the fetch it asked for (or merged with). Past it the kid is treated
	// as unknown and the token refused; the fetch goes on, and a later
	// token with the kid finds its key. A lookup never waits for a
	// scheduled refresh or a retry: it answers from the keys held. Zero
	// means 1 second.
	LookupWait time.Duration
	// MaxStale is how long keys keep serving after the last successful
	// fetch while the endpoint is failing. Past it a token whose kid is in
	// the stale set is refused with ErrStaleKeys. Zero means 24 hours.
	MaxStale time.Duration
	// Timeout bounds one fetch, from connecting to reading the body. The
	// default HTTP client has no timeout of its own; a client given with
	// WithHTTPClient whose Timeout is shorter bounds fetches too. Zero
	// means 10 seconds.
	Timeout time.Duration
	// RetryBackoff is the delay before the fetch after a failed one while
	// the Remote has no keys to serve (none fetched yet, or past
	// MaxStale); it doubles after every further failure, up to 30 seconds
	// or the RefreshInterval, whichever is less. Zero means 1 second.
	RetryBackoff time.Duration
	// MaxBytes bounds the response body. Zero means 1 MiB.
	MaxBytes int64
}

func (c *RemoteConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RefreshInterval, 15*time.Minute)
	def(&c.Cooldown, 5*time.Second)
	def(&c.LookupWait, time.Second)
	def(&c.MaxStale, 24*time.Hour)
	def(&c.Timeout, 10*time.Second)
	def(&c.RetryBackoff, time.Second)
	if c.NewKIDFetches == 0 {
		c.NewKIDFetches = 32
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 20
	}
}

// Remote is a KeySource backed by a JWKS URL. All fetches happen in Run, on
// the owner's context: a lookup for an unknown kid only asks Run for a fetch
// and waits for its outcome (at most LookupWait), so many concurrent
// lookups cause one fetch.
//
// A Verifier whose issuer takes keys from a Remote remembers which of its
// key sets verified each cached token: a fetch that returns different keys
// retires those tokens (and no others); one that returns the same keys
// retires nothing.
type Remote struct {
	cfg      RemoteConfig
	allowed  []string
	client   *http.Client
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	logger   *zap.Logger
	observer Observer

	keys  atomic.Pointer[remoteKeys]
	kick  chan struct{} // capacity 1: holds a signal exactly while pending is queued
	ready chan struct{} // closed after the first successful fetch

	// stale mirrors staleReported for the lookup path, which reads it
	// without the lock.
	stale   atomic.Bool
	staleMu sync.Mutex
	// staleReported is whether the keys were last reported stale (logged
	// and observed); each change is reported once. Guarded by staleMu.
	staleReported bool

	mu sync.Mutex
	// pending is closed when the fetch requested for an unknown kid has
	// completed; nil when no such fetch is queued. Guarded by mu.
	pending chan struct{}
	// inflight is closed when the fetch now running completes; nil when
	// none runs. Guarded by mu.
	inflight chan struct{}
	// inflightForKIDs is whether the running fetch was requested by
	// unknown-kid lookups, which later ones may join; a scheduled refresh
	// or a retry (perhaps against a hanging endpoint) is not waited for.
	// Guarded by mu.
	inflightForKIDs bool
	// lastKick is when the last unknown-kid fetch was requested, for the
	// cooldown. Scheduled refreshes do not count, so a rotation right after
	// one is still picked up at once. Guarded by mu.
	lastKick time.Time
	// cycleStart is when the current NewKIDFetches cycle began; kids holds
	// the kids that requested a fetch in it, at most NewKIDFetches.
	// Guarded by mu.
	cycleStart time.Time
	kids       map[string]struct{}
	// lastErr is the error of the last fetch; nil after a success.
	// Guarded by mu.
	lastErr error
}

// remoteKeys is one immutable result of a successful fetch.
type remoteKeys struct {
	set       *KeySet
	fetchedAt time.Time
	// gen numbers the distinct key sets fetched: a fetch that returns the
	// same keys keeps it, so tokens verified with them stay cached.
	gen uint64
	// use is what a token verified with these keys alone depends on,
	// shared by all such cache entries.
	use *keyUse
}

var _ KeySource = (*Remote)(nil)

// NewRemote returns a Remote for cfg whose keys may verify the allowed
// algorithms. It fetches nothing until Run is called. A nil logger logs
// nothing. Of opts, WithClock, WithTimer, WithHTTPClient and WithObserver
// apply.
func NewRemote(cfg RemoteConfig, allowed []string, logger *zap.Logger, opts ...Option) *Remote {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return newRemote(cfg, allowed, logger, o)
}

func newRemote(cfg RemoteConfig, allowed []string, logger *zap.Logger, o options) *Remote {
	cfg.setDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	if o.observer == nil {
		o.observer = nopObserver{}
	}
	if o.client == nil {
		// No Timeout: cfg.Timeout bounds each fetch.
		o.client = &http.Client{}
	}
	return &Remote{
		cfg:      cfg,
		allowed:  allowed,
		client:   o.client,
		now:      o.now,
		after:    o.after,
		logger:   logger.With(zap.String("jwks_url", cfg.URL)),
		observer: o.observer,
		kick:     make(chan struct{}, 1),
		ready:    make(chan struct{}),
	}
}

// Keys implements KeySource. Keys older than MaxStale are not served: a
// kid they hold yields ErrStaleKeys. An unknown kid may request one fetch
// from Run and wait for it, within ctx and LookupWait; concurrent lookups
// share that fetch. A lookup that may not request one (the Cooldown and
// NewKIDFetches decide), or that finds a scheduled refresh or a retry
// running, is answered from the keys held at once.
func (r *Remote) Keys(ctx context.Context, kid string) ([]*Key, error) {
	keys, _, err := r.keysOf(ctx, kid)
	return keys, err
}

// keysOf is Keys, also returning the fetch result the keys were taken from
// (nil with no keys), whose generation a cached verification records.
func (r *Remote) keysOf(ctx context.Context, kid string) ([]*Key, *remoteKeys, error) {
	if keys, cur, err := r.cached(ctx, kid); len(keys) > 0 || err != nil || kid == "" {
		return keys, cur, err
	}
	r.mu.Lock()
	if keys, cur := r.fresh(kid); len(keys) > 0 { // a fetch finished meanwhile
		r.mu.Unlock()
		return keys, cur, nil
	}
	wait := r.pending // queued for unknown kids, not started: ours as well
	switch {
	case wait != nil:
	case r.inflight != nil && r.inflightForKIDs:
		// Asked for by other unknown kids, perhaps the same rotation's.
		wait = r.inflight
	case r.inflight != nil:
		// A scheduled refresh or a retry: the endpoint may be slow or
		// down, and this lookup did not ask for it.
		r.mu.Unlock()
		return r.cached(ctx, kid)
	case !r.mayKick(kid):
		r.mu.Unlock()
		r.observer.UnknownKIDSuppressed(ctx, r.cfg.URL)
		return r.cached(ctx, kid)
	default:
		r.pending = make(chan struct{})
		wait = r.pending
		select {
		case r.kick <- struct{}{}:
		default: // unreachable: refresh drains kick as it takes pending
		}
	}
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	select {
	case <-wait:
	case <-r.after(r.cfg.LookupWait):
		return nil, nil, fmt.Errorf("%w: no answer within %v", ErrFetch, r.cfg.LookupWait)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	return r.cached(ctx, kid)
}

// mayKick reports whether an unknown kid may request a fetch now, and if
// so records the request: any kid once the Cooldown has passed since the
// last request; within it, a kid that has not requested one in this
// cycle, while the cycle's NewKIDFetches last. r.mu must be held.
func (r *Remote) mayKick(kid string) bool {
	now := r.now()
	if r.kids == nil || now.Sub(r.cycleStart) >= r.cfg.RefreshInterval || now.Before(r.cycleStart) {
		r.kids, r.cycleStart = make(map[string]struct{}), now
	}
	_, seen := r.kids[kid]
	room := len(r.kids) < r.cfg.NewKIDFetches
	cooled := r.lastKick.IsZero() || now.Sub(r.lastKick) >= r.cfg.Cooldown
	if !cooled && (seen || !room) {
		return false
	}
	r.lastKick = now
	if !seen && room {
		r.kids[kid] = struct{}{}
	}
	return true
}

// cached answers a lookup from the keys held: the keys for kid and the
// fetch result they come from; ErrStaleKeys when the keys held are past
// MaxStale and hold kid (any key, for an empty kid); nothing otherwise.
func (r *Remote) cached(ctx context.Context, kid string) ([]*Key, *remoteKeys, error) {
	cur := r.keys.Load()
	if cur == nil {
		return nil, nil, nil
	}
	keys, _ := cur.set.Keys(context.Background(), kid)
	if !r.isStale(cur, r.now()) {
		return keys, cur, nil
	}
	r.reportStale(ctx, cur)
	if len(keys) == 0 {
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: %s last fetched at %s, more than %v ago", ErrStaleKeys,
		r.cfg.URL, cur.fetchedAt.Format(time.RFC3339), r.cfg.MaxStale)
}

// fresh returns the current keys for kid and the fetch result they come
// from, or nothing once that result is older than MaxStale.
func (r *Remote) fresh(kid string) ([]*Key, *remoteKeys) {
	cur := r.keys.Load()
	if cur == nil || r.isStale(cur, r.now()) {
		return nil, nil
	}
	keys, _ := cur.set.Keys(context.Background(), kid)
	return keys, cur
}

// isStale reports whether keys fetched as cur are no longer served at now.
func (r *Remote) isStale(cur *remoteKeys, now time.Time) bool {
	return now.Sub(cur.fetchedAt) > r.cfg.MaxStale
}

// reportStale logs and observes, once, that the keys fetched as cur have
// gone stale — unless a fetch has replaced them meanwhile.
func (r *Remote) reportStale(ctx context.Context, cur *remoteKeys) {
	if r.stale.Load() {
		return
	}
	r.staleMu.Lock()
	defer r.staleMu.Unlock()
	if r.staleReported || r.keys.Load() != cur {
		return
	}
	r.staleReported = true
	r.stale.Store(true)
	r.observer.KeysStale(ctx, r.cfg.URL, true)
	r.logger.Warn("jwks keys stale: tokens signed with them are refused until a fetch succeeds",
		zap.Time("last_success", cur.fetchedAt), zap.Duration("max_stale", r.cfg.MaxStale))
}

// reportFresh observes that a fetch has succeeded, and logs it once when
// the keys had been reported stale.
func (r *Remote) reportFresh(ctx context.Context) {
	r.staleMu.Lock()
	defer r.staleMu.Unlock()
	r.observer.KeysStale(ctx, r.cfg.URL, false)
	if r.staleReported {
		r.staleReported = false
		r.stale.Store(false)
		r.logger.Info("jwks keys fresh again")
	}
}

// generation numbers the key set now served; it changes only when a fetch
// returns different keys.
func (r *Remote) generation() uint64 {
	if cur := r.keys.Load(); cur != nil {
		return cur.gen
	}
	return 0
}

// Ready is closed once the first fetch has succeeded. It stays closed when
// the keys later go stale.
func (r *Remote) Ready() <-chan struct{} { return r.ready }

// RemoteStatus is the state of one remote JWK Set, for a readiness report.
type RemoteStatus struct {
	// URL is the JWK Set's address.
	URL string `json:"url"`
	// Ready reports that a fetch has succeeded at least once.
	Ready bool `json:"ready"`
	// Stale reports that the last successful fetch is older than MaxStale:
	// the keys are no longer served and their tokens are refused
	// (ErrStaleKeys) until a fetch succeeds.
	Stale bool `json:"stale"`
	// Keys is how many keys the last successful fetch returned.
	Keys int `json:"keys"`
	// LastSuccess is when a fetch last succeeded; zero if none has.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the error of the last fetch; empty if it succeeded or
	// none has completed.
	LastError string `json:"last_error,omitempty"`
	// Reason says in a sentence what the state means for tokens.
	Reason string `json:"reason"`
}

// Status reports the Remote's state.
func (r *Remote) Status() RemoteStatus {
	st := RemoteStatus{URL: r.cfg.URL}
	r.mu.Lock()
	if r.lastErr != nil {
		st.LastError = r.lastErr.Error()
	}
	r.mu.Unlock()
	cur := r.keys.Load()
	if cur != nil {
		st.Ready, st.Keys, st.LastSuccess = true, cur.set.Len(), cur.fetchedAt
		st.Stale = r.isStale(cur, r.now())
	}
	since := func() string { return st.LastSuccess.Format(time.RFC3339) }
	switch {
	case !st.Ready && st.LastError == "":
		st.Reason = "no keys yet: the first fetch has not completed"
	case !st.Ready:
		st.Reason = "no keys yet: " + st.LastError
	case st.Stale:
		st.Reason = fmt.Sprintf("keys stale: last fetched at %s, more than %v ago; tokens signed with them are refused", since(), r.cfg.MaxStale)
		if st.LastError != "" {
			st.Reason += "; last error: " + st.LastError
		}
	case st.LastError != "":
		st.Reason = fmt.Sprintf("serving %d keys fetched at %s; the last fetch failed: %s", st.Keys, since(), st.LastError)
	default:
		st.Reason = fmt.Sprintf("serving %d keys fetched at %s", st.Keys, since())
	}
	return st
}

// Run fetches the keys at once, then a RefreshInterval after each fetch
// and on every unknown-kid request, until ctx is done. While it has no
// keys to serve (none fetched yet, or past MaxStale), it retries failed
// fetches after RetryBackoff, doubling.
func (r *Remote) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		err := r.refresh(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := r.now()
		cur := r.keys.Load()
		wait := r.cfg.RefreshInterval
		if cur == nil || r.isStale(cur, now) {
			backoff = r.nextBackoff(backoff)
			wait = backoff
		} else {
			backoff = 0
			// Wake when the keys go stale, to report it and try again.
			wait = min(wait, cur.fetchedAt.Add(r.cfg.MaxStale).Sub(now)+time.Nanosecond)
		}
		if err != nil {
			r.logFailure(err, cur, now, wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.after(wait):
		case <-r.kick:
		}
	}
}

// nextBackoff returns the delay before the next retry after one of prev
// (zero for the first).
func (r *Remote) nextBackoff(prev time.Duration) time.Duration {
	limit := min(maxRetryBackoff, r.cfg.RefreshInterval)
	if prev == 0 {
		return min(r.cfg.RetryBackoff, limit)
	}
	return min(2*prev, limit)
}

// logFailure logs a failed fetch: what is served meanwhile, and when the
// next attempt is due.
func (r *Remote) logFailure(err error, cur *remoteKeys, now time.Time, next time.Duration) {
	fields := []zap.Field{zap.Error(err), zap.Duration("next_attempt_in", next)}
	switch {
	case cur == nil:
		r.logger.Warn("jwks fetch failed; no keys yet", fields...)
	case r.isStale(cur, now):
		r.logger.Warn("jwks fetch failed; keys stale", append(fields, zap.Time("last_success", cur.fetchedAt))...)
	default:
		r.logger.Warn("jwks fetch failed; serving cached keys", append(fields, zap.Time("last_success", cur.fetchedAt))...)
	}
}

// refresh performs one fetch and wakes the lookups that asked for it.
func (r *Remote) refresh(ctx context.Context) error {
	r.mu.Lock()
	done, forKIDs := r.pending, r.pending != nil
	if done == nil {
		done = make(chan struct{})
	}
	select {
	case <-r.kick: // this fetch answers the queued request
	default:
	}
	r.pending, r.inflight, r.inflightForKIDs = nil, done, forKIDs
	r.mu.Unlock()

	set, err := r.fetch(ctx)
	// The keys change and the fetch ends in one step under mu, so a lookup
	// sees either the old keys with the fetch running or the new ones
	// without.
	var prev, next *remoteKeys
	r.mu.Lock()
	if err == nil {
		prev, next = r.store(set)
	}
	r.inflight, r.lastErr = nil, err
	r.mu.Unlock()
	// The lookups that asked for the fetch wake once it is fully reported.
	defer close(done)
	if next != nil {
		if prev == nil {
			close(r.ready)
		}
		r.reportFresh(ctx)
		r.observer.KeysLoaded(ctx, r.cfg.URL, next.set.Len())
		r.logger.Debug("jwks fetched", zap.Int("keys", next.set.Len()), zap.Bool("changed", prev == nil || next.gen != prev.gen))
	} else if cur := r.keys.Load(); cur != nil && r.isStale(cur, r.now()) {
		r.reportStale(ctx, cur)
	}
	r.observer.JWKSFetch(ctx, r.cfg.URL, err)
	return err
}

// store serves a freshly fetched set, returning the result it replaces
// (nil for the first) and its own. Only Run stores r.keys.
func (r *Remote) store(set *KeySet) (prev, next *remoteKeys) {
	prev = r.keys.Load()
	next = &remoteKeys{set: set, fetchedAt: r.now(), gen: 1}
	if prev != nil {
		next.gen = prev.gen
		if !prev.set.equal(set) {
			next.gen++
		}
	}
	next.use = &keyUse{until: next.fetchedAt.Add(r.cfg.MaxStale), remotes: []remoteGen{{r, next.gen}}}
	r.keys.Store(next)
	return prev, next
}

func (r *Remote) fetch(ctx context.Context) (*KeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: status %d", ErrFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	if int64(len(body)) > r.cfg.MaxBytes {
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrFetch, r.cfg.MaxBytes)
	}
	keys, err := parseJWKS(body, r.allowed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	return NewKeySet(keys...), nil
}
