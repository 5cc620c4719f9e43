package verifier

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// tokenCache remembers tokens that verified, under their tag (see
// tokenTag): an entry holds the tag, what the token's validity depends on,
// the token without the claims no consumer reads on a hit, and the
// consumer's Memo value (the proxy's header values). An entry is used only
// while the token is unexpired, the verifier's key generation it was
// verified under is current, and so is the generation of every remote key
// set that supplied its candidate keys: a refresh of one remote retires
// that remote's tokens and no others.
//
// Which tokens stay is the index's TinyLFU (index.go): a new token is
// admitted over a cached one only if it has been looked up more often, so
// that a cycle over more tokens than fit keeps a fixed part of them cached
// instead of evicting each before its next use (as LRU or FIFO would), and
// a skewed load keeps its hot tokens. Hits are lock-free; writes and
// evictions are O(1) and done on the calling goroutine (no goroutine of
// the cache's own). In front of it, the hot table finds the most used
// tokens without tagging them.
//
// Where an entry lives: as a flat record in a slot of the slab, outside
// the Go heap (flat.go), and the index maps the tag to the slot. Neither
// holds a Go pointer, so the collector traces nothing per cached token,
// and the heap it paces itself by does not grow with the cache. A hit
// builds the entry from its record (three small allocations); the hot
// table keeps the built entries of the most used tokens, so theirs
// allocate nothing. A record of a token verified with a remote key set's
// keys names the set and its generation: it is usable while that set is
// still the one served, unstale. Entries that cannot be flat stay boxed
// on the heap (boxes), the index naming them by number: tokens verified
// with keys of several remote sets, cached before a Memo key was known,
// keeping claims (Config.CachedClaims), naming several audiences, or with
// more strings than a slot holds.
type tokenCache struct {
	idx *index
	// slab holds most cached verifications as flat records outside the Go
	// heap (see slab and flat.go); those that do not fit one stay boxed.
	slab  *slab
	boxes boxes
	// origins are the verifier's shared origins, named in flat records by
	// their index.
	origins     []*origin
	originIndex map[*origin]uint32
	// remotes are the verifier's remote key sets, named in flat records
	// by their index.
	remotes     []*Remote
	remoteIndex map[*Remote]uint16
	hot         hotTable
	tags        *tagger
	leewayMs    int64    // the verifier's leeway in milliseconds, rounded down
	keep        []string // Config.CachedClaims
	deriver     atomic.Pointer[derivation]

	// counts are striped (see stripe), so that concurrent requests seldom
	// contend for one cache line: a counter all of them add to costs a
	// hit more than the rest of it on a many-core machine.
	counts [countStripes]cacheCounts
}

const countStripes = 16

type cacheCounts struct {
	hits, misses atomic.Uint64
	_            [48]byte // a cache line each
}

// boxed marks an index value that numbers a boxed entry (boxes) rather
// than a slab slot: a token verified with keys of several remote key
// sets, keeping claims (CachedClaims), cached before a Memo key was known,
// or too long for a slot.
const boxed = 1 << 31

// boxes holds the boxed entries under numbers the index can name: the
// cache's one table of pointers, a word per number, allocated a chunk at a
// time as numbers are first used.
type boxes struct {
	numbers numbered[[chunkSlots]atomic.Pointer[cacheEntry]]
}

func (b *boxes) init(max int) { b.numbers.init(min(max, boxed-1)) }

// put boxes e under a free number; false when all are taken.
func (b *boxes) put(e *cacheEntry) (uint32, bool) {
	i, ok := b.numbers.take(func() *[chunkSlots]atomic.Pointer[cacheEntry] {
		return new([chunkSlots]atomic.Pointer[cacheEntry])
	})
	if ok {
		c, j := b.numbers.chunk(i)
		c[j].Store(e)
	}
	return i, ok
}

// get returns the entry numbered i; nil if none.
func (b *boxes) get(i uint32) *cacheEntry {
	if c, j := b.numbers.chunk(i); c != nil {
		return c[j].Load()
	}
	return nil
}

// release frees number i.
func (b *boxes) release(i uint32) {
	c, j := b.numbers.chunk(i)
	c[j].Store(nil)
	b.numbers.give(i)
}

// cacheEntry is one cached verification. The Token returned on a hit is
// part of it: one allocation of 256 bytes (a size class: a field more
// would make it 288), with strings in one more (see compact).
type cacheEntry struct {
	// h and n are the token's tag (tokenTag), laid out flat so that gen
	// fills what would be the tag's padding.
	h   [4]uint64
	n   uint32
	gen uint32 // the verifier's key generation at verification, mod 2³²
	// used is what the verification depends on besides gen; nil when no
	// remote key set supplied a candidate key.
	used *keyUse
	cell memoCell
	tok  Token
}

// usable reports whether e's token is unexpired at now (Unix
// milliseconds): before exp + leeway, both rounded down to the
// millisecond, so never later than the exact time.
func (c *tokenCache) usable(e *cacheEntry, now int64) bool { return now < e.tok.exp+c.leewayMs }

// hotTable holds a few recently used raw tokens whole, each with its
// cache entry, so that a token presented again and again — a replica's
// hottest — is found with one pass of the runtime's string hash and a
// comparison instead of being tagged: about twice as fast. Being compared
// whole, a token found here is the one cached: the hash only places it.
// Every newly cached token takes its slot, and a token found by its tag
// one time in hotEvery, so that the table follows the load without a hit
// allocating (beyond one in hotEvery). It holds at most hotSlots tokens.
type hotTable struct {
	seed  maphash.Seed
	slots [hotSlots]atomic.Pointer[hotSlot]
}

const (
	hotSlots = 1024
	hotEvery = 64
)

type hotSlot struct {
	raw string
	e   *cacheEntry
}

// slot returns raw's slot, and raw's hash.
func (ht *hotTable) slot(raw string) (*atomic.Pointer[hotSlot], uint64) {
	h := maphash.String(ht.seed, raw)
	return &ht.slots[h%hotSlots], h
}

// store puts raw, cached in e, in its slot.
func (ht *hotTable) store(raw string, e *cacheEntry) {
	slot, _ := ht.slot(raw)
	slot.Store(&hotSlot{raw: raw, e: e})
}

// current reports whether the keys e was verified with are still the ones
// served: the verifier's generation is gen, and every remote set it used is
// unstale and at the generation it was. It is on the hit path: no
// allocation, and one atomic load per remote set.
func (e *cacheEntry) current(gen uint64, now time.Time) bool {
	return e.gen == uint32(gen) && (e.used == nil || e.remotesCurrent(now))
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

// OffHeapLimit is the most memory the verified-token cache's records may
// take outside the Go heap (CacheStats.OffHeapBytes grows to it as the
// cache fills): what an owner setting the runtime's soft memory limit
// must leave for them, since the runtime counts none of it. 0 without a
// cache.
func (v *Verifier) OffHeapLimit() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.slab.limit()
}

// CacheStats are the verified-token cache's counters.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Size                    int
	// OffHeapBytes is the memory of the flat records' slots, mapped
	// outside the Go heap: not in the runtime's heap figures.
	OffHeapBytes int
}

// maxCacheSize bounds a cache's size: the index names a slot or a box in
// 31 bits.
const maxCacheSize = 1 << 30

func newTokenCache(size, maxBytes int, leeway time.Duration, keep []string) *tokenCache {
	size = min(size, maxCacheSize)
	c := &tokenCache{tags: newTagger(min(maxBytes, maxTaggedBytes)), leewayMs: leeway.Milliseconds(), keep: keep}
	c.hot.seed = maphash.MakeSeed()
	// A slot or a number for each cached token, and for the few being
	// put at a moment (the index admits them, or they are given back).
	c.slab = newSlab(size + chunkSlots)
	c.boxes.init(size + chunkSlots)
	c.idx = newIndex(size, func(v uint32) {
		if v&boxed != 0 {
			c.boxes.release(v &^ boxed)
		} else {
			c.slab.release(v)
		}
	})
	return c
}

// lookup finds raw's cached verification, usable at now under gen: in
// the hot table, else under raw's tag. It also returns the tag, for put
// after a miss; cacheable is false for a token too long to cache.
// expired reports an entry whose token has expired since it was cached.
func (c *tokenCache) lookup(raw string, now time.Time, gen uint64) (tok *Token, t tokenTag, cacheable, expired bool) {
	slot, h := c.hot.slot(raw)
	if s := slot.Load(); s != nil && s.raw == raw {
		if e := s.e; c.usable(e, now.UnixMilli()) && e.current(gen, now) {
			c.counts[stripe(h)].hits.Add(1)
			return e.token(), t, false, false
		}
		// Expired, or its keys changed: the entry found by the tag, if
		// still this one, is dropped below.
		slot.CompareAndSwap(s, nil)
	}
	if t, cacheable = c.tags.tag(raw); !cacheable {
		return nil, t, false, false
	}
	e, promote, expired := c.get(&t, now, gen)
	if e == nil {
		return nil, t, true, expired
	}
	if promote {
		slot.Store(&hotSlot{raw: raw, e: e})
	}
	return e.token(), t, true, false
}

// get returns the entry for t if it is still usable at now under gen, and
// whether to promote it to the hot table (one hit in hotEvery, counted by
// stripe). expired reports an entry whose token has expired since it was
// cached.
func (c *tokenCache) get(t *tokenTag, now time.Time, gen uint64) (e *cacheEntry, promote, expired bool) {
	counts := &c.counts[stripe(t.h[0])]
	key := indexKey(t.slot())
	v, ok := c.idx.get(key)
	if ok && v&boxed == 0 {
		return c.getFlat(t, key, v, now, gen, counts)
	}
	if ok {
		e = c.boxes.get(v &^ boxed)
	}
	switch {
	case e == nil || !t.equal(&tokenTag{e.h, e.n}):
		counts.misses.Add(1)
		return nil, false, false
	case !c.usable(e, now.UnixMilli()):
		c.idx.remove(key, v)
		counts.misses.Add(1)
		return nil, false, true
	case !e.current(gen, now):
		c.idx.remove(key, v)
		counts.misses.Add(1)
		return nil, false, false
	}
	return e, counts.hits.Add(1)%hotEvery == 0, false
}

// getFlat is get for a flat record in slot.
func (c *tokenCache) getFlat(t *tokenTag, key uint64, slot uint32, now time.Time, gen uint64, counts *cacheCounts) (e *cacheEntry, promote, expired bool) {
	var rec [slotWords]uint64
	d := c.deriver.Load()
	if d == nil || !c.slab.read(slot, &rec) || !flatTagIs(&rec, t) {
		// Reused or rewritten while read: a miss, never another token.
		counts.misses.Add(1)
		return nil, false, false
	}
	use, usable, expired := c.flatUsable(&rec, now, gen)
	if !usable {
		c.idx.remove(key, slot)
		counts.misses.Add(1)
		return nil, false, expired
	}
	return c.decodeFlat(&rec, d, use), counts.hits.Add(1)%hotEvery == 0, false
}

// token is what a hit returns: the token with every claim until a Memo
// value is kept (see memoCell.pending), the compact one after.
func (e *cacheEntry) token() *Token {
	if e.cell.state.Load() != memoKept {
		if p := e.cell.pending.Load(); p != nil {
			return p.full
		}
	}
	return &e.tok
}

// put caches full, a token just verified (and constrained) with every
// claim, and makes full share the entry's Memo value. If a Memo key is
// known, its value is derived from full now, and the entry keeps only the
// compact token; otherwise the entry serves full until a Memo keeps a
// value.
func (c *tokenCache) put(t *tokenTag, full *Token, used *keyUse, gen uint64) *cacheEntry {
	e := &cacheEntry{h: t.h, n: t.n, gen: uint32(gen), used: used}
	e.tok.cell = &e.cell
	full.cell = &e.cell
	d := c.deriver.Load()
	if d == nil {
		compact(&e.tok, full, nil, c.keep)
		e.cell.pending.Store(&pendingMemo{full: full, deriver: &c.deriver})
		c.box(t, e)
		return e
	}
	e.cell.key, e.cell.value = d.key, compact(&e.tok, full, d.fn(d.key, full), c.keep)
	e.cell.state.Store(memoKept)
	var rec [slotWords]uint64
	if c.encodeFlat(e, &rec) {
		if slot, ok := c.slab.alloc(); ok {
			c.slab.write(slot, &rec)
			if !c.idx.set(indexKey(t.slot()), slot) {
				c.slab.release(slot)
			}
			return e
		}
	}
	c.box(t, e)
	return e
}

// box caches e boxed on the heap under t.
func (c *tokenCache) box(t *tokenTag, e *cacheEntry) {
	if i, ok := c.boxes.put(e); ok && !c.idx.set(indexKey(t.slot()), i|boxed) {
		c.boxes.release(i)
	}
}

// setOrigins names the verifier's shared origins for flat records.
func (c *tokenCache) setOrigins(origins []*origin) {
	c.origins = origins
	c.originIndex = make(map[*origin]uint32, len(origins))
	for i, o := range origins {
		c.originIndex[o] = uint32(i)
	}
}

// setRemotes names the verifier's remote key sets for flat records.
func (c *tokenCache) setRemotes(remotes []*Remote) {
	c.remotes = remotes
	c.remoteIndex = make(map[*Remote]uint16, len(remotes))
	for i, r := range remotes {
		if i < maxFlatRemotes {
			c.remoteIndex[r] = uint16(i)
		}
	}
}

// compact fills dst with full's fields for a cache entry: the strings a
// hit needs in one allocation, with those of memo, the entry's Memo value
// — it returns the value to keep, a new slice of strings cut from that
// allocation (the consumer's slice is left as it is: it may be shared) —
// and of the claims only those keep names. A memo string equal to one the
// token keeps anyway (its subject, jti, session, issuer, algorithm or
// audience) is that string instead: the proxy's X-User-Id, X-Session-Id
// and X-User-Issuer cost no bytes.
func compact(dst, full *Token, memo []string, keep []string) (kept []string) {
	n := len(full.Subject) + len(full.ID) + len(full.SessionID) + len(full.grants)
	for _, v := range memo {
		if full.keptKind(v) == keptNone {
			n += len(v)
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(full.Subject)
	b.WriteString(full.ID)
	b.WriteString(full.SessionID)
	b.WriteString(full.grants)
	for _, v := range memo {
		if full.keptKind(v) == keptNone {
			b.WriteString(v)
		}
	}
	s := b.String()
	cut := func(n int) string { v := s[:n]; s = s[n:]; return v }
	*dst = Token{
		origin:    full.origin,
		Subject:   cut(len(full.Subject)),
		ID:        cut(len(full.ID)),
		exp:       full.exp,
		iat:       full.iat,
		SessionID: cut(len(full.SessionID)),
		grants:    cut(len(full.grants)),
		cell:      dst.cell,
	}
	if memo != nil {
		kept = make([]string, len(memo))
	}
	for i, v := range memo {
		if k := dst.keptKind(v); k != keptNone {
			kept[i] = dst.kept(k)
		} else {
			kept[i] = cut(len(v))
		}
	}
	n = 0
	for _, name := range keep {
		if _, ok := full.Claims[name]; ok {
			n++
		}
	}
	if n == 0 {
		return kept
	}
	dst.Claims = make(map[string]any, n)
	for _, name := range keep {
		if v, ok := full.Claims[name]; ok {
			dst.Claims[name] = v
		}
	}
	return kept
}

// The strings a token keeps anyway, which a Memo string equal to one of
// them shares (compact) or refers to (a flat record): keptNone, or which
// one — keptAudience+j for the token's audience j.
const (
	keptNone = iota
	keptSubject
	keptID
	keptSession
	keptIssuer
	keptAlgorithm
	keptAudience
)

// keptKind says which string t keeps anyway equals v; keptNone for none,
// or for "" (which needs no bytes either).
func (t *Token) keptKind(v string) int {
	switch {
	case v == "":
		return keptNone
	case v == t.Subject:
		return keptSubject
	case v == t.ID:
		return keptID
	case v == t.SessionID:
		return keptSession
	case t.origin == nil:
		return keptNone
	case v == t.origin.issuer:
		return keptIssuer
	case v == t.origin.algorithm:
		return keptAlgorithm
	}
	for j, a := range t.origin.audience {
		if v == a {
			return keptAudience + j
		}
	}
	return keptNone
}

// kept returns the string of kind (keptKind, not keptNone).
func (t *Token) kept(kind int) string {
	switch kind {
	case keptSubject:
		return t.Subject
	case keptID:
		return t.ID
	case keptSession:
		return t.SessionID
	case keptIssuer:
		return t.origin.issuer
	case keptAlgorithm:
		return t.origin.algorithm
	}
	return t.origin.audience[kind-keptAudience]
}

func (c *tokenCache) stats() CacheStats {
	st := CacheStats{Evictions: c.idx.evictions.Load(), Size: int(c.idx.count.Load()), OffHeapBytes: c.slab.mapped()}
	for i := range c.counts {
		st.Hits += c.counts[i].hits.Load()
		st.Misses += c.counts[i].misses.Load()
	}
	return st
}

// stripe picks the counters for a request: by a hash of its token, and
// by the goroutine's stack (its address, in 8 KiB units), so that
// concurrent requests with one hot token count apart too. Only speed
// depends on it.
func stripe(h uint64) uint64 {
	var onStack byte
	return (h ^ uint64(uintptr(unsafe.Pointer(&onStack))>>13)) % countStripes
}
