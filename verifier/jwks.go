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

	// lastKick is the unix-nano time of the last fetch requested for an
	// unknown kid, for the cooldown. Scheduled refreshes do not count, so a
	// rotation right after one is still picked up at once.
	lastKick atomic.Int64

	mu sync.Mutex
	// next is closed when the fetch after the current one completes;
	// guarded by mu.
	next chan struct{}
}

// remoteKeys is one immutable result of a successful fetch.
type remoteKeys struct {
	set       *KeySet
	fetchedAt time.Time
}

var _ KeySource = (*Remote)(nil)

// NewRemote returns a Remote for cfg whose keys may verify the allowed
// algorithms. It fetches nothing until Run is called.
func NewRemote(cfg RemoteConfig, allowed []string, client *http.Client, logger *zap.Logger, now func() time.Time, observer Observer) *Remote {
	cfg.setDefaults()
	return &Remote{
		cfg:      cfg,
		allowed:  allowed,
		client:   client,
		now:      now,
		logger:   logger.With(zap.String("jwks_url", cfg.URL)),
		observer: observer,
		kick:     make(chan struct{}, 1),
		ready:    make(chan struct{}),
		next:     make(chan struct{}),
	}
}

// Keys implements KeySource. Keys older than MaxStale are not served. An
// unknown kid triggers one fetch (subject to the cooldown) and waits for it
// within ctx.
func (r *Remote) Keys(ctx context.Context, kid string) ([]*Key, error) {
	if keys := r.fresh(kid); len(keys) > 0 || kid == "" {
		return keys, nil
	}
	now := r.now()
	if last := r.lastKick.Load(); last != 0 && now.Sub(time.Unix(0, last)) < r.cfg.Cooldown {
		r.observer.UnknownKIDSuppressed(r.cfg.URL)
		return nil, nil
	}
	r.lastKick.Store(now.UnixNano())
	r.mu.Lock()
	wait := r.next
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a fetch is already requested
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r.fresh(kid), nil
}

func (r *Remote) fresh(kid string) []*Key {
	cur := r.keys.Load()
	if cur == nil || r.now().Sub(cur.fetchedAt) > r.cfg.MaxStale {
		return nil
	}
	keys, _ := cur.set.Keys(context.Background(), kid)
	return keys
}

// Ready is closed once the first fetch has succeeded.
func (r *Remote) Ready() <-chan struct{} { return r.ready }

// LastSuccess returns the time of the last successful fetch (zero if none).
func (r *Remote) LastSuccess() time.Time {
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

// refresh performs one fetch and wakes everyone waiting for it.
func (r *Remote) refresh(ctx context.Context) {
	r.mu.Lock()
	done := r.next
	r.next = make(chan struct{})
	r.mu.Unlock()
	defer close(done)

	set, err := r.fetch(ctx)
	r.observer.JWKSFetch(r.cfg.URL, err)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("jwks fetch failed; serving cached keys", zap.Error(err), zap.Time("last_success", r.LastSuccess()))
		}
		return
	}
	if r.keys.Swap(&remoteKeys{set: set, fetchedAt: r.now()}) == nil {
		close(r.ready)
	}
	r.observer.KeysLoaded(r.cfg.URL, set.Len())
	r.logger.Debug("jwks fetched", zap.Int("keys", set.Len()))
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
	keys, err := ParseJWKS(body, r.allowed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	return NewKeySet(keys...), nil
}
