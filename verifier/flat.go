package verifier

import (
	"strings"
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
// (Token.keptKind).
const (
	maxFlatMemo  = 8
	flatBufWords = slotWords - 14
	flatBufBytes = flatBufWords * 8
	keptRef      = 0xffff
)

// encodeFlat writes e — a compact cached token with its Memo value, no
// claims and no remote key sets — into rec; false if it does not fit a
// slot or its origin is not one of the verifier's shared ones.
func (c *tokenCache) encodeFlat(e *cacheEntry, rec *[slotWords]uint64) bool {
	tok := &e.tok
	oi, ok := c.originIndex[tok.origin]
	memo := e.cell.value
	// A nil Memo value (fn could derive none) is not an empty one: it
	// stays boxed, where it keeps that difference.
	if !ok || e.used != nil || tok.Claims != nil || memo == nil || len(memo) > maxFlatMemo {
		return false
	}
	buf := (*[flatBufBytes]byte)(unsafe.Pointer(&rec[14]))
	n := 0
	put := func(s string) (int, bool) {
		if n+len(s) > flatBufBytes {
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

// flatUsable reports whether the record's token is unexpired at now
// (Unix milliseconds) and was verified under gen.
func (c *tokenCache) flatUsable(rec *[slotWords]uint64, now int64, gen uint64) (usable, expired bool) {
	if now >= int64(rec[6])+c.leewayMs {
		return false, true
	}
	return uint32(rec[5]>>32) == uint32(gen), false
}

// decodeFlat builds the cache entry a record holds, for a hit: one
// allocation for the entry with its Token, one for the strings, one for
// the Memo value. d is the derivation whose value the record holds.
func (c *tokenCache) decodeFlat(rec *[slotWords]uint64, d *derivation) *cacheEntry {
	buf := (*[flatBufBytes]byte)(unsafe.Pointer(&rec[14]))
	s := strings.Clone(unsafe.String(&buf[0], int(rec[8]>>48)))
	o := c.origins[uint32(rec[8])]
	lens := rec[9]
	cut := func(off, n uint64) string { return s[off : off+n] }
	lsub, lid, lsid, lgr := lens&0xffff, lens>>16&0xffff, lens>>32&0xffff, lens>>48
	e := &cacheEntry{h: [4]uint64{rec[1], rec[2], rec[3], rec[4]}, n: uint32(rec[5]), gen: uint32(rec[5] >> 32)}
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
