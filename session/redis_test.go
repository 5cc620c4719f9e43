package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/limit"
)

// newTestRedis returns a store on url with clock; a ResyncInterval of
// zero becomes an hour, so that only the (re)connect reloads.
func newTestRedis(t *testing.T, url string, clock *testkit.Clock, cfg RedisConfig, opts ...Option) *Redis {
	t.Helper()
	cfg.URL = url
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = time.Hour
	}
	r, err := NewRedis(cfg, zaptest.NewLogger(t), append([]Option{WithClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// running runs r.Run until the test ends, or stop is called.
func running(t *testing.T, r *Redis) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRedis(t *testing.T) {
	testContract(t, func(t *testing.T, clock *testkit.Clock, opts ...Option) (replicated, replicated) {
		url := testkit.Redis(t)
		a := newTestRedis(t, url, clock, RedisConfig{}, opts...)
		b := newTestRedis(t, url, clock, RedisConfig{}, opts...)
		running(t, a)
		running(t, b)
		// Reloaded once on subscribing, never again within the test: a
		// revocation reaches the other replica through the channel.
		waitFor(t, "both replicas subscribed", func() bool { return a.subscribed.Load() && b.subscribed.Load() })
		return a, b
	})
}

// exercise runs the operations that put handles in a store, and returns
// every handle it used.
func exercise(t *testing.T, st Store, clock *testkit.Clock) []string {
	ctx := context.Background()
	var used []string
	handle := func() string { h := NewHandle(); used = append(used, h); return h }
	var replaced string // in the last session: the handle before its head
	for i := range 3 {
		h := handle()
		mustCreate(t, st, fixture(clock, fmt.Sprintf("s%d", i), "u1"), h, Limit{Max: 2})
		for range 3 {
			next := handle()
			mustRotate(t, st, clock, h, next)
			mustRotate(t, st, clock, h, handle()) // a retry
			replaced, h = h, next
		}
	}
	clock.Add(reuse + time.Millisecond)
	first, next := used[0], handle()
	if _, err := st.Rotate(ctx, first, next, "stb", clock.Now().Add(time.Hour), reuse); !errors.Is(err, ErrRevoked) { // s0 was evicted
		t.Fatalf("rotate in an evicted session: %v", err)
	}
	if _, err := st.Rotate(ctx, replaced, handle(), "stb", clock.Now().Add(time.Hour), reuse); !errors.Is(err, ErrReused) {
		t.Fatalf("reuse: %v", err)
	}
	// Device requests: one used, one pending.
	dc := st.(DeviceCodes)
	for i := range 2 {
		d := deviceFixture(clock)
		code := mustCreateDevice(t, dc, d)
		used = append(used, code)
		wantPoll(t, dc, code, "tv", ErrAuthorizationPending)
		if i == 0 {
			if err := dc.DecideDevice(ctx, d.UserCode, true, "u1", "p1"); err != nil {
				t.Fatal(err)
			}
			clock.Add(5 * time.Second)
			wantPoll(t, dc, code, "tv", nil)
		}
	}
	return used
}

// secretBody returns a handle or device code without its prefix.
func secretBody(s string) string {
	return strings.TrimPrefix(strings.TrimPrefix(s, HandlePrefix), DeviceCodePrefix)
}

// dump returns every key of the store's database with its value.
func dump(t *testing.T, c redis.UniversalClient) map[string]string {
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var v any
		var err error
		switch typ := c.Type(ctx, k).Val(); typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		default:
			t.Fatalf("key %q of type %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := c.Dump(ctx, k).Result()
		out[k] = fmt.Sprintf("%v %q", v, raw)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRedisDumpHoldsNoHandleAndEveryKeyExpires(t *testing.T) {
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{})
	used := exercise(t, r, clock)
	lim := r.Limiter(limit.Config{Burst: 5, Every: time.Minute}, "login")
	if ok, _, err := lim.Take(context.Background(), "alice@example.com"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	all := dump(t, r.client)
	var text strings.Builder
	for k, v := range all {
		fmt.Fprintf(&text, "%s = %s\n", k, v)
		ttl, err := r.client.PTTL(context.Background(), k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %s does not expire (PTTL %v, %v)", k, ttl, err)
		}
	}
	for _, h := range used {
		if strings.Contains(text.String(), secretBody(h)) {
			t.Errorf("the dump holds handle or device code %s", h)
		}
	}
	// It does hold the sessions, the handles' hashes and the device
	// codes'.
	for _, want := range []string{"tollgate:{sessions}:s:s2", "tollgate:{sessions}:h:" + hashHandle(used[1]), "tollgate:limit:login:",
		"tollgate:{sessions}:dev:" + hashHandle(used[len(used)-1]), "tollgate:{sessions}:uc:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the dump lacks %s:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "alice") {
		t.Error("the dump holds a limiter key as given")
	}
}

func TestRedisDeviceKeysExpireWithTheRequest(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{})
	d := deviceFixture(clock)
	d.Expires = clock.Now().Add(15 * time.Minute)
	dc := mustCreateDevice(t, r, d)
	wantPoll(t, r, dc, "tv", ErrAuthorizationPending)
	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := r.client.PTTL(ctx, r.base+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Real time passes between the calls: a second of slack.
	if got, want := ttl("dev:"+hashHandle(dc)), 15*time.Minute+deviceLinger; got <= want-time.Second || got > want {
		t.Errorf("the request expires in %v, want %v", got, want)
	}
	if got, want := ttl("uc:"+d.UserCode), 15*time.Minute; got <= want-time.Second || got > want {
		t.Errorf("the user code expires in %v, want %v", got, want)
	}
}

// keyExpiries follows when keys expire by a test's clock. Redis counts a
// TTL in real time from when a script set it, while the test's clock
// jumps ahead; so a followed key is left with a mark for a TTL, an
// expiry in 2100 (no script reads a handle key's TTL): a key that has
// lost its mark was set since, to expire its TTL after the clock's now.
type keyExpiries struct {
	r     *Redis
	clock *testkit.Clock
	at    map[string]time.Time // key → its expiry by the clock
}

// expiryMark is the expiry keyExpiries leaves on a key it follows.
var expiryMark = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// of returns when key expires by the clock, and marks it. Call it after
// every operation that may set the key; it is early by the real time
// since then.
func (e *keyExpiries) of(t *testing.T, key string) time.Time {
	t.Helper()
	ctx := context.Background()
	ttl, err := e.r.client.PTTL(ctx, key).Result()
	if err != nil || ttl < 0 {
		t.Fatalf("key %s: PTTL %d, %v", key, ttl, err)
	}
	if ttl < time.Until(expiryMark)-24*time.Hour { // set since it was marked
		e.at[key] = e.clock.Now().Add(ttl)
		if err := e.r.client.ExpireAt(ctx, key, expiryMark).Err(); err != nil { // EXPIREAT: no PEXPIRE counted
			t.Fatal(err)
		}
	}
	return e.at[key]
}

// wantHandleKeys checks the keys of a session's handles, oldest first, the
// last its head, when the session expires at exp: the head's expires with
// it; every replaced one's after it (its reuse is detected while the
// session lives), but no more than twice the refresh lifetime (an hour)
// from now.
func wantHandleKeys(t *testing.T, r *Redis, e *keyExpiries, handles []string, exp time.Time) {
	t.Helper()
	now := e.clock.Now()
	const slack = time.Second // real time between an operation and the check
	for i, h := range handles {
		got := e.of(t, r.base+"h:"+hashHandle(h))
		head := i == len(handles)-1
		switch {
		case head && (got.Before(exp.Add(-slack)) || got.After(exp)):
			t.Errorf("the head's key expires in %v, want with its session in %v", got.Sub(now), exp.Sub(now))
		case !head && got.Before(exp.Add(-slack)):
			t.Errorf("handle %d of %d: its key expires in %v, before its session in %v", i, len(handles), got.Sub(now), exp.Sub(now))
		case !head && got.After(now.Add(2*time.Hour)):
			t.Errorf("handle %d of %d: its key expires in %v, more than twice the refresh lifetime", i, len(handles), got.Sub(now))
		}
	}
}

// pexpires returns how many PEXPIREs the server has run.
func pexpires(tb testing.TB, r *Redis) int {
	tb.Helper()
	info, err := r.client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(line, "cmdstat_pexpire:calls=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		if err != nil {
			tb.Fatal(err)
		}
		return n
	}
	return 0
}

// TestRedisReplacedHandlesOutliveTheirSession: the key of every handle a
// session remembers lives as long as the session, however it is
// refreshed, without a rotation extending them all each time.
func TestRedisReplacedHandlesOutliveTheirSession(t *testing.T) {
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{})
	keys := &keyExpiries{r: r, clock: clock, at: map[string]time.Time{}}
	hs := []string{NewHandle()}
	s := fixture(clock, "s1", "u1")
	mustCreate(t, r, s, hs[0], Limit{})
	wantHandleKeys(t, r, keys, hs, s.Expires)
	rotate := func(after time.Duration) {
		t.Helper()
		clock.Add(after)
		next := NewHandle()
		rot := mustRotate(t, r, clock, hs[len(hs)-1], next)
		hs = append(hs, next)
		wantHandleKeys(t, r, keys, hs[max(0, len(hs)-keptHandles-2):], rot.Session.Expires)
	}
	// Refreshed at uneven intervals, never letting the session (an hour)
	// lapse.
	for i := range 60 {
		rotate([]time.Duration{time.Minute, 59 * time.Minute, 10 * time.Minute, time.Second, 45 * time.Minute, 30 * time.Minute, 50 * time.Minute}[i%7])
	}
	// Refreshed every 5 minutes, as an access token of that life makes a
	// client do: the replaced handles' keys are extended once an hour, not
	// at every rotation (17 PEXPIREs).
	before := pexpires(t, r)
	const n = 48
	for range n {
		rotate(5 * time.Minute)
	}
	if per := float64(pexpires(t, r)-before) / n; per > 4 {
		t.Errorf("%.1f PEXPIREs per rotation, want at most 4", per)
	}
}

// legacyRotateScript is the rotation of the version before hold, which
// extended every replaced handle's key on each rotation (its other
// answers left out). During a rolling upgrade, replicas of both versions
// rotate the same sessions.
var legacyRotateScript = script(`
local hp, hn, exp = ARGV[5], ARGV[6], tonumber(ARGV[7])
local sid = redis.call('GET', hkey(hp))
local st, f = state(sid, {'head', 'prev', 'old', 'used', 'succ', 'user'})
if st ~= 'live' or f[3] ~= hp then return {'notfound', ''} end
local k = skey(sid)
local old = {}
if f[4] and f[4] ~= '' then
  table.insert(old, f[4])
  if f[5] and f[5] ~= '' then
    for h in string.gmatch(f[5], '%S+') do table.insert(old, h) end
  end
end
while #old > kept do redis.call('DEL', hkey(table.remove(old))) end
redis.call('HSET', k, 'head', hn, 'prev', hp, 'old', table.concat(old, ' '), 'succ', ARGV[9],
  'used', now, 'refreshed', now, 'exp', exp)
local ttl = exp - now
redis.call('PEXPIRE', k, ttl)
redis.call('SET', hkey(hn), sid, 'PX', ttl)
redis.call('PEXPIRE', hkey(hp), ttl)
for _, h in ipairs(old) do redis.call('PEXPIRE', hkey(h), ttl) end
redis.call('ZADD', live, exp, sid)
extend(live, exp)
extend(ukey(f[8]), exp)
return {'rotated', '', view(k)}
`)

// TestRedisRotationByAnOlderReplica: a rotation by a replica of the
// previous version, which sets every replaced handle's key to the
// session's expiry and keeps no hold, does not leave them shorter-lived
// than the session after this version's next rotation.
func TestRedisRotationByAnOlderReplica(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{})
	keys := &keyExpiries{r: r, clock: clock, at: map[string]time.Time{}}
	hs := []string{NewHandle(), NewHandle(), NewHandle(), NewHandle()}
	s := fixture(clock, "s1", "u1")
	mustCreate(t, r, s, hs[0], Limit{})
	wantHandleKeys(t, r, keys, hs[:1], s.Expires)
	rot := mustRotate(t, r, clock, hs[0], hs[1]) // holds the replaced keys for two hours
	wantHandleKeys(t, r, keys, hs[:2], rot.Session.Expires)
	clock.Add(10 * time.Minute)
	exp := clock.Now().Add(time.Hour)
	if _, err := r.eval(ctx, "rotate", legacyRotateScript, clock.Now().UnixMilli(), hashHandle(hs[1]), hashHandle(hs[2]),
		exp.UnixMilli(), reuse.Milliseconds(), sealSuccessor(hs[1], hs[2])); err != nil {
		t.Fatal(err)
	}
	wantHandleKeys(t, r, keys, hs[:3], exp) // the older replica cut them back to an hour
	clock.Add(10 * time.Minute)
	rot = mustRotate(t, r, clock, hs[2], hs[3])
	wantHandleKeys(t, r, keys, hs, rot.Session.Expires)
}

func TestMemoryHoldsNoHandle(t *testing.T) {
	clock := testkit.NewClock(start)
	m := NewMemory(clock.Now)
	used := exercise(t, m, clock)
	m.mu.Lock()
	text := fmt.Sprintf("%+v %+v %+v %+v %+v", m.sessions, m.handles, m.users, m.devices, m.userCodes)
	for _, rec := range m.sessions {
		text += fmt.Sprintf("%+v", *rec)
	}
	for _, rec := range m.devices {
		text += fmt.Sprintf("%+v", *rec)
	}
	m.mu.Unlock()
	for _, h := range used {
		if strings.Contains(text, secretBody(h)) {
			t.Errorf("memory holds handle or device code %s", h)
		}
	}
}

func TestRedisStoppedAndRestarted(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ctx := context.Background()
	srv := testkit.StartRedis(t)
	clock := testkit.NewClock(start)
	a := newTestRedis(t, srv.URL(), clock, RedisConfig{Timeout: timeout, ResyncInterval: 200 * time.Millisecond})
	b := newTestRedis(t, srv.URL(), clock, RedisConfig{Timeout: timeout})
	running(t, a)
	stopB := running(t, b)
	waitFor(t, "both subscribed", func() bool { return a.subscribed.Load() && b.subscribed.Load() })
	waitFor(t, "a up", a.Up)
	h := NewHandle()
	mustCreate(t, a, fixture(clock, "s1", "u1"), h, Limit{})
	lim := a.Limiter(limit.Config{Burst: 5, Every: time.Minute}, "login")

	srv.Stop()
	calls := map[string]func() error{
		"create": func() error {
			_, err := a.Create(ctx, fixture(clock, "s2", "u1"), NewHandle(), Limit{})
			return err
		},
		"rotate": func() error {
			_, err := a.Rotate(ctx, h, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
			return err
		},
		"get":    func() error { _, err := a.Get(ctx, "s1"); return err },
		"lookup": func() error { _, err := a.Lookup(ctx, h); return err },
		"update": func() error { return a.Update(ctx, "s1", "p2") },
		"revoke": func() error { return a.Revoke(ctx, []string{"s1"}, CauseLogout, clock.Now().Add(time.Hour)) },
		"list":   func() error { _, err := a.List(ctx, "u1"); return err },
		"count":  func() error { _, err := a.Count(ctx); return err },
		"take":   func() error { _, _, err := lim.Take(ctx, "alice"); return err },
		"give":   func() error { return lim.Give(ctx, "alice") },
		"device_create": func() error {
			return a.CreateDevice(ctx, NewDeviceCode(), deviceFixture(clock))
		},
		"device_get":    func() error { _, err := a.DeviceByUserCode(ctx, "BDFH-KMNP"); return err },
		"device_decide": func() error { return a.DecideDevice(ctx, "BDFH-KMNP", true, "u1", "p1") },
		"device_poll":   func() error { _, err := a.PollDevice(ctx, NewDeviceCode(), "tv"); return err },
	}
	for name, call := range calls {
		began := time.Now()
		err := call()
		if took := time.Since(began); took > timeout+500*time.Millisecond {
			t.Errorf("%s took %v with Redis down (Timeout %v)", name, took, timeout)
		}
		wantErr(t, name+" with Redis down", err, ErrUnavailable)
	}
	if a.Up() {
		t.Error("Up with Redis down")
	}
	waitFor(t, "both subscriptions down", func() bool { return !a.subscribed.Load() && !b.subscribed.Load() })
	stopB() // b is not listening while Redis comes back and a revokes

	srv.Start()
	clock.Add(time.Minute)
	back := clock.Now()
	waitFor(t, "a up again", a.Up)
	waitFor(t, "a resubscribed and reloaded", func() bool {
		return a.subscribed.Load() && !a.Revoked().Confirmed().Before(back)
	})
	// Redis came back empty (no persistence): s1 is gone, not unavailable.
	_, err := a.Get(ctx, "s1")
	wantErr(t, "get after the restart", err, ErrNotFound)
	mustCreate(t, a, fixture(clock, "s2", "u1"), NewHandle(), Limit{})
	if err := a.Revoke(ctx, []string{"s2"}, CauseLogout, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !a.Revoked().Contains("s2") {
		t.Error("the revoking replica's set lacks s2")
	}
	if b.Revoked().Contains("s2") {
		t.Fatal("b heard of s2 without listening")
	}
	running(t, b)
	waitFor(t, "b's reload brings s2", func() bool { return b.Revoked().Contains("s2") })
	if err := b.Revoke(ctx, []string{"s3"}, CauseLogout, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a hears of s3", func() bool { return a.Revoked().Contains("s3") })
	if ok, _, err := lim.Take(ctx, "alice"); !ok || err != nil {
		t.Errorf("take after the restart: %v %v", ok, err)
	}
}

func TestRedisReloadRepairsAMissedMessage(t *testing.T) {
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{ResyncInterval: 50 * time.Millisecond})
	running(t, r)
	waitFor(t, "subscribed", r.subscribed.Load)
	clock.Add(time.Second)
	after := clock.Now()
	waitFor(t, "confirmed again", func() bool { return !r.Revoked().Confirmed().Before(after) })
	// A revocation never published: as if this replica missed it.
	until := float64(clock.Now().Add(time.Hour).UnixMilli())
	if err := r.client.ZAdd(context.Background(), r.base+"revoked", redis.Z{Score: until, Member: "missed"}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload brings it", func() bool { return r.Revoked().Contains("missed") })
	clock.Add(time.Hour)
	waitFor(t, "it goes after its until", func() bool { return !r.Revoked().Contains("missed") })
}

func TestRedisResubscribesWhenTheSubscriptionDrops(t *testing.T) {
	clock := testkit.NewClock(start)
	r := newTestRedis(t, testkit.Redis(t), clock, RedisConfig{}) // no periodic reload
	running(t, r)
	waitFor(t, "subscribed", r.subscribed.Load)
	ctx := context.Background()
	until := float64(clock.Now().Add(time.Hour).UnixMilli())
	if err := r.client.ZAdd(ctx, r.base+"revoked", redis.Z{Score: until, Member: "missed"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.client.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload after resubscribing brings it", func() bool { return r.Revoked().Contains("missed") })
	if !r.Up() {
		t.Error("not up")
	}
}

func TestRedisRunOnce(t *testing.T) {
	r := newTestRedis(t, testkit.Redis(t), testkit.NewClock(start), RedisConfig{})
	running(t, r)
	waitFor(t, "running", r.running.Load)
	if err := r.Run(context.Background()); err == nil {
		t.Error("a second Run at the same time started")
	}
}

func TestRedisConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  RedisConfig
		want []string // in the error; none: valid
	}{
		{"unix", RedisConfig{URL: "unix:///run/redis.sock?db=3"}, nil},
		{"tls", RedisConfig{URL: "rediss://u:p@redis.example:6380/2", Password: "other"}, nil},
		{"sentinel", RedisConfig{URL: "rediss://:p@/1", SentinelMaster: "main", SentinelAddrs: []string{"s1:26379", "s2:26379"}}, nil},
		{"cluster", RedisConfig{ClusterAddrs: []string{"c1:6379"}}, nil},
		{"nothing", RedisConfig{}, []string{"URL is required"}},
		{"scheme", RedisConfig{URL: "http://redis:6379"}, []string{"invalid URL scheme"}},
		{"unparsable, password hidden", RedisConfig{URL: "redis://u:sekrit@redis:port/0"}, []string{"URL does not parse"}},
		{"unknown parameter", RedisConfig{URL: "redis://redis:6379/0?bogus=1"}, []string{"bogus"}},
		{"timeout in the URL", RedisConfig{URL: "redis://redis:6379/0?read_timeout=5s"}, []string{"set timeouts with Timeout"}},
		{"skip_verify", RedisConfig{URL: "rediss://redis:6379/0?skip_verify=true"}, []string{"skip_verify is not allowed"}},
		{"many at once", RedisConfig{
			URL: "redis://redis:6379/0", SentinelMaster: "main", ClusterAddrs: []string{"nohost", "c:0"},
			KeyPrefix: "a{b}", Timeout: -1, ResyncInterval: -time.Second,
		}, []string{
			"both Sentinel", `"nohost" is not host:port`, `"c:0" is not host:port`, "KeyPrefix", "Timeout -1ns is negative",
			"ResyncInterval -1s is negative", `URL names host "redis:6379"`,
		}},
		{"sentinel without master", RedisConfig{SentinelAddrs: []string{"s:26379"}}, []string{"SentinelAddrs needs SentinelMaster"}},
		{"cluster database", RedisConfig{URL: "redis:///3", ClusterAddrs: []string{"c:6379"}}, []string{"only database 0"}},
		{"unix with a cluster", RedisConfig{URL: "unix:///run/redis.sock", ClusterAddrs: []string{"c:6379"}}, []string{"unix socket cannot go"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewRedis(c.cfg, nil)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v, want ErrInvalidConfig", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRedisConfigOptions(t *testing.T) {
	cfg := RedisConfig{URL: "rediss://u:p@redis.example:6380/2", Password: "from-file"}
	uo, err := cfg.universal()
	if err != nil {
		t.Fatal(err)
	}
	if uo.Addrs[0] != "redis.example:6380" || uo.Username != "u" || uo.Password != "from-file" || uo.DB != 2 ||
		uo.TLSConfig == nil || uo.TLSConfig.ServerName != "redis.example" || uo.ReadTimeout != time.Second || !uo.ContextTimeoutEnabled {
		t.Errorf("options %+v", uo)
	}
	if cfg.KeyPrefix != "tollgate:" || cfg.ResyncInterval != 30*time.Second {
		t.Errorf("defaults %+v", cfg)
	}
	cfg = RedisConfig{URL: "unix:///run/redis.sock?db=3"}
	if uo, err = cfg.universal(); err != nil || uo.Addrs[0] != "/run/redis.sock" || uo.DB != 3 {
		t.Errorf("unix: %+v %v", uo, err)
	}
	cfg = RedisConfig{URL: "rediss://:p@/", SentinelMaster: "main", SentinelAddrs: []string{"s1:26379"}}
	if uo, err = cfg.universal(); err != nil || uo.MasterName != "main" || uo.Addrs[0] != "s1:26379" || uo.TLSConfig.ServerName != "" || uo.Password != "p" {
		t.Errorf("sentinel: %+v %v", uo, err)
	}
	r, err := NewRedis(RedisConfig{ClusterAddrs: []string{"c1:6379"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.client.(*redis.ClusterClient); !ok {
		t.Errorf("a single cluster seed made a %T", r.client)
	}
}

// TestRedisCluster runs the contract on a Redis Cluster: every script
// touches keys of one slot only.
func TestRedisCluster(t *testing.T) {
	addr := testkit.RedisCluster(t)
	testContract(t, func(t *testing.T, clock *testkit.Clock, opts ...Option) (replicated, replicated) {
		// The subtests share the cluster: a prefix each.
		cfg := RedisConfig{ClusterAddrs: []string{addr}, KeyPrefix: strings.ReplaceAll(t.Name(), " ", "_") + ":", ResyncInterval: time.Hour}
		mk := func() *Redis {
			r, err := NewRedis(cfg, zaptest.NewLogger(t), append([]Option{WithClock(clock.Now)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		}
		a, b := mk(), mk()
		running(t, a)
		running(t, b)
		waitFor(t, "both replicas subscribed", func() bool { return a.subscribed.Load() && b.subscribed.Load() })
		return a, b
	})
}
