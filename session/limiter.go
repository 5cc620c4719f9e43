package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/limit"
)

// takeScript takes one attempt from the bucket KEYS[1]: ARGV[1] = burst,
// ARGV[2] = ms per attempt, ARGV[3] = now (Unix ms). The bucket is kept
// as the time it will be full again (a token bucket as GCRA: whole
// milliseconds, no rounding), and expires then: a full bucket and no
// bucket are the same. Answers {1, 0}, or {0, ms until the next attempt}.
var takeScript = redis.NewScript(`
local k = KEYS[1]
local burst, every, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local full = tonumber(redis.call('GET', k) or now)
if full < now then full = now end
local wait = full - now - (burst - 1) * every
if wait > 0 then return {0, wait} end
full = full + every
redis.call('SET', k, full, 'PX', full - now)
return {1, 0}
`)

// giveScript gives an attempt back to the bucket KEYS[1] (arguments as
// takeScript's).
var giveScript = redis.NewScript(`
local k = KEYS[1]
local every, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local full = tonumber(redis.call('GET', k) or now) - every
if full <= now then redis.call('DEL', k) else redis.call('SET', k, full, 'PX', full - now) end
return 0
`)

// Limiter returns a token-bucket limit.Limiter kept in Redis, so that
// every replica counts together: each Take and Give is one script. name
// keeps limiters apart (login, client_ip); cfg.MaxKeys does not apply
// (idle buckets expire). Keys are stored hashed, never as given. Errors
// wrap ErrUnavailable; a cfg without Burst or Every, ErrInvalidConfig.
func (r *Redis) Limiter(cfg limit.Config, name string) limit.Limiter {
	return &redisLimiter{r: r, cfg: cfg, prefix: r.cfg.KeyPrefix + "limit:" + name + ":"}
}

type redisLimiter struct {
	r      *Redis
	cfg    limit.Config
	prefix string
}

var _ limit.Limiter = (*redisLimiter)(nil)

// Take implements limit.Limiter.
func (l *redisLimiter) Take(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	defer l.r.opts.observe(ctx, "limit", time.Now(), &err)
	v, err := l.run(ctx, takeScript, key)
	if err != nil {
		return false, 0, err
	}
	res, _ := v.([]any)
	if len(res) != 2 {
		return false, 0, fmt.Errorf("%w: limit: answered %v", ErrUnavailable, res)
	}
	took, _ := res[0].(int64)
	wait, _ := res[1].(int64)
	if took == 1 {
		return true, 0, nil
	}
	return false, max(time.Duration(wait)*time.Millisecond, time.Second), nil
}

// Give implements limit.Limiter.
func (l *redisLimiter) Give(ctx context.Context, key string) (err error) {
	defer l.r.opts.observe(ctx, "limit", time.Now(), &err)
	_, err = l.run(ctx, giveScript, key)
	return err
}

// run runs s on key's bucket.
func (l *redisLimiter) run(ctx context.Context, s *redis.Script, key string) (any, error) {
	if l.cfg.Burst <= 0 || l.cfg.Every <= 0 {
		return nil, fmt.Errorf("%w: limit: Burst and Every must be positive", ErrInvalidConfig)
	}
	sum := sha256.Sum256([]byte(key))
	k := l.prefix + base64.RawURLEncoding.EncodeToString(sum[:16])
	every := max(l.cfg.Every.Milliseconds(), 1)
	tctx, cancel := context.WithTimeout(ctx, l.r.cfg.Timeout)
	defer cancel()
	res, err := s.Run(tctx, l.r.client, []string{k}, l.cfg.Burst, every, l.r.opts.now().UnixMilli()).Result()
	if err != nil {
		if ctx.Err() == nil {
			l.r.setUp(false, err)
		}
		return nil, fmt.Errorf("%w: limit: %w", ErrUnavailable, err)
	}
	l.r.setUp(true, nil)
	return res, nil
}
