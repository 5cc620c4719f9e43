package verifier

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// cacheShards spreads the verified-token cache over independently locked
// maps, so concurrent requests rarely contend.
const cacheShards = 64

// tokenCache remembers tokens that verified, keyed by the raw token (the
// map compares the whole string, so a hash collision cannot confuse two
// tokens). An entry is used only while the token is unexpired and the key
// generation it was verified under is current.
type tokenCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard

	hits, misses, evictions atomic.Uint64
}

// cacheShard is read without locks (sync.Map suits read-mostly keys: a
// hot token is a lock-free load); mu serialises writers so that the size
// bound holds.
type cacheShard struct {
	entries sync.Map // string → *cacheEntry
	mu      sync.Mutex
	size    atomic.Int64 // entries stored; updated under mu
}

type cacheEntry struct {
	tok       *Token
	until     time.Time // exp + leeway: after this the token is expired
	keysUntil time.Time // when the keys that verified it stop being served; zero: never
	gen       uint64    // key generation at verification
}

// CacheStats are the verified-token cache's counters.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Size                    int
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), perShard: max(size/cacheShards, 1)}
	return c
}

func (c *tokenCache) shard(raw string) *cacheShard {
	return &c.shards[maphash.String(c.seed, raw)%cacheShards]
}

// get returns the cached token if it is still usable at now under gen.
// expired reports an entry whose token has expired since it was cached.
func (c *tokenCache) get(raw string, now time.Time, gen uint64) (tok *Token, expired bool) {
	s := c.shard(raw)
	v, ok := s.entries.Load(raw)
	var e *cacheEntry
	if ok {
		e = v.(*cacheEntry)
	}
	switch {
	case !ok:
		c.misses.Add(1)
		return nil, false
	case !now.Before(e.until):
		c.drop(s, raw)
		c.misses.Add(1)
		return nil, true
	case e.gen != gen, !e.keysUntil.IsZero() && !now.Before(e.keysUntil):
		c.drop(s, raw)
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.tok, false
}

func (c *tokenCache) drop(s *cacheShard, raw string) {
	s.mu.Lock()
	if _, loaded := s.entries.LoadAndDelete(raw); loaded {
		s.size.Add(-1)
	}
	s.mu.Unlock()
}

// put caches a verified token. A full shard first drops expired entries,
// then an arbitrary one (Go's map iteration order is random).
func (c *tokenCache) put(raw string, tok *Token, until, keysUntil time.Time, gen uint64, now time.Time) {
	s := c.shard(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.size.Load() >= int64(c.perShard) {
		s.entries.Range(func(k, v any) bool {
			if e := v.(*cacheEntry); !now.Before(e.until) || e.gen != gen {
				s.entries.Delete(k)
				s.size.Add(-1)
				c.evictions.Add(1)
			}
			return true
		})
		s.entries.Range(func(k, _ any) bool {
			if s.size.Load() < int64(c.perShard) {
				return false
			}
			s.entries.Delete(k)
			s.size.Add(-1)
			c.evictions.Add(1)
			return true
		})
	}
	if _, loaded := s.entries.Swap(raw, &cacheEntry{tok: tok, until: until, keysUntil: keysUntil, gen: gen}); !loaded {
		s.size.Add(1)
	}
}

func (c *tokenCache) stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
	for i := range c.shards {
		st.Size += int(c.shards[i].size.Load())
	}
	return st
}
