package verifier

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// maxTaggedBytes bounds the tokens the cache keeps: the tag key grows with
// the longest token it covers (32 bytes of key per 16 bytes of token), and
// a token longer than this is rare enough to verify every time.
const maxTaggedBytes = 16 << 10

// tokenTag names a raw token in the verified-token cache instead of the
// token itself, so that an entry holds 36 bytes and no pointer where it
// held the whole token: two 128-bit NH sums of the token under two
// independent secret keys, and its length.
//
// Why a tag cannot make one token pass for another: NH (the universal hash
// of UMAC, Black et al., CRYPTO '99) is 2⁻⁶⁴-almost-universal on inputs of
// equal length — for any two distinct equal-length inputs, at most a 2⁻⁶⁴
// fraction of keys give them the same sum — and the two sums use
// independent keys, so two distinct tokens of the same length share a tag
// with probability at most 2⁻¹²⁸; tokens of different lengths never do.
// The bound holds for any tokens, chosen by an attacker or not, as long as
// the keys are secret: they come from crypto/rand, never leave the
// process, and a tag is never shown — a client observes whether its token
// was accepted, which short of a collision (the event being bounded) does
// not depend on the keys, and at most, by timing, where in the table its
// tag led. Over q presented tokens and n cached ones, the chance that any
// is taken for another is at most q·n·2⁻¹²⁸: 2⁻⁶¹ for 2⁵⁰ requests against
// 2¹⁷ entries.
//
// NH rather than SHA-256: it costs one 64×64-bit multiply per 8 bytes,
// a third or a quarter of SHA-256 on a token (BenchmarkTag), which would
// cost several times a whole hit. Not the runtime's keyed hash alone
// (hash/maphash): it spreads keys over buckets, nothing bounds its
// collisions, and it is documented as not cryptographically secure. And
// not a keyed hash with the whole token compared: the entry would keep
// the token, which is most of what the tag saves — except in the small
// hot table (see hotTable), which spares the hottest tokens their tagging,
// the one cost the tag adds: somewhat more than hashing a token twice and
// comparing it whole, as the cache before it did.
type tokenTag struct {
	h [4]uint64
	n uint32
}

// equal compares two tags in time independent of where they differ.
func (t *tokenTag) equal(o *tokenTag) bool {
	return (t.h[0]^o.h[0])|(t.h[1]^o.h[1])|(t.h[2]^o.h[2])|(t.h[3]^o.h[3])|uint64(t.n^o.n) == 0
}

// slot is the 64 bits of a tag the cache's table is keyed by. Two tokens
// that share it but not their tag replace each other's entry: a miss,
// never a confusion, since a hit compares the whole tag. The low words
// take part: a high word alone maps tokens that differ in a few bytes to
// nearby values, often the same one.
func (t *tokenTag) slot() uint64 { return t.h[0] ^ t.h[1] ^ t.h[2] ^ t.h[3] }

// tagger computes tags with one secret key.
type tagger struct {
	// key interleaves the two NH keys, four words per 16-byte block: the
	// first key's pair, then the second's. Read-only after newTagger.
	key []uint64
}

// newTagger draws a key covering tokens of up to max bytes.
func newTagger(max int) *tagger {
	blocks := (max + 15) / 16
	buf := make([]byte, 32*blocks)
	rand.Read(buf) // crypto/rand.Read never fails
	key := make([]uint64, 4*blocks)
	for i := range key {
		key[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return &tagger{key: key}
}

// tag returns raw's tag, and false for a token longer than the key covers.
func (tg *tagger) tag(raw string) (tokenTag, bool) {
	if len(raw) > 4*len(tg.key) { // 16 bytes per 4 words
		return tokenTag{}, false
	}
	// Read-only view of the string's bytes: nothing writes through it.
	b := unsafe.Slice(unsafe.StringData(raw), len(raw))
	return tokenTag{h: nh(tg.key, b), n: uint32(len(raw))}, true
}

// nh returns the two NH sums (low, high words of each) of b, zero-padded
// to a multiple of 16 bytes, under the interleaved keys k: for each block
// of little-endian words m0, m1, a sum gains (m0+k0)·(m1+k1) mod 2¹²⁸, the
// additions mod 2⁶⁴. The loop takes 32 bytes at a time, which keeps the
// sums in registers.
func nh(k []uint64, b []byte) [4]uint64 {
	var alo, ahi, blo, bhi uint64 // a: the first key's sum; b: the second's
	n := len(b) / 32
	for i := range n {
		m := (*[32]byte)(b[32*i:])
		kk := (*[8]uint64)(k[8*i:])
		m0 := binary.LittleEndian.Uint64(m[0:8])
		m1 := binary.LittleEndian.Uint64(m[8:16])
		m2 := binary.LittleEndian.Uint64(m[16:24])
		m3 := binary.LittleEndian.Uint64(m[24:32])
		alo, ahi = mulAdd(alo, ahi, m0+kk[0], m1+kk[1])
		blo, bhi = mulAdd(blo, bhi, m0+kk[2], m1+kk[3])
		alo, ahi = mulAdd(alo, ahi, m2+kk[4], m3+kk[5])
		blo, bhi = mulAdd(blo, bhi, m2+kk[6], m3+kk[7])
	}
	b, k = b[32*n:], k[8*n:]
	for len(b) > 0 {
		var block [16]byte
		c := copy(block[:], b)
		m0 := binary.LittleEndian.Uint64(block[0:8])
		m1 := binary.LittleEndian.Uint64(block[8:16])
		alo, ahi = mulAdd(alo, ahi, m0+k[0], m1+k[1])
		blo, bhi = mulAdd(blo, bhi, m0+k[2], m1+k[3])
		b, k = b[c:], k[4:]
	}
	return [4]uint64{alo, ahi, blo, bhi}
}

// mulAdd returns hi:lo + x·y mod 2¹²⁸.
func mulAdd(lo, hi, x, y uint64) (uint64, uint64) {
	ph, pl := bits.Mul64(x, y)
	var c uint64
	lo, c = bits.Add64(lo, pl, 0)
	return lo, hi + ph + c
}
