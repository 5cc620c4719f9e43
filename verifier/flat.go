package verifier

import (
	"strings"
	"time"
	"unsafe"
)

// A flat record is a cached verification in a slab slot (see slab): no
// Go pointer, so the garbage collector never sees it. Word 0 is the slot's
// sequence number; then
//
//	1–4   the tag's h          9   lengths: subject, jti, sid, grants (16 bits each)
//	5     tag n, generation    10–13 Memo value: up to maxFlatMemo refs (32 bits each)
//	6, 7  exp, iat (ms)        14–   bytes: subject, jti, sid, grants, then
//	8     origin index, Memo          the Memo strings the token does not keep
//	      count, bytes used
//
// A Memo ref is an offset (16 bits) and a length (16 bits) in the bytes,
// or, for a string the token keeps anyway, keptRef and which one
// (Token.keptKind). A token verified with a remote key set's keys has
// flatRemote in its origin index, and word 14 names the set (its index,
// 16 bits) and the generation of its keys (48 bits); its bytes start at
// word 15.
const (
	maxFlatMemo    = 8
	keptRef        = 0xffff
	flatRemote     = 1 << 31
	maxFlatRemotes = 1 << 16
)

// encodeFlat writes e — a compact cached token with its Memo value, no
// claims and the keys of at most one remote set — into rec; false if it
// does not fit a slot, or its origin or remote set is not one of the
// verifier's.
func (c *tokenCache) encodeFlat(e *cacheEntry, rec *[slotWords]uint64) bool {
	tok := &e.tok
	oi, ok := c.originIndex[tok.origin]
	memo := e.cell.value
	// A nil Memo value (fn could derive none) is not an empty one: it
	// stays boxed, where it keeps that difference.
	if !ok || tok.Claims != nil || memo == nil || len(memo) > maxFlatMemo {
		return false
	}
	if e.used != nil {
		if len(e.used.remotes) != 1 {
			return false
		}
		rg := e.used.remotes[0]
		ri, ok := c.remoteIndex[rg.r]
		if !ok || rg.gen >= 1<<48 {
			return false
		}
		oi |= flatRemote
		rec[14] = uint64(ri) | rg.gen<<16
	}
	first := flatFirst(oi)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&rec[first])), (slotWords-first)*8)
	n := 0
	put := func(s string) (int, bool) {
		if n+len(s) > len(buf) {
			return 0, false
		}
		off := n
		n += copy(buf[n:], s)
		return off, true
	}
	for _, s := range []string{tok.Subject, tok.ID, tok.SessionID, tok.grants} {
		if len(s) > 0xffff {
			return false
		}
		if _, ok = put(s); !ok {
			return false
		}
	}
	refs := (*[maxFlatMemo]uint32)(unsafe.Pointer(&rec[10]))
	*refs = [maxFlatMemo]uint32{}
	for i, v := range memo {
		off, l := keptRef, tok.keptKind(v)
		if l == keptNone {
			if len(v) > 0xffff {
				return false
			}
			if off, ok = put(v); !ok {
				return false
			}
			l = len(v)
		}
		refs[i] = uint32(off) | uint32(l)<<16
	}
	rec[1], rec[2], rec[3], rec[4] = e.h[0], e.h[1], e.h[2], e.h[3]
	rec[5] = uint64(e.n) | uint64(e.gen)<<32
	rec[6], rec[7] = uint64(tok.exp), uint64(tok.iat)
	rec[8] = uint64(oi) | uint64(len(memo))<<32 | uint64(n)<<48
	rec[9] = uint64(len(tok.Subject)) | uint64(len(tok.ID))<<16 | uint64(len(tok.SessionID))<<32 | uint64(len(tok.grants))<<48
	return true
}

// flatTagIs reports whether a record was written for tag t.
func flatTagIs(rec *[slotWords]uint64, t *tokenTag) bool {
	return t.equal(&tokenTag{h: [4]uint64{rec[1], rec[2], rec[3], rec[4]}, n: uint32(rec[5])})
}

// flatUsable reports whether the record's token is unexpired at now and
// was verified under gen and, if with a remote set's keys, whether that
// set still serves the same generation unstale (use: what the entry
// built from the record depends on, as a boxed one's used). Staleness is
// the set's current snapshot's: after a fetch that returned the same keys
// it comes later than the one a boxed entry keeps from when it was cached
// — as a full verification at now would judge it.
func (c *tokenCache) flatUsable(rec *[slotWords]uint64, now time.Time, gen uint64) (use *keyUse, usable, expired bool) {
	if now.UnixMilli() >= int64(rec[6])+c.leewayMs {
		return nil, false, true
	}
	if uint32(rec[5]>>32) != uint32(gen) {
		return nil, false, false
	}
	if uint32(rec[8])&flatRemote == 0 {
		return nil, true, false
	}
	r := c.remotes[uint16(rec[14])]
	snap := r.keys.Load()
	if snap == nil || snap.use == nil || snap.gen != rec[14]>>16 || !now.Before(snap.use.until) {
		return nil, false, false
	}
	return snap.use, true, false
}

// flatFirst is the word where a record's bytes start, by its origin word
// (rec[8]'s low half): after the remote set's word if it names one.
func flatFirst(origin uint32) int {
	if origin&flatRemote != 0 {
		return 15
	}
	return 14
}

// decodeFlat builds the cache entry a record holds, for a hit: one
// allocation for the entry with its Token, one for the strings, one for
// the Memo value. d is the derivation whose value the record holds, use
// what its validity depends on (flatUsable).
func (c *tokenCache) decodeFlat(rec *[slotWords]uint64, d *derivation, use *keyUse) *cacheEntry {
	s := strings.Clone(unsafe.String((*byte)(unsafe.Pointer(&rec[flatFirst(uint32(rec[8]))])), int(rec[8]>>48)))
	o := c.origins[uint32(rec[8])&^flatRemote]
	lens := rec[9]
	cut := func(off, n uint64) string { return s[off : off+n] }
	lsub, lid, lsid, lgr := lens&0xffff, lens>>16&0xffff, lens>>32&0xffff, lens>>48
	e := &cacheEntry{h: [4]uint64{rec[1], rec[2], rec[3], rec[4]}, n: uint32(rec[5]), gen: uint32(rec[5] >> 32), used: use}
	e.tok = Token{origin: o, Subject: cut(0, lsub), ID: cut(lsub, lid), SessionID: cut(lsub+lid, lsid), grants: cut(lsub+lid+lsid, lgr),
		exp: int64(rec[6]), iat: int64(rec[7]), cell: &e.cell}
	refs := (*[maxFlatMemo]uint32)(unsafe.Pointer(&rec[10]))
	memo := make([]string, int(rec[8]>>32&0xffff))
	for i := range memo {
		off, l := uint64(refs[i]&0xffff), uint64(refs[i]>>16)
		if off == keptRef {
			memo[i] = e.tok.kept(int(l))
		} else {
			memo[i] = cut(off, l)
		}
	}
	e.cell.key, e.cell.value = d.key, memo
	e.cell.state.Store(memoKept)
	return e
}
