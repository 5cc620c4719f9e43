package verifier

import (
	"sync"
	"sync/atomic"
)

// chunkSlots is how many numbers share a chunk: the slab's records and the
// boxed entries are made a chunk at a time, as numbers are first used.
const chunkSlots = 1024

// numbered hands out numbers below a maximum, each naming a place in a
// chunk (a C: an array of chunkSlots places), and takes them back for
// reuse. The chunk of a number is made when the number first goes out.
// Chunks are found through a directory sized for the maximum once, so a
// lookup is one atomic load and no chunk made later ever copies the
// directory. A chunk is stored before any of its numbers goes out, so a
// reader given a number (through the index) finds its chunk without the
// lock.
type numbered[C any] struct {
	mu     sync.Mutex
	free   freeList // guarded by mu
	chunks []atomic.Pointer[C]
	made   atomic.Int32 // chunks made so far
}

func (n *numbered[C]) init(max int) {
	n.free.max = uint32(max)
	n.chunks = make([]atomic.Pointer[C], (max+chunkSlots-1)/chunkSlots)
}

// take returns a number; false when all are out, or when its chunk had to
// be made and newChunk returned nil.
func (n *numbered[C]) take(newChunk func() *C) (uint32, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.free.take(func(k uint32) bool {
		c := newChunk()
		if c == nil {
			return false
		}
		n.chunks[k].Store(c)
		n.made.Add(1)
		return true
	})
}

// give takes number i back.
func (n *numbered[C]) give(i uint32) {
	n.mu.Lock()
	n.free.give(i)
	n.mu.Unlock()
}

// chunk returns the chunk of number i and i's place in it; nil if no
// number of that chunk has gone out yet.
func (n *numbered[C]) chunk(i uint32) (*C, uint32) {
	return n.chunks[i/chunkSlots].Load(), i % chunkSlots
}

// freeList hands out numbers below max, reusing those given back last
// first. The numbers given back are kept in blocks of freeBlock: giving
// one back never copies the others, however many there are (a single
// slice, when it grows, copies every number in it under the cache's lock:
// up to 40 MB at serve's cap of 10M cached tokens).
type freeList struct {
	blocks [][]uint32 // the last may be partly full; none is empty
	// spare is an emptied block, kept so that a take and a give at a
	// block's edge allocate nothing.
	spare []uint32
	next  uint32 // numbers below next have been handed out at least once
	max   uint32
}

const freeBlock = 1024

// take returns a number; false when all max are out. Numbers are handed
// out in chunks of chunkSlots: before the first number of chunk k goes out
// for the first time, grow(k) is asked to make the chunk ready, and its
// false keeps the number back and fails the take.
func (f *freeList) take(grow func(k uint32) bool) (uint32, bool) {
	if n := len(f.blocks); n > 0 {
		b := f.blocks[n-1]
		i := b[len(b)-1]
		if len(b) == 1 {
			f.spare = b[:0]
			f.blocks[n-1] = nil
			f.blocks = f.blocks[:n-1]
		} else {
			f.blocks[n-1] = b[:len(b)-1]
		}
		return i, true
	}
	if f.next >= f.max || f.next%chunkSlots == 0 && !grow(f.next/chunkSlots) {
		return 0, false
	}
	f.next++
	return f.next - 1, true
}

// give puts number i back.
func (f *freeList) give(i uint32) {
	n := len(f.blocks)
	if n == 0 || len(f.blocks[n-1]) == freeBlock {
		b := f.spare
		if b == nil {
			b = make([]uint32, 0, freeBlock)
		}
		f.spare = nil
		f.blocks = append(f.blocks, append(b, i))
		return
	}
	f.blocks[n-1] = append(f.blocks[n-1], i)
}
