package session

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
)

func TestRevokedMergesAndForgets(t *testing.T) {
	clock := testkit.NewClock(start)
	r := newRevoked(clock.Now, false)
	at := func(d time.Duration) int64 { return start.Add(d).UnixMilli() }
	if !r.Confirmed().IsZero() || r.Len() != 0 || r.Contains("") {
		t.Fatal("a new set is not empty and unconfirmed")
	}
	r.add(map[string]int64{"a": at(time.Minute), "b": at(time.Hour), "past": at(0)})
	if !r.Contains("a") || !r.Contains("b") || r.Contains("past") || r.Len() != 2 {
		t.Errorf("after the first add: %v", *r.set.Load())
	}
	before := r.set.Load()
	r.add(map[string]int64{"a": at(time.Second)}) // an earlier until changes nothing
	if r.set.Load() != before {
		t.Error("an add that changes nothing made a new map")
	}
	r.add(map[string]int64{"a": at(2 * time.Hour)})
	clock.Add(time.Hour)
	r.add(nil)
	if !r.Contains("a") || r.Contains("b") || r.Len() != 1 {
		t.Errorf("after an hour: %v", *r.set.Load())
	}
	if (*before)["a"] != at(time.Minute) {
		t.Error("a stored map was changed")
	}
	r.confirm(clock.Now())
	if !r.Confirmed().Equal(clock.Now()) {
		t.Errorf("confirmed %v", r.Confirmed())
	}
}

func BenchmarkRevokedContains(b *testing.B) {
	r := newRevoked(time.Now, false)
	m := map[string]int64{}
	until := time.Now().Add(time.Hour).UnixMilli()
	for i := range 100_000 {
		m["session-"+strconv.Itoa(i)] = until
	}
	r.add(m)
	probes := make([]string, 200_000) // half in, half not
	for i := range probes {
		probes[i] = "session-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Contains(probes[i%len(probes)])
			i++
		}
	})
}

func TestNewHandle(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		h := NewHandle()
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(h, HandlePrefix))
		if !strings.HasPrefix(h, HandlePrefix) || err != nil || len(raw) != 32 || seen[h] {
			t.Fatalf("handle %q: %v", h, err)
		}
		seen[h] = true
	}
	if hashHandle("a") == hashHandle("b") || len(hashHandle("a")) != 43 {
		t.Error("hashHandle")
	}
}

func TestSuccessorOpensOnlyWithThePresentedHandle(t *testing.T) {
	presented, next := NewHandle(), NewHandle()
	sealed := sealSuccessor(presented, next)
	if strings.Contains(string(sealed), strings.TrimPrefix(next, HandlePrefix)) {
		t.Fatal("the successor is in the clear")
	}
	if got, err := openSuccessor(presented, sealed); err != nil || got != next {
		t.Errorf("open: %q %v", got, err)
	}
	if _, err := openSuccessor(NewHandle(), sealed); err == nil {
		t.Error("another handle opened it")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := openSuccessor(presented, sealed); err == nil {
		t.Error("a changed ciphertext opened")
	}
	if _, err := openSuccessor(presented, sealed[:5]); err == nil {
		t.Error("a short ciphertext opened")
	}
}
