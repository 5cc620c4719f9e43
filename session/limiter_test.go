package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/limit"
)

func TestRedisLimiterIsSharedByReplicas(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(start)
	url := testkit.Redis(t)
	cfg := limit.Config{Burst: 3, Every: time.Minute}
	a := newTestRedis(t, url, clock, RedisConfig{}).Limiter(cfg, "login")
	b := newTestRedis(t, url, clock, RedisConfig{}).Limiter(cfg, "login")
	take := func(l limit.Limiter, key string, want bool) time.Duration {
		t.Helper()
		ok, retry, err := l.Take(ctx, key)
		if err != nil || ok != want {
			t.Fatalf("take %s: %v %v, want %v", key, ok, err, want)
		}
		return retry
	}
	take(a, "alice", true)
	take(b, "alice", true)
	take(a, "alice", true)
	if retry := take(b, "alice", false); retry != time.Minute {
		t.Errorf("retry after %v, want 1m", retry)
	}
	take(a, "bob", true)                                                                      // another key
	take(newTestRedis(t, url, clock, RedisConfig{}).Limiter(cfg, "client_ip"), "alice", true) // another limiter
	if err := b.Give(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	take(a, "alice", true)
	take(a, "alice", false)
	clock.Add(40 * time.Second)
	if retry := take(b, "alice", false); retry != 20*time.Second {
		t.Errorf("retry after %v, want 20s", retry)
	}
	clock.Add(20 * time.Second)
	take(b, "alice", true)
}

// TestRedisLimiterCountsAsBuckets plays one random sequence of takes,
// gives and clock moves on limit.Buckets and on the Redis limiter: they
// answer alike.
func TestRedisLimiterCountsAsBuckets(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(start)
	cfg := limit.Config{Burst: 4, Every: 10 * time.Second}
	mem := limit.New(cfg, clock.Now)
	red := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{}).Limiter(cfg, "login")
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"alice", "bob"}
	for i := range 400 {
		key := keys[rng.IntN(len(keys))]
		switch rng.IntN(4) {
		case 0:
			clock.Add(time.Duration(rng.IntN(15000)) * time.Millisecond)
		case 1:
			if err1, err2 := mem.Give(ctx, key), red.Give(ctx, key); err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
		default:
			ok1, retry1, _ := mem.Take(ctx, key)
			ok2, retry2, err := red.Take(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if ok1 != ok2 || (retry1-retry2).Abs() > time.Millisecond {
				t.Fatalf("step %d, take %s: buckets %v %v, redis %v %v", i, key, ok1, retry1, ok2, retry2)
			}
		}
	}
}

func TestRedisLimiterBucketsExpireWhenFull(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{})
	l := r.Limiter(limit.Config{Burst: 5, Every: time.Minute}, "login")
	l.Take(ctx, "alice")
	l.Take(ctx, "alice")
	keys := r.client.Keys(ctx, "tollgate:limit:login:*").Val()
	if len(keys) != 1 || strings.Contains(keys[0], "alice") {
		t.Fatalf("keys %v", keys)
	}
	if ttl := r.client.PTTL(ctx, keys[0]).Val(); ttl <= time.Minute || ttl > 2*time.Minute {
		t.Errorf("a bucket two attempts short expires in %v, want 2m", ttl)
	}
	l.Give(ctx, "alice")
	l.Give(ctx, "alice")
	if n := r.client.Exists(ctx, keys[0]).Val(); n != 0 {
		t.Error("a full bucket is kept")
	}
}

func TestRedisLimiterNeedsBurstAndEvery(t *testing.T) {
	r := newTestRedis(t, testkit.Redis(t), testkit.NewClock(start), RedisConfig{})
	_, _, err := r.Limiter(limit.Config{Every: time.Minute}, "login").Take(context.Background(), "alice")
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("error %v", err)
	}
}
