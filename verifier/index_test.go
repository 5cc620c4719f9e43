package verifier

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// ledger follows which values an index holds, from what it is given and
// what it releases, and fails the test on a value released that it did
// not hold.
type ledger struct {
	t    testing.TB
	mu   sync.Mutex
	held map[uint32]uint64 // value → key
}

func newLedger(t testing.TB) *ledger { return &ledger{t: t, held: map[uint32]uint64{}} }

func (l *ledger) release(v uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[v]; !ok {
		l.t.Errorf("value %d released, not held", v)
	}
	delete(l.held, v)
}

// set sets key to a fresh value v in x, recording it if admitted.
func (l *ledger) set(x *index, key uint64, v uint32) {
	l.mu.Lock()
	l.held[v] = key // before set: set may release it at once, never
	l.mu.Unlock()
	if !x.set(key, v) {
		l.mu.Lock()
		delete(l.held, v)
		l.mu.Unlock()
	}
}

// check verifies that x holds exactly what the ledger says, at most its
// size, and finds each key's value.
func (l *ledger) check(x *index) {
	l.t.Helper()
	if n := x.count.Load(); n != int64(len(l.held)) || n > x.size {
		l.t.Fatalf("count %d, ledger %d, size %d", n, len(l.held), x.size)
	}
	ways := 0
	for i := range x.buckets {
		ways += x.buckets[i].used()
	}
	if ways != len(l.held) {
		l.t.Fatalf("%d ways used, %d values held", ways, len(l.held))
	}
	for v, key := range l.held {
		b1, b2 := x.pair(key)
		got, ok := x.buckets[b1].find(key)
		if !ok {
			got, ok = x.buckets[b2].find(key)
		}
		if !ok || got != v {
			l.t.Fatalf("key %x: got %d (%v), want %d", key, got, ok, v)
		}
	}
}

// TestIndexKeepsItsBooks: through random sets (new keys and replaced
// ones), lookups and removals, the index holds at most its size, finds
// every key it holds at its last value, and releases each value it stops
// holding exactly once.
func TestIndexKeepsItsBooks(t *testing.T) {
	l := newLedger(t)
	x := newIndex(64, l.release)
	r := rand.New(rand.NewPCG(1, 2))
	var next uint32
	for i := range 20_000 {
		key := indexKey(r.Uint64N(200) * 0x9e3779b97f4a7c15)
		switch op := r.IntN(10); {
		case op < 5:
			next++
			l.set(x, key, next)
		case op < 8:
			x.get(key)
		default:
			l.mu.Lock()
			var v uint32
			for hv, hk := range l.held {
				if hk == key {
					v = hv
				}
			}
			l.mu.Unlock()
			x.remove(key, v+1) // not its value: kept
			x.remove(key, v)
		}
		if i%97 == 0 {
			l.check(x)
		}
	}
	l.check(x)
	if x.count.Load() != 64 || x.evictions.Load() == 0 {
		t.Errorf("count %d, evictions %d: want the index full and evicting", x.count.Load(), x.evictions.Load())
	}
}

// TestIndexConcurrent runs the same operations on eight goroutines (with
// -race): no value is released twice or while not held, and the books
// balance at the end.
func TestIndexConcurrent(t *testing.T) {
	l := newLedger(t)
	x := newIndex(128, l.release)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 5_000 {
				key := indexKey(r.Uint64N(400)*0x9e3779b97f4a7c15 + 1)
				switch r.IntN(3) {
				case 0:
					l.set(x, key, uint32(g)<<24|uint32(i)+1)
				case 1:
					if v, ok := x.get(key); ok && r.IntN(4) == 0 {
						x.remove(key, v)
					}
				default:
					x.get(key)
				}
			}
		})
	}
	wg.Wait()
	l.check(x)
}

// TestIndexFillsToSize: distinct keys up to the index's size all go in,
// none evicted or refused — what two choices of bucket buy: with one, a
// bucket that draws more than its eight keys would refuse the rest.
func TestIndexFillsToSize(t *testing.T) {
	for _, size := range []int{1000, 100_000} {
		l := newLedger(t)
		x := newIndex(size, l.release)
		r := rand.New(rand.NewPCG(5, 6))
		for i := range size {
			l.set(x, indexKey(r.Uint64()), uint32(i))
		}
		if x.count.Load() != int64(size) || x.evictions.Load() != 0 {
			t.Errorf("size %d: %d held, %d evicted", size, x.count.Load(), x.evictions.Load())
		}
		l.check(x)
	}
}

// TestIndexAllocatesNothing: a lookup, a set and a removal allocate
// nothing (an unlock closure once escaped to the heap on every write).
func TestIndexAllocatesNothing(t *testing.T) {
	x := newIndex(64, func(uint32) {})
	key := indexKey(12345)
	if n := testing.AllocsPerRun(100, func() {
		x.set(key, 7)
		x.get(key)
		x.remove(key, 7)
	}); n != 0 {
		t.Errorf("%.1f allocations per set, get and remove", n)
	}
}

// TestSketchAgesInSteps: the halving of the counts that ends a period is
// spread over the additions after it, ageChunk words each, and halves
// every count exactly once — no one lookup halves the whole sketch.
func TestSketchAgesInSteps(t *testing.T) {
	var s sketch
	s.init(10000)
	n := len(s.words)
	if n <= 4*ageChunk {
		t.Fatalf("%d words: too few to see steps of %d", n, ageChunk)
	}
	for i := range s.words {
		s.words[i] = ^uint64(0) // every count 15
	}
	key := uint64(1)
	passes(t, "a period's end", 20*10000, func() bool { return s.aged.running(n) }, func() { s.add(key); key++ })
	// counts reports the words whose counts are all 15, all 7 or 8 (halved
	// once, maybe added to since), and any other.
	counts := func() (full, halved, other int) {
		for _, w := range s.words {
			switch {
			case w == ^uint64(0):
				full++
			case func() bool {
				for i := range 16 {
					if c := w >> (4 * i) & 15; c != 7 && c != 8 {
						return false
					}
				}
				return true
			}():
				halved++
			default:
				other++
			}
		}
		return
	}
	// The period's last addition only starts the pass; each one after
	// halves the next ageChunk words (and counts itself in four counters,
	// which stay 15 in a word not halved yet).
	if full, halved, other := counts(); full != n || halved != 0 || other != 0 {
		t.Fatalf("the period's end halved at once: %d full, %d halved, %d other of %d", full, halved, other, n)
	}
	for step := 1; step*ageChunk < n; step++ {
		s.add(key + uint64(step))
		if full, halved, other := counts(); halved+other != step*ageChunk || full != n-step*ageChunk || step == 1 && full < n/2 {
			t.Fatalf("after %d additions: %d halved, %d other, %d full of %d", step, halved, other, full, n)
		}
	}
	s.add(key)
	if full, halved, other := counts(); halved != n || full != 0 || other != 0 {
		t.Fatalf("after the pass: %d halved once, %d full, %d other of %d", halved, full, other, n)
	}
	if s.aged.running(n) {
		t.Fatal("the pass is still under way")
	}
}

// TestIndexSweepsInSteps: the recency sweep a half period's end starts is
// spread over the lookups after it, sweepChunk buckets each, and reaches
// every bucket once: a key found before the sweep is stale after the next.
func TestIndexSweepsInSteps(t *testing.T) {
	x := newIndex(4000, func(uint32) {})
	for k := uint64(1); k <= 4000; k++ {
		x.set(k, uint32(k))
	}
	n := len(x.buckets)
	referenced := func() int {
		r := 0
		for i := range x.buckets {
			if x.buckets[i].ref != 0 {
				r++
			}
		}
		return r
	}
	used := 0
	for i := range x.buckets {
		if x.buckets[i].used() > 0 {
			used++
		}
	}
	if referenced() != used {
		t.Fatalf("%d buckets referenced after the sets, %d used", referenced(), used)
	}
	// Look up a key outside the index until a pass starts: one lookup has
	// swept sweepChunk buckets, not all of them.
	under := func() bool { return x.swept.running(n) }
	done := func() bool { return !under() }
	lookup := func() { x.get(1 << 40) }
	passes(t, "a sweep under way (none started, or one lookup swept every bucket)", 100*4000, under, lookup)
	if swept := used - referenced(); swept > sweepChunk || swept >= used/2 {
		t.Fatalf("the lookup that started the sweep swept %d buckets (chunk %d)", swept, sweepChunk)
	}
	passes(t, "the end of the sweep", 100*4000, done, lookup)
	if r := referenced(); r != 0 {
		t.Fatalf("%d buckets not swept by the end of the pass", r)
	}
	// staleKeys counts the stale ways that hold a key.
	staleKeys := func() int {
		stale := 0
		for i := range x.buckets {
			b := &x.buckets[i]
			for w, k := range b.keys {
				if k != 0 && b.stale&(1<<w) != 0 {
					stale++
				}
			}
		}
		return stale
	}
	// Every key was set in the period that ended: none is stale. None is
	// found in the next, so each is stale once the next pass has passed.
	if stale := staleKeys(); stale != 0 {
		t.Fatalf("%d keys stale after a period they were set in", stale)
	}
	passes(t, "the next sweep", 100*4000, under, lookup)
	passes(t, "the end of the next sweep", 100*4000, done, lookup)
	if stale := staleKeys(); stale != 4000 {
		t.Errorf("%d keys stale after a period without lookups, want every one of 4000", stale)
	}
}

// TestIndexPassesEvenlySpaced: with lookups of many keys (spread over the
// sketch's counting stripes, which fill together), a recency sweep starts
// every five lookups per entry and a halving every ten — not in pairs at
// the period's end, which would leave most keys stale for a period.
func TestIndexPassesEvenlySpaced(t *testing.T) {
	const size = 4000
	x := newIndex(size, func(uint32) {})
	var sweeps, halvings []int
	idle := func() (bool, bool) {
		return !x.swept.running(len(x.buckets)), !x.freq.aged.running(len(x.freq.words))
	}
	sweepIdle, ageIdle := idle()
	for i := 1; i <= 25*5*size; i++ {
		x.get(uint64(i)*0x9e3779b97f4a7c15 | 1)
		s, a := idle()
		if sweepIdle && !s {
			sweeps = append(sweeps, i)
		}
		if ageIdle && !a {
			halvings = append(halvings, i)
		}
		sweepIdle, ageIdle = s, a
	}
	check := func(what string, starts []int, every int) {
		t.Helper()
		if len(starts) < 10 {
			t.Fatalf("%d %s in %d lookups, want one every %d", len(starts), what, 25*5*size, every)
		}
		for k := 1; k < len(starts); k++ {
			if gap := starts[k] - starts[k-1]; gap < every*9/10 || gap > every*11/10 {
				t.Errorf("%s %d and %d start %d lookups apart, want about %d: %v", what, k, k+1, gap, every, starts)
				return
			}
		}
	}
	check("sweeps", sweeps, 5*size)
	check("halvings", halvings, 10*size)
}

// passes calls step until done holds, and fails the test, saying what
// was awaited, if it does not after limit calls.
func passes(t *testing.T, what string, limit int, done func() bool, step func()) {
	t.Helper()
	for i := 0; !done(); i++ {
		if i == limit {
			t.Fatalf("waited for %s: not there after %d steps", what, limit)
		}
		step()
	}
}

// BenchmarkIndexGet is a lookup of a held key, with its frequency counted.
func BenchmarkIndexGet(b *testing.B) {
	const size = 100_000
	x := newIndex(size, func(uint32) {})
	keys := make([]uint64, size)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range keys {
		keys[i] = indexKey(r.Uint64())
		x.set(keys[i], uint32(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := x.get(keys[i%size]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}
