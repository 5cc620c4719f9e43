// Package limit holds token-bucket rate limits keyed by a string (a login
// name, a client IP), for the token endpoints' brute-force protection. A
// Buckets is kept in this replica's memory; a shared store (Redis) can
// stand behind the same Limiter interface so every replica counts
// together.
//
// Rules:
//   - Memory MUST stay bounded whatever keys an attacker sends: at most
//     MaxKeys buckets are kept, full (idle) ones first to go.
//   - A key MUST NOT be logged by this package: it may be a login name.
package limit

import (
	"context"
	"math"
	"sync"
	"time"
)

// Limiter takes and gives back attempts for a key.
type Limiter interface {
	// Take takes one attempt for key. When none is left it reports false
	// and how long until the next one.
	Take(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
	// Give returns an attempt taken for key (a login that succeeded does
	// not count against the user).
	Give(ctx context.Context, key string) error
}

// Config sizes Buckets.
type Config struct {
	// Burst is how many attempts a key has when it is fresh. Required.
	Burst int
	// Every is how often one attempt comes back. Required.
	Every time.Duration
	// MaxKeys bounds the keys kept. Zero means 100,000.
	MaxKeys int
}

// Buckets is a Limiter in this process's memory.
type Buckets struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

var _ Limiter = (*Buckets)(nil)

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// New returns Buckets for cfg; now is its clock (nil means time.Now).
func New(cfg Config, now func() time.Time) *Buckets {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	if now == nil {
		now = time.Now
	}
	return &Buckets{cfg: cfg, now: now, buckets: map[string]*bucket{}}
}

// refill brings b up to date at now.
func (l *Buckets) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(float64(l.cfg.Burst), b.tokens+float64(d)/float64(l.cfg.Every))
	}
	b.at = now
}

// Take implements Limiter.
func (l *Buckets) Take(_ context.Context, key string) (bool, time.Duration, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{tokens: float64(l.cfg.Burst), at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) * float64(l.cfg.Every))
		return false, max(wait, time.Second), nil
	}
	b.tokens--
	return true, 0, nil
}

// Give implements Limiter.
func (l *Buckets) Give(_ context.Context, key string) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		l.refill(b, now)
		b.tokens = math.Min(float64(l.cfg.Burst), b.tokens+1)
	}
	return nil
}

// makeRoom keeps the map within MaxKeys: buckets that have refilled are
// forgotten (a fresh one is the same); if none has, an arbitrary one goes.
// l.mu must be held.
func (l *Buckets) makeRoom(now time.Time) {
	if len(l.buckets) < l.cfg.MaxKeys {
		return
	}
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.cfg.Burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.cfg.MaxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// Len returns how many keys are kept.
func (l *Buckets) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
