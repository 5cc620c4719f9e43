package tracing

import (
	"encoding/hex"
	"math/rand/v2"
)

// SpanContext identifies one span of a trace, as a traceparent header
// carries it (W3C Trace Context §3.2).
type SpanContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	// Flags are the trace flags; bit 0 (FlagSampled) says the caller may
	// have recorded its span.
	Flags byte
}

// FlagSampled is the sampled bit of SpanContext.Flags.
const FlagSampled = 0x01

// TraceparentLen is the length of a version 00 traceparent value.
const TraceparentLen = 55

// MaxTracestate is the longest tracestate forwarded; W3C Trace Context
// §3.3.1.1 lets a vendor drop one that exceeds 512 characters.
const MaxTracestate = 512

// Valid reports whether both IDs are set: all-zero IDs are invalid.
func (sc SpanContext) Valid() bool {
	return sc.TraceID != [16]byte{} && sc.SpanID != [8]byte{}
}

// Sampled reports whether the sampled flag is set.
func (sc SpanContext) Sampled() bool { return sc.Flags&FlagSampled != 0 }

// ParseTraceparent parses a traceparent header value. It accepts version
// 00 exactly and, as §4.3 asks, a higher version by its first four
// fields; an invalid value (wrong length, upper-case or non-hex digits,
// all-zero IDs, version ff) is reported as not ok, and the caller starts
// a new trace.
func ParseTraceparent(s string) (sc SpanContext, ok bool) {
	if len(s) < TraceparentLen || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return SpanContext{}, false
	}
	version, ok := hexByte(s[0], s[1])
	switch {
	case !ok || version == 0xff:
		return SpanContext{}, false
	case version == 0 && len(s) != TraceparentLen:
		return SpanContext{}, false
	case version > 0 && len(s) > TraceparentLen && s[TraceparentLen] != '-':
		return SpanContext{}, false
	}
	for i := range sc.TraceID {
		if sc.TraceID[i], ok = hexByte(s[3+2*i], s[4+2*i]); !ok {
			return SpanContext{}, false
		}
	}
	for i := range sc.SpanID {
		if sc.SpanID[i], ok = hexByte(s[36+2*i], s[37+2*i]); !ok {
			return SpanContext{}, false
		}
	}
	if sc.Flags, ok = hexByte(s[53], s[54]); !ok || !sc.Valid() {
		return SpanContext{}, false
	}
	return sc, true
}

// AppendTraceparent appends sc as a version 00 traceparent value (the
// version tollgate speaks, whatever version it received).
func (sc SpanContext) AppendTraceparent(b []byte) []byte {
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, sc.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, sc.SpanID[:])
	b = append(b, '-')
	return hex.AppendEncode(b, []byte{sc.Flags})
}

// String returns the traceparent value.
func (sc SpanContext) String() string {
	return string(sc.AppendTraceparent(make([]byte, 0, TraceparentLen)))
}

// ValidTracestate reports whether a tracestate value may be forwarded:
// at most MaxTracestate characters of printable ASCII (the list's syntax
// is the upstream's business; a control character is not).
func ValidTracestate(s string) bool {
	if len(s) > MaxTracestate {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// newTraceID returns a random, non-zero trace ID. The runtime's
// generator (ChaCha8, per thread) is fast and unpredictable enough for
// IDs that only need to be unique.
func newTraceID() (id [16]byte) {
	for id == [16]byte{} {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
	}
	return id
}

// newSpanID returns a random, non-zero span ID.
func newSpanID() (id [8]byte) {
	for id == [8]byte{} {
		a := rand.Uint64()
		for i := range 8 {
			id[i] = byte(a >> (8 * i))
		}
	}
	return id
}

// hexByte decodes two lower-case hex digits.
func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexDigit(hi)
	l, ok2 := hexDigit(lo)
	return h<<4 | l, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
