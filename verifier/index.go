package verifier

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// index maps a cached token's key (tokenTag.slot) to where its
// verification is kept — a slab slot, or a boxed entry's number — and
// decides which tokens stay when it is full. It holds no Go pointer: the
// collector has nothing of it to trace, however many tokens are cached.
//
// Layout: a table of buckets of bucketWays keys and values, with half as
// many ways again as the index holds entries. A key may live in either of
// two buckets, chosen by two hashes of it, and goes to the emptier one:
// with two choices no bucket overflows at that load in practice (Azar et
// al., "Balanced allocations", 1994; none of 2 million keys put into
// twenty indexes of 100,000, against 382 with a quarter more ways), so
// the index fills to its size. A lookup reads at most the two buckets,
// without a lock (save one that carries a recency sweep a step: see
// sweep); a change locks them (a mutex per bucket stripe).
//
// Policy: TinyLFU (Einziger, Friedman and Manes, "TinyLFU: a highly
// efficient cache admission policy", 2017). A frequency sketch counts how
// often each key was looked up, halving every count after ten lookups per
// entry so that it follows the load. When the index is full, a new key
// is admitted only if it was looked up more often than the least
// frequent key of its two buckets, which it then replaces: a cycle over
// more tokens than fit keeps a fixed part of them (LRU and FIFO keep none
// — each token is evicted just before its next use), and a skewed load
// keeps its hot tokens. The victim is the least frequent of up to
// 2×bucketWays keys, not of all: a sampled LFU, as ristretto's is.
//
// Recency: a key not found in a whole recency period (half the sketch's)
// is stale, and is evicted before any other whatever its count (see
// sweep): what otter's LRU window did for tokens that stop being used,
// such as one replaced by its refresh.
//
// Neither the halving of the counts nor the recency sweep runs in one go:
// each is a pass that the lookups after a period's end carry a little of
// each (ageChunk words, sweepChunk buckets), so that no request pays for a
// whole table — at serve's cap of 10M entries, 128 MiB of counters and
// two million buckets, tens of milliseconds. A pass ends within a small
// part of its period.
//
// Concurrency: a way's key is 0 while it changes hands, and a reader
// loads the key, the value and the key again. What it gets is only a
// candidate: a way can change hands and come back to the same key between
// its loads, and a value it reads may have been released since. The
// cache checks every candidate against the whole tag its slot's record or
// box names, so a reused slot is a miss, never another token.
type index struct {
	buckets []bucket
	// swept is the recency pass over the buckets (see sweep); it sits
	// with buckets, a cache line away from the locks every change takes.
	swept pass
	locks [indexLocks]sync.Mutex
	freq  sketch
	size  int64 // the most entries
	count atomic.Int64
	// release is told of every value the index stops holding: replaced,
	// evicted or removed. It runs under the index's lock.
	release   func(v uint32)
	evictions atomic.Uint64
}

const (
	bucketWays = 8
	indexLocks = 256
	// sweepChunk is how many buckets a lookup sweeps while a recency pass
	// is under way: len(buckets)/sweepChunk lookups end a pass, against
	// about 27 per bucket between two (five per entry, 8/1.5 entries a
	// bucket).
	sweepChunk = 8
)

type bucket struct {
	keys [bucketWays]uint64 // 0: a free way
	vals [bucketWays]uint32
	// ref has a bit for each way found since the last sweep; stale, one
	// for each way not found in the whole period before it (see sweep).
	ref, stale uint32
}

func newIndex(size int, release func(uint32)) *index {
	ways := size + size/2
	x := &index{
		buckets: make([]bucket, max(2, (ways+bucketWays-1)/bucketWays)),
		size:    int64(size),
		release: release,
	}
	x.freq.init(size)
	x.swept.idle(len(x.buckets))
	return x
}

// indexKey is the index's key for a tag's slot: never 0, which marks a
// free way.
func indexKey(slot uint64) uint64 { return max(slot, 1) }

// pair returns key's two buckets (possibly the same one).
func (x *index) pair(key uint64) (b1, b2 int) {
	n := uint64(len(x.buckets))
	h1, _ := bits.Mul64(key, n)
	h2, _ := bits.Mul64(bits.RotateLeft64(key, 32)*0x9e3779b97f4a7c15, n)
	return int(h1), int(h2)
}

// get returns key's value, counting the lookup in the frequency sketch
// and marking key's way as found; it carries the recency pass under way a
// step further (see sweep).
func (x *index) get(key uint64) (uint32, bool) {
	if x.freq.add(key) {
		x.swept.start()
	}
	if x.swept.running(len(x.buckets)) {
		x.sweep()
	}
	b1, b2 := x.pair(key)
	if v, ok := x.buckets[b1].find(key); ok {
		return v, true
	}
	return x.buckets[b2].find(key)
}

func (b *bucket) find(key uint64) (uint32, bool) {
	for w := range b.keys {
		if atomic.LoadUint64(&b.keys[w]) == key {
			v := atomic.LoadUint32(&b.vals[w])
			if atomic.LoadUint64(&b.keys[w]) == key {
				if bit := uint32(1) << w; atomic.LoadUint32(&b.ref)&bit == 0 {
					atomic.OrUint32(&b.ref, bit)
				}
				return v, true
			}
		}
	}
	return 0, false
}

// sweep starts a recency period, half the sketch's: a way not found in
// the one that ends is stale, and set evicts it before any other whatever
// its frequency — a token replaced by its successor (refreshed, or its
// session ended) is never presented again, yet its count from when it was
// in use would otherwise keep newer tokens out for several halvings
// (TestCacheHitRateTokenTurnover). Five lookups per entry is long enough
// for a cycle over a few times the cache's size to keep finding its
// cached part (TestCacheHitRates), and short enough for tokens to turn
// over. A pass starts on the lookup that ends a period, and each lookup
// while it is under way sweeps the next sweepChunk buckets: a bucket's
// periods keep their length, each starting when the pass reaches it.
func (x *index) sweep() {
	from, to := x.swept.step(sweepChunk, len(x.buckets))
	for i := from; i < to; i++ {
		b := &x.buckets[i]
		x.locks[i%indexLocks].Lock()
		atomic.StoreUint32(&b.stale, ^atomic.SwapUint32(&b.ref, 0)&(1<<bucketWays-1))
		x.locks[i%indexLocks].Unlock()
	}
}

// lock locks key's buckets and returns them with the locks to pass to
// unlock.
func (x *index) lock(key uint64) (b1, b2 *bucket, li, lj int) {
	i, j := x.pair(key)
	li, lj = i%indexLocks, j%indexLocks
	if li > lj {
		li, lj = lj, li
	}
	x.locks[li].Lock()
	if lj != li {
		x.locks[lj].Lock()
	}
	return &x.buckets[i], &x.buckets[j], li, lj
}

func (x *index) unlock(li, lj int) {
	if lj != li {
		x.locks[lj].Unlock()
	}
	x.locks[li].Unlock()
}

// set maps key to v, replacing key's value if it has one. When the index
// is full it admits key only over a less frequent one, which it evicts;
// false means v was not admitted (and is the caller's still).
func (x *index) set(key uint64, v uint32) bool {
	b1, b2, li, lj := x.lock(key)
	defer x.unlock(li, lj)
	for _, b := range [2]*bucket{b1, b2} {
		for w := range b.keys {
			if b.keys[w] == key {
				// Another value for the same key: a reader may get either.
				old := b.vals[w]
				atomic.StoreUint32(&b.vals[w], v)
				x.release(old)
				return true
			}
		}
	}
	b, w := x.freeWay(b1, b2)
	if x.count.Add(1) > x.size || b == nil {
		// Full (the index, or both buckets): take a stale key's way, or a
		// less frequent key's, or keep out.
		x.count.Add(-1)
		var vkey uint64
		var stale bool
		if b, w, vkey, stale = x.victim(b1, b2); b == nil || !stale && x.freq.estimate(key) <= x.freq.estimate(vkey) {
			return false
		}
		atomic.StoreUint64(&b.keys[w], 0)
		x.release(b.vals[w])
		x.evictions.Add(1)
	}
	atomic.StoreUint32(&b.vals[w], v)
	atomic.StoreUint64(&b.keys[w], key)
	// New: neither stale nor found yet; it counts as found in the period
	// it came in.
	atomic.AndUint32(&b.stale, ^(uint32(1) << w))
	atomic.OrUint32(&b.ref, uint32(1)<<w)
	return true
}

// freeWay returns a free way of the emptier of b1 and b2; nil when both
// are full.
func (x *index) freeWay(b1, b2 *bucket) (*bucket, int) {
	if b1.used() > b2.used() {
		b1, b2 = b2, b1
	}
	for _, b := range [2]*bucket{b1, b2} {
		for w := range b.keys {
			if b.keys[w] == 0 {
				return b, w
			}
		}
	}
	return nil, 0
}

func (b *bucket) used() int {
	n := 0
	for _, k := range b.keys {
		if k != 0 {
			n++
		}
	}
	return n
}

// victim returns the way in b1 and b2 to evict, and its key: the least
// frequent stale key if there is one (stale true), else the least
// frequent key; nil when both buckets are empty.
func (x *index) victim(b1, b2 *bucket) (vb *bucket, vw int, vkey uint64, stale bool) {
	least := -1
	for _, b := range [2]*bucket{b1, b2} {
		for w, k := range b.keys {
			if k == 0 {
				continue
			}
			s := b.stale&(1<<w) != 0
			if f := x.freq.estimate(k); least < 0 || s && !stale || s == stale && f < least {
				vb, vw, vkey, least, stale = b, w, k, f, s
			}
		}
	}
	return vb, vw, vkey, stale
}

// remove drops key if its value is still v.
func (x *index) remove(key uint64, v uint32) {
	b1, b2, li, lj := x.lock(key)
	defer x.unlock(li, lj)
	for _, b := range [2]*bucket{b1, b2} {
		for w := range b.keys {
			if b.keys[w] == key && b.vals[w] == v {
				atomic.StoreUint64(&b.keys[w], 0)
				x.count.Add(-1)
				x.release(v)
				return
			}
		}
	}
}

// sketch is a count-min sketch of 4-bit counters (TinyLFU's, as Caffeine
// lays it out): a key's four counters are in four words of one 64-byte
// block, so that counting a lookup touches one cache line. Every count
// halves after period additions. Counting is approximate by design: a
// count is never below the key's true count since the last halving, save
// for additions lost to a concurrent one (a failed compare-and-swap is
// not retried).
type sketch struct {
	words  []uint64 // 16 counters each, 8 words a block
	blocks uint64   // a power of two
	// aged is the halving pass over the words (see age); it sits with
	// words, a cache line away from the addition counters.
	aged pass
	// adds counts additions by stripe (see stripe), a stripe's share of
	// a round (half a period) at a time, so that lookups seldom write one
	// cache line; shares counts the shares completed. The stripes fill at
	// about the same rate, so a round's shares complete together at its
	// end: a round is countStripes shares, and the events add reports fall
	// a round apart.
	adds   [countStripes]paddedCount
	shares atomic.Uint64
	share  uint64 // round / countStripes
}

// ageChunk is how many words an addition halves while a halving pass is
// under way: a pass takes len(words)/ageChunk additions, under a
// three-hundredth of the period (ten additions per entry, fewer than two
// words per entry).
const ageChunk = 64

// pass is the cursor of a pass over a table of n items that lookups
// carry a step at a time: the next item to take, n or more when no pass
// is under way. Every lookup reads it and only a pass writes it, so it is
// padded off the cache lines lookups write.
type pass struct {
	next atomic.Int64
	_    [56]byte
}

// idle marks no pass under way over a table of n items.
func (p *pass) idle(n int) { p.next.Store(int64(n)) }

// start starts a pass from the first item.
func (p *pass) start() { p.next.Store(0) }

// running reports whether a pass over n items is under way.
func (p *pass) running(n int) bool { return p.next.Load() < int64(n) }

// step takes the next chunk items of the pass over n: items from to to-1
// (none when the pass has ended meanwhile).
func (p *pass) step(chunk, n int) (from, to int) {
	end := int(p.next.Add(int64(chunk)))
	return max(end-chunk, 0), min(end, n)
}

type paddedCount struct {
	n atomic.Uint64
	_ [56]byte
}

func (s *sketch) init(size int) {
	words := max(8, 1<<bits.Len(uint(max(size, 1)-1))) // the next power of two
	s.words = make([]uint64, words)
	s.blocks = uint64(words / 8)
	s.share = max(1, 5*uint64(max(size, 1))/countStripes) // a round: five additions per entry
	s.aged.idle(len(s.words))
}

// counter returns key's counter i (0–3): its word, and its shift within.
// The four are in distinct words of the block.
func (s *sketch) counter(h uint64, i int) (*uint64, uint) {
	block := h & (s.blocks - 1)
	word := block*8 + (h>>32+2*uint64(i))&7
	return &s.words[word], uint((h>>(48+4*i))&15) * 4
}

// spread mixes key, which may differ from another in few bits.
func spread(key uint64) uint64 {
	key ^= key >> 33
	key *= 0xff51afd7ed558ccd
	key ^= key >> 33
	return key
}

// add counts a lookup of key, and carries the halving pass under way a
// step further. Every period (two rounds, ten additions per entry) it
// starts a pass that halves every count; true when it ended a round (the
// index's sweep: see sweep).
func (s *sketch) add(key uint64) bool {
	h := spread(key)
	for i := range 4 {
		w, shift := s.counter(h, i)
		old := atomic.LoadUint64(w)
		if old>>shift&15 < 15 {
			atomic.CompareAndSwapUint64(w, old, old+1<<shift)
		}
	}
	if s.aged.running(len(s.words)) {
		s.age()
	}
	if s.adds[stripe(h)].n.Add(1)%s.share != 0 {
		return false
	}
	n := s.shares.Add(1)
	if n%countStripes != 0 {
		return false
	}
	if n%(2*countStripes) == 0 {
		s.aged.start()
	}
	return true
}

// age halves the next ageChunk words of the pass under way. A count
// added to before the pass reaches its word is halved with it: as
// approximate as the sketch is anyway.
func (s *sketch) age() {
	from, to := s.aged.step(ageChunk, len(s.words))
	for i := from; i < to; i++ {
		atomic.StoreUint64(&s.words[i], atomic.LoadUint64(&s.words[i])>>1&0x7777777777777777)
	}
}

// estimate returns key's count: the least of its four counters.
func (s *sketch) estimate(key uint64) int {
	h := spread(key)
	least := 15
	for i := range 4 {
		w, shift := s.counter(h, i)
		least = min(least, int(atomic.LoadUint64(w)>>shift&15))
	}
	return least
}
