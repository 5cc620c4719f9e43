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
// tokens). An entry is used only while the token is unexpired, the
// verifier's key generation it was verified under is current, and so is
// the generation of every remote key set that supplied its candidate keys:
// a refresh of one remote retires that remote's tokens and no others.
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
	tok   *Token
	until time.Time // exp + leeway: after this the token is expired
	used  keyUse    // the remote key sets it depends on, and when they go stale
	gen   uint64    // the verifier's key generation at verification
}

// current reports whether the keys e was verified with are still the ones
// served: the verifier's generation is gen, and every remote set it used is
// unstale and at the generation it was. It is on the hit path: no
// allocation, and one atomic load per remote set.
func (e *cacheEntry) current(gen uint64, now time.Time) bool {
	return e.gen == gen && (len(e.used.remotes) == 0 || e.remotesCurrent(now))
}

func (e *cacheEntry) remotesCurrent(now time.Time) bool {
	if !now.Before(e.used.until) {
		return false
	}
	for _, rg := range e.used.remotes {
		if rg.r.generation() != rg.gen {
			return false
		}
	}
	return true
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
	case !e.current(gen, now):
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

// put caches a verified token. A full shard first drops expired and stale
// entries, then an arbitrary one (Go's map iteration order is random).
func (c *tokenCache) put(raw string, tok *Token, until time.Time, used keyUse, gen uint64, now time.Time) {
	s := c.shard(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.size.Load() >= int64(c.perShard) {
		s.entries.Range(func(k, v any) bool {
			if e := v.(*cacheEntry); !now.Before(e.until) || !e.current(gen, now) {
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
	if _, loaded := s.entries.Swap(raw, &cacheEntry{tok: tok, until: until, used: used, gen: gen}); !loaded {
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
