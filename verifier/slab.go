package verifier

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// slab holds cached verifications as fixed-size records outside the Go
// heap (where the platform allows; see mapChunk): a record holds no Go
// pointer, so the garbage collector neither traces the cache's tokens nor
// counts them in the heap it paces itself by. Records live in chunks of
// chunkSlots, mapped as the cache fills, and are reused through a free
// list; a slot is named by its index.
//
// A slot's first word is its sequence number, odd while the slot is being
// written: a reader copies the slot with atomic loads and keeps the copy
// only if the number was even and unchanged around the copy. A slot
// reused while a reader copies it is therefore a miss for that reader,
// never a mix of two records; the reader then checks that the copy's tag
// is the one it looked up.
type slab struct {
	slots numbered[chunk]
}

const slotWords = 40 // 320 bytes: 112 of header, 208 for the strings

type chunk [chunkSlots][slotWords]uint64

// newSlab returns a slab of up to max slots. Its chunks are unmapped once
// the slab is unreachable.
func newSlab(max int) *slab {
	s := &slab{}
	s.slots.init(max)
	return s
}

// alloc returns a free slot, or false when the slab is full.
func (s *slab) alloc() (uint32, bool) {
	return s.slots.take(func() *chunk {
		c, unmap := mapChunk()
		if c != nil {
			runtime.AddCleanup(s, func(f func()) { f() }, unmap)
		}
		return c
	})
}

// release puts slot i back on the free list.
func (s *slab) release(i uint32) { s.slots.give(i) }

// limit reports the bytes of the chunks a full slab maps.
func (s *slab) limit() int {
	return len(s.slots.chunks) * int(unsafe.Sizeof(chunk{}))
}

// mapped reports the bytes of the chunks mapped so far.
func (s *slab) mapped() int {
	return int(s.slots.made.Load()) * int(unsafe.Sizeof(chunk{}))
}

func (s *slab) slot(i uint32) *[slotWords]uint64 {
	c, j := s.slots.chunk(i)
	return &c[j]
}

// write stores rec in slot i, which the caller owns (from alloc, not yet
// published).
func (s *slab) write(i uint32, rec *[slotWords]uint64) {
	p := s.slot(i)
	seq := atomic.LoadUint64(&p[0])
	atomic.StoreUint64(&p[0], seq+1)
	for w := 1; w < slotWords; w++ {
		atomic.StoreUint64(&p[w], rec[w])
	}
	atomic.StoreUint64(&p[0], seq+2)
	runtime.KeepAlive(s) // p is not a pointer the collector follows
}

// read copies slot i into dst; false when the slot was being written or
// changed during the copy.
func (s *slab) read(i uint32, dst *[slotWords]uint64) bool {
	p := s.slot(i)
	seq := atomic.LoadUint64(&p[0])
	if seq&1 != 0 {
		return false
	}
	for w := 1; w < slotWords; w++ {
		dst[w] = atomic.LoadUint64(&p[w])
	}
	ok := atomic.LoadUint64(&p[0]) == seq
	runtime.KeepAlive(s) // p is not a pointer the collector follows
	return ok
}
