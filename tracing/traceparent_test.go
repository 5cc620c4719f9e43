package tracing

import (
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct {
		name, in string
		ok       bool
		flags    byte
	}{
		{"the spec's example", valid, true, 1},
		{"not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, 0},
		{"a future version with more fields", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true, 1},
		{"a future version, exactly 55", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", true, 9},
		{"version 00 with more", valid + "-x", false, 0},
		{"a future version glued on", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false, 0},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"upper case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, 0},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, 0},
		{"zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, 0},
		{"short", valid[:54], false, 0},
		{"a wrong separator", strings.Replace(valid, "-", "_", 1), false, 0},
		{"non-hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false, 0},
		{"non-hex flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", false, 0},
		{"empty", "", false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc, ok := ParseTraceparent(c.in)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				if sc != (SpanContext{}) {
					t.Errorf("a refused value gave %+v", sc)
				}
				return
			}
			if sc.Flags != c.flags {
				t.Errorf("flags %x, want %x", sc.Flags, c.flags)
			}
			// Whatever version came in, version 00 goes out, same IDs.
			want := "00" + c.in[2:53] + c.in[53:55]
			if got := sc.String(); got != want {
				t.Errorf("formatted %q, want %q", got, want)
			}
		})
	}
}

func TestValidTracestate(t *testing.T) {
	for in, want := range map[string]bool{
		"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE": true,
		"":                                   true,
		strings.Repeat("a", MaxTracestate):   true,
		strings.Repeat("a", MaxTracestate+1): false,
		"a=b\r\nX-Injected: 1":               false,
		"a=\x7f":                             false,
	} {
		if got := ValidTracestate(in); got != want {
			t.Errorf("ValidTracestate(%.40q) = %v", in, got)
		}
	}
}

func TestNewIDs(t *testing.T) {
	seen := map[[16]byte]bool{}
	for range 1000 {
		id := newTraceID()
		if id == [16]byte{} || seen[id] {
			t.Fatalf("trace id %x zero or repeated", id)
		}
		seen[id] = true
		if newSpanID() == [8]byte{} {
			t.Fatal("zero span id")
		}
	}
}

// FuzzParseTraceparent: whatever a client sends, parsing does not panic,
// and what it accepts formats back to a value it accepts with the same
// identity.
func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		sc, ok := ParseTraceparent(s)
		if !ok {
			return
		}
		again, ok := ParseTraceparent(sc.String())
		if !ok || again != sc || !sc.Valid() {
			t.Fatalf("%q: parsed %+v, reformatted %q parsed %+v %v", s, sc, sc.String(), again, ok)
		}
	})
}
