package limit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/limit"
)

func TestBuckets(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1000, 0))
	l := limit.New(limit.Config{Burst: 3, Every: 10 * time.Second}, clock.Now)
	ctx := t.Context()
	for i := range 3 {
		if ok, _, _ := l.Take(ctx, "alice"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, retry, _ := l.Take(ctx, "alice")
	if ok || retry != 10*time.Second {
		t.Fatalf("fourth attempt: %v, retry %v", ok, retry)
	}
	if ok, _, _ := l.Take(ctx, "bob"); !ok {
		t.Error("another key is limited too")
	}
	clock.Add(4 * time.Second)
	if ok, retry, _ := l.Take(ctx, "alice"); ok || retry != 6*time.Second {
		t.Errorf("after 4 s: %v, retry %v", ok, retry)
	}
	clock.Add(6 * time.Second)
	if ok, _, _ := l.Take(ctx, "alice"); !ok {
		t.Error("an attempt did not come back")
	}
	l.Give(ctx, "alice")
	if ok, _, _ := l.Take(ctx, "alice"); !ok {
		t.Error("a given-back attempt cannot be taken")
	}
	// Giving back never goes beyond the burst.
	for range 10 {
		l.Give(ctx, "bob")
	}
	for i := range 4 {
		if ok, _, _ := l.Take(ctx, "bob"); ok != (i < 3) {
			t.Errorf("bob attempt %d: %v", i, ok)
		}
	}
}

func TestBucketsStayBounded(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1000, 0))
	l := limit.New(limit.Config{Burst: 2, Every: time.Minute, MaxKeys: 100}, clock.Now)
	ctx := t.Context()
	l.Take(ctx, "victim")
	l.Take(ctx, "victim")
	for i := range 99 {
		l.Take(ctx, fmt.Sprint("spray-", i))
	}
	// A minute later every sprayed key has refilled, the victim's has not:
	// making room for new keys forgets the full buckets, not the victim's.
	clock.Add(time.Minute + time.Second)
	for i := range 1000 {
		l.Take(ctx, fmt.Sprint("new-", i))
		if n := l.Len(); n > 100 {
			t.Fatalf("%d keys kept, want at most 100", n)
		}
		if i == 50 {
			break
		}
	}
	ok1, _, _ := l.Take(ctx, "victim")
	ok2, _, _ := l.Take(ctx, "victim")
	if !ok1 || ok2 {
		t.Errorf("the victim's bucket was forgotten (attempts %v %v, want one)", ok1, ok2)
	}
	for i := range 1000 {
		l.Take(ctx, fmt.Sprint("flood-", i))
	}
	if n := l.Len(); n > 100 {
		t.Errorf("%d keys kept after a flood, want at most 100", n)
	}
}
