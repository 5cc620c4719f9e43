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
