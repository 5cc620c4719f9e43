package session

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/internal/testkit"
)

// BenchmarkRedisRefresh is the store's part of a refresh grant, one
// Rotate, on a redis-server of its own (a unix socket): one session, its
// handles rotated in a chain, each op presenting the handle the previous
// one made. pexpire/op is how many PEXPIREs Redis ran per op (INFO
// commandstats), the cost of keeping the replaced handles.
func BenchmarkRedisRefresh(b *testing.B) {
	ctx := context.Background()
	srv := testkit.StartRedis(b)
	r, err := NewRedis(RedisConfig{URL: srv.URL(), ResyncInterval: time.Hour}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	h := NewHandle()
	s := Session{ID: "s1", UserID: "u1", ClientID: "stb", Expires: time.Now().Add(time.Hour)}
	if _, err := r.Create(ctx, s, h, Limit{}); err != nil {
		b.Fatal(err)
	}
	refresh := func() {
		next := NewHandle()
		if _, err := r.Rotate(ctx, h, next, "stb", time.Now().Add(time.Hour), reuse); err != nil {
			b.Fatal(err)
		}
		h = next
	}
	for range keptHandles + 2 { // the steady state: the session keeps all it may
		refresh()
	}
	before := pexpires(b, r)
	b.ReportAllocs()
	for b.Loop() {
		refresh()
	}
	b.ReportMetric(float64(pexpires(b, r)-before)/float64(b.N), "pexpire/op")
}
