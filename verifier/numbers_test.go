package verifier

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestFreeListAgainstModel runs random takes and gives, across many of
// the free list's blocks, against a plain stack: each take returns what
// the stack says (the number given back last, else the next never used),
// grow is asked exactly at each chunk's first number, and a refused grow
// keeps the number back.
func TestFreeListAgainstModel(t *testing.T) {
	const max = 6*chunkSlots + 100
	f := freeList{max: max}
	var stack, held []uint32
	next := uint32(0)
	refusals := 0
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 200_000 {
		// Drift between mostly taking and mostly giving back, so that the
		// free list fills and empties many blocks and all numbers go out.
		takeBias := 0.9
		if step/20_000%2 == 1 {
			takeBias = 0.1
		}
		if len(held) == 0 || r.Float64() < takeBias {
			var grew []uint32
			refused := false
			i, ok := f.take(func(chunk uint32) bool {
				grew = append(grew, chunk)
				refused = r.IntN(2) == 0
				return !refused
			})
			var want uint32
			wantOK, wantGrow := true, false
			switch {
			case len(stack) > 0:
				want = stack[len(stack)-1]
			case next >= max:
				wantOK = false
			case next%chunkSlots == 0:
				wantGrow, wantOK, want = true, !refused, next
			default:
				want = next
			}
			if ok != wantOK || ok && i != want {
				t.Fatalf("step %d: take = %d, %v; want %d, %v", step, i, ok, want, wantOK)
			}
			if wantGrow != (len(grew) == 1) || len(grew) > 1 || wantGrow && grew[0] != next/chunkSlots {
				t.Fatalf("step %d: grow asked for %v at number %d", step, grew, next)
			}
			if refused {
				refusals++
			}
			if !ok {
				continue
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			} else {
				next++
			}
			held = append(held, i)
			continue
		}
		k := r.IntN(len(held))
		i := held[k]
		held[k] = held[len(held)-1]
		held = held[:len(held)-1]
		f.give(i)
		stack = append(stack, i)
	}
	if next != max || refusals == 0 {
		t.Fatalf("%d of %d numbers went out, %d grows refused: the run did not reach the maximum and a refusal", next, max, refusals)
	}
}

// TestFreeListBlocks: numbers given back are kept in blocks of freeBlock,
// never in one slice that a give would have to copy whole when it grows,
// and a take and a give at a block's edge allocate nothing.
func TestFreeListBlocks(t *testing.T) {
	const n = 10*freeBlock + 3
	f := freeList{max: n}
	for range n {
		if _, ok := f.take(func(uint32) bool { return true }); !ok {
			t.Fatal("take failed below max")
		}
	}
	for i := range uint32(n) {
		f.give(i)
	}
	if len(f.blocks) != 11 {
		t.Fatalf("%d blocks for %d numbers", len(f.blocks), n)
	}
	for k, b := range f.blocks {
		if cap(b) != freeBlock {
			t.Fatalf("block %d has capacity %d", k, cap(b))
		}
	}
	// Hold the last block's three numbers: the blocks left are full, and
	// the emptied one is the spare.
	var x uint32
	for range 3 {
		x, _ = f.take(nil)
	}
	if a := testing.AllocsPerRun(100, func() {
		f.give(x) // a new block, from the spare
		if i, _ := f.take(nil); i != x {
			t.Fatalf("take = %d after giving %d back", i, x)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per give and take at a block's edge", a)
	}
	for want := n - 4; want >= 0; want-- {
		if i, ok := f.take(nil); !ok || i != uint32(want) {
			t.Fatalf("take = %d, %v; want %d", i, ok, want)
		}
	}
	if len(f.blocks) != 0 {
		t.Fatalf("%d blocks left with nothing free", len(f.blocks))
	}
}

// TestNumberedChunks: a number's chunk is made when the chunk's first
// number first goes out, once, and found through chunk; a chunk that could
// not be made fails the take and is asked for again by the next.
func TestNumberedChunks(t *testing.T) {
	var n numbered[[chunkSlots]int]
	n.init(3*chunkSlots - 1)
	if len(n.chunks) != 3 {
		t.Fatalf("%d chunks for 3*chunkSlots-1 numbers", len(n.chunks))
	}
	fail := false
	made := 0
	newChunk := func() *[chunkSlots]int {
		if fail {
			return nil
		}
		made++
		return new([chunkSlots]int)
	}
	for i := range uint32(chunkSlots + 1) {
		got, ok := n.take(newChunk)
		if !ok || got != i {
			t.Fatalf("take = %d, %v; want %d", got, ok, i)
		}
		c, j := n.chunk(i)
		if c == nil || j != i%chunkSlots {
			t.Fatalf("chunk(%d) = %p, %d", i, c, j)
		}
		c[j] = int(i)
	}
	if made != 2 || n.made.Load() != 2 {
		t.Fatalf("made %d chunks (counted %d) for chunkSlots+1 numbers", made, n.made.Load())
	}
	if c, _ := n.chunk(2 * chunkSlots); c != nil {
		t.Fatal("the third chunk exists before any of its numbers went out")
	}
	if c, j := n.chunk(chunkSlots); c[j] != chunkSlots {
		t.Fatal("a number's place is not where it was written")
	}
	for range chunkSlots - 1 {
		n.take(newChunk)
	}
	fail = true
	if _, ok := n.take(newChunk); ok {
		t.Fatal("take succeeded though its chunk could not be made")
	}
	fail = false
	if i, ok := n.take(newChunk); !ok || i != 2*chunkSlots || made != 3 {
		t.Fatalf("take after a refused chunk = %d, %v (%d chunks made)", i, ok, made)
	}
	n.give(5)
	if i, ok := n.take(newChunk); !ok || i != 5 || made != 3 {
		t.Fatalf("take = %d, %v after giving 5 back (%d chunks made)", i, ok, made)
	}
}

// TestNumberedReadersWhileChunksAreMade: readers look numbers up without
// the lock while a taker makes chunk after chunk and publishes each number
// it takes (as the index does). Every published number's chunk is there,
// with what was written to its place before it was published; -race
// checks the publication.
func TestNumberedReadersWhileChunksAreMade(t *testing.T) {
	const total = 8 * chunkSlots
	var n numbered[[chunkSlots]atomic.Int64]
	n.init(total)
	var published atomic.Int64 // numbers below it are published
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				p := published.Load()
				if p == 0 {
					continue
				}
				i := uint32(rand.Int64N(p))
				c, j := n.chunk(i)
				if c == nil {
					t.Errorf("number %d published, its chunk missing", i)
					return
				}
				if got := c[j].Load(); got != int64(i)+1 {
					t.Errorf("number %d holds %d", i, got)
					return
				}
			}
		})
	}
	for want := range uint32(total) {
		i, ok := n.take(func() *[chunkSlots]atomic.Int64 { return new([chunkSlots]atomic.Int64) })
		if !ok || i != want {
			t.Fatalf("take = %d, %v; want %d", i, ok, want)
		}
		c, j := n.chunk(i)
		c[j].Store(int64(i) + 1)
		published.Store(int64(i) + 1)
	}
	close(done)
	wg.Wait()
	if n.made.Load() != 8 {
		t.Fatalf("%d chunks made for 8 chunks' numbers", n.made.Load())
	}
}
