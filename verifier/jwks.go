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

// RemoteConfig configures one remote JWKS endpoint.
type RemoteConfig struct {
	// URL of the JWK Set. Required.
	URL string
	// RefreshInterval is how often keys are re-fetched in the background.
	// Zero means 15 minutes.
	RefreshInterval time.Duration
	// Cooldown is the minimum time between two fetches triggered by an
	// unknown kid, so that a flood of made-up kids cannot hammer the key
	// server. Zero means 30 seconds.
	Cooldown time.Duration
	// MaxStale is how long keys keep serving after the last successful
	// fetch while the endpoint is failing. Zero means 24 hours.
	MaxStale time.Duration
	// Timeout bounds one fetch. Zero means 10 seconds.
	Timeout time.Duration
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
	def(&c.Cooldown, 30*time.Second)
	def(&c.MaxStale, 24*time.Hour)
	def(&c.Timeout, 10*time.Second)
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 20
	}
}

// Remote is a KeySource backed by a JWKS URL. All fetches happen in Run, on
// the owner's context: a lookup for an unknown kid only asks Run for a fetch
// and waits for its outcome, so many concurrent lookups cause one fetch.
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
	logger   *zap.Logger
	observer Observer

	keys  atomic.Pointer[remoteKeys]
	kick  chan struct{} // capacity 1: pending fetch requests merge
	ready chan struct{} // closed after the first successful fetch

	mu sync.Mutex
	// pending is closed when the fetch requested for an unknown kid has
	// completed; nil when no such fetch is pending. Guarded by mu.
	pending chan struct{}
	// inflight is closed when the fetch now running completes; nil when
	// none runs. Guarded by mu.
	inflight chan struct{}
	// lastKick is when the last unknown-kid fetch was requested, for the
	// cooldown. Scheduled refreshes do not count, so a rotation right after
	// one is still picked up at once. Guarded by mu.
	lastKick time.Time
}

// remoteKeys is one immutable result of a successful fetch.
type remoteKeys struct {
	set       *KeySet
	fetchedAt time.Time
	// gen numbers the distinct key sets fetched: a fetch that returns the
	// same keys keeps it, so tokens verified with them stay cached.
	gen uint64
}

var _ KeySource = (*Remote)(nil)

// NewRemote returns a Remote for cfg whose keys may verify the allowed
// algorithms. It fetches nothing until Run is called. A nil logger logs
// nothing; a nil observer observes nothing.
func NewRemote(cfg RemoteConfig, allowed []string, client *http.Client, logger *zap.Logger, now func() time.Time, observer Observer) *Remote {
	cfg.setDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	if observer == nil {
		observer = nopObserver{}
	}
	return &Remote{
		cfg:      cfg,
		allowed:  allowed,
		client:   client,
		now:      now,
		logger:   logger.With(zap.String("jwks_url", cfg.URL)),
		observer: observer,
		kick:     make(chan struct{}, 1),
		ready:    make(chan struct{}),
	}
}

// Keys implements KeySource. Keys older than MaxStale are not served. An
// unknown kid requests one fetch from Run and waits for it within ctx;
// concurrent lookups share that fetch. Within Cooldown of the last such
// request, an unknown kid is answered from the cache at once.
func (r *Remote) Keys(ctx context.Context, kid string) ([]*Key, error) {
	keys, _, err := r.keysOf(ctx, kid)
	return keys, err
}

// keysOf is Keys, also returning the fetch result the keys were taken from
// (nil with no keys), whose generation a cached verification records.
func (r *Remote) keysOf(ctx context.Context, kid string) ([]*Key, *remoteKeys, error) {
	if keys, cur := r.fresh(kid); len(keys) > 0 || kid == "" {
		return keys, cur, nil
	}
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		if keys, cur := r.fresh(kid); len(keys) > 0 { // a fetch finished meanwhile
			r.mu.Unlock()
			return keys, cur, nil
		}
		wait, joined := r.pending, false
		if wait == nil && r.inflight != nil && attempt == 0 {
			// A fetch is running; its result may hold the kid. If it does
			// not (it may have started before the key was published), ask
			// for a fetch of our own on the next attempt.
			wait, joined = r.inflight, true
		}
		if wait == nil {
			now := r.now()
			if !r.lastKick.IsZero() && now.Sub(r.lastKick) < r.cfg.Cooldown {
				r.mu.Unlock()
				r.observer.UnknownKIDSuppressed(ctx, r.cfg.URL)
				return nil, nil, nil
			}
			r.lastKick = now
			r.pending = make(chan struct{})
			wait = r.pending
			select {
			case r.kick <- struct{}{}:
			default: // Run already has a fetch request queued
			}
		}
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if !joined {
			keys, cur := r.fresh(kid)
			return keys, cur, nil
		}
	}
}

// fresh returns the current keys for kid and the fetch result they come
// from, or nothing once that result is older than MaxStale.
func (r *Remote) fresh(kid string) ([]*Key, *remoteKeys) {
	cur := r.keys.Load()
	if cur == nil || r.now().Sub(cur.fetchedAt) > r.cfg.MaxStale {
		return nil, nil
	}
	keys, _ := cur.set.Keys(context.Background(), kid)
	return keys, cur
}

// generation numbers the key set now served; it changes only when a fetch
// returns different keys.
func (r *Remote) generation() uint64 {
	if cur := r.keys.Load(); cur != nil {
		return cur.gen
	}
	return 0
}

// Ready is closed once the first fetch has succeeded.
func (r *Remote) Ready() <-chan struct{} { return r.ready }

// lastSuccess returns the time of the last successful fetch (zero if none).
func (r *Remote) lastSuccess() time.Time {
	if cur := r.keys.Load(); cur != nil {
		return cur.fetchedAt
	}
	return time.Time{}
}

// Run fetches the keys at once, then on every RefreshInterval tick and on
// every unknown-kid request, until ctx is done.
func (r *Remote) Run(ctx context.Context) error {
	ticker := time.NewTicker(r.cfg.RefreshInterval)
	defer ticker.Stop()
	for {
		r.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-r.kick:
		}
	}
}

// refresh performs one fetch and wakes the lookups that asked for it.
func (r *Remote) refresh(ctx context.Context) {
	r.mu.Lock()
	done := r.pending
	if done == nil {
		done = make(chan struct{})
	}
	r.pending, r.inflight = nil, done
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		close(done)
	}()

	set, err := r.fetch(ctx)
	r.observer.JWKSFetch(ctx, r.cfg.URL, err)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("jwks fetch failed; serving cached keys", zap.Error(err), zap.Time("last_success", r.lastSuccess()))
		}
		return
	}
	// Only Run stores r.keys, so prev is still current when next replaces it.
	prev := r.keys.Load()
	next := &remoteKeys{set: set, fetchedAt: r.now(), gen: 1}
	changed := prev == nil || !prev.set.equal(set)
	if prev != nil {
		next.gen = prev.gen
		if changed {
			next.gen++
		}
	}
	r.keys.Store(next)
	if prev == nil {
		close(r.ready)
	}
	r.observer.KeysLoaded(ctx, r.cfg.URL, set.Len())
	r.logger.Debug("jwks fetched", zap.Int("keys", set.Len()), zap.Bool("changed", changed))
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
