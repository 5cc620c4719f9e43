package verifier_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/internal/testkit"
	"github.com/tollgate/tollgate/verifier"
)

// patience bounds the wait for an event that must happen. It is never
// waited out when the code is right; it turns a hang into a failure.
const patience = 10 * time.Second

// await returns the next value from ch, failing the test if none comes
// within patience.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("no %s within %v", what, patience)
		var zero T
		return zero
	}
}

// fakeClock is a clock whose timers fire only when the test moves it, so
// that refresh schedules, retries and lookup waits are driven without
// sleeping. armed receives the duration of every timer set.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time   // guarded by mu
	timers []fakeTimer // guarded by mu
	armed  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, armed: make(chan time.Duration, 1<<14)}
}

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives once the clock has moved d on.
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	if d <= 0 {
		ch <- c.now
	} else {
		c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	}
	c.mu.Unlock()
	select {
	case c.armed <- d:
	default: // nobody is counting this many
	}
	return ch
}

// Add moves the clock by d and fires the timers that are due.
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if c.now.Before(tm.at) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.now
	}
	c.timers = kept
}

// armedFor waits until a timer of d is set, skipping timers of other
// durations (a lookup's LookupWait, say).
func (c *fakeClock) armedFor(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case got := <-c.armed:
			if got == d {
				return
			}
		case <-deadline:
			t.Fatalf("no timer of %v set within %v", d, patience)
		}
	}
}

// rig runs a Verifier over one remote JWK Set on a fake clock, recording
// its events and logs.
type rig struct {
	srv   *jwksServer
	clock *fakeClock
	obs   *recorder
	logs  *observer.ObservedLogs
	v     *verifier.Verifier
}

// newRig starts the rig; serve prepares the server before the first
// fetch. With ready, newRig returns once that fetch has succeeded and Run
// has set its refresh timer (cfg.RefreshInterval, which must be set).
func newRig(t *testing.T, cfg verifier.RemoteConfig, serve func(*jwksServer), ready bool) *rig {
	t.Helper()
	r := &rig{srv: newJWKSServer(t), clock: newFakeClock(now),
		obs: &recorder{fetched: make(chan error, 1<<12), stale: make(chan bool, 1<<12)}}
	serve(r.srv)
	core, logs := observer.New(zap.DebugLevel)
	r.logs = logs
	v, err := verifier.New(verifier.Config{Issuers: []verifier.IssuerConfig{{
		Issuer: iss, Audiences: []string{aud}, Algorithms: []string{"ES256"}, JWKSURLs: []string{r.srv.URL}, Remote: cfg,
	}}}, zap.New(core), verifier.WithClock(r.clock.Now), verifier.WithTimer(r.clock.After),
		verifier.WithHTTPClient(r.srv.Client()), verifier.WithObserver(r.obs))
	if err != nil {
		t.Fatal(err)
	}
	r.v = v
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { v.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	if ready {
		if err := await(t, r.obs.fetched, "first fetch"); err != nil {
			t.Fatalf("first fetch: %v", err)
		}
		await(t, r.srv.arrived, "first request")
		r.clock.armedFor(t, cfg.RefreshInterval)
	}
	return r
}

// token is an hour-long token signed by key with kid in its header, issued
// at the rig's present.
func (r *rig) token(t testing.TB, key *testkit.Key, kid string) string {
	t.Helper()
	n := r.clock.Now()
	c := claims()
	c["iat"], c["nbf"], c["exp"] = n.Unix(), n.Unix(), n.Add(time.Hour).Unix()
	return key.Sign(t, c, map[string]any{"kid": kid})
}

// verify verifies raw in a goroutine and waits, within patience, for the
// outcome: a lookup that hangs fails the test instead of hanging it.
func (r *rig) verify(t testing.TB, raw string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := r.v.Verify(t.Context(), raw)
		done <- err
	}()
	return await(t, done, "answer from Verify")
}

// messages counts the log entries with msg, and those of them carrying
// field.
func (r *rig) messages(msg, field string) (n, withField int) {
	for _, e := range r.logs.FilterMessage(msg).All() {
		n++
		if _, ok := e.ContextMap()[field]; ok {
			withField++
		}
	}
	return n, withField
}

// TestRemoteLookupWaitBounded: with the JWKS endpoint accepting requests
// and answering none, 300 concurrent tokens with new kids cause one fetch
// and are all refused once LookupWait (1s by default) has passed — not
// held for the whole fetch, which only the test's release ends.
func TestRemoteLookupWaitBounded(t *testing.T) {
	a := testkit.NewKey(t, "ES256", "a")
	r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour, Timeout: time.Hour},
		func(s *jwksServer) { s.serveKeys(t, a) }, true)
	const n = 300
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = r.token(t, a, fmt.Sprint("new-", i))
	}
	release := r.srv.hold(t)
	var released atomic.Bool
	type result struct {
		err          error
		afterRelease bool
	}
	results := make(chan result, n)
	for _, raw := range tokens {
		go func() {
			_, err := r.v.Verify(t.Context(), raw)
			results <- result{err, released.Load()}
		}()
	}
	await(t, r.srv.arrived, "request for the new kids")
	// Every lookup now waits for LookupWait or has been answered.
	var got []result
	for waiting := 0; waiting+len(got) < n; {
		select {
		case d := <-r.clock.armed:
			if d == time.Second {
				waiting++
			}
		case res := <-results:
			got = append(got, res)
		case <-time.After(patience):
			t.Fatalf("after %v, %d lookups wait and %d answered, of %d", patience, waiting, len(got), n)
		}
	}
	r.clock.Add(time.Second)
	for len(got) < n {
		got = append(got, await(t, results, "lookup's answer after LookupWait"))
	}
	released.Store(true)
	release()
	for _, res := range got {
		if !errors.Is(res.err, verifier.ErrUnknownKey) || res.afterRelease {
			t.Fatalf("lookup: %v (after release: %v), want unknown key before the release", res.err, res.afterRelease)
		}
	}
	if f := r.srv.fetches.Load() - 1; f != 1 {
		t.Errorf("%d lookups caused %d fetches, want 1", n, f)
	}
	if err := await(t, r.obs.fetched, "held fetch's outcome"); err != nil {
		t.Errorf("released fetch: %v", err)
	}
}

// TestRemoteLookupDoesNotJoinScheduledRefresh: while a scheduled refresh
// hangs, a new kid is answered at once from the keys held; it neither
// waits for that refresh nor queues a fetch behind it.
func TestRemoteLookupDoesNotJoinScheduledRefresh(t *testing.T) {
	a, b := testkit.NewKey(t, "ES256", "a"), testkit.NewKey(t, "ES256", "b")
	r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour}, func(s *jwksServer) { s.serveKeys(t, a) }, true)
	release := r.srv.hold(t)
	r.clock.Add(time.Hour)
	await(t, r.srv.arrived, "scheduled refresh")
	if err := r.verify(t, r.token(t, b, "b")); !errors.Is(err, verifier.ErrUnknownKey) {
		t.Fatalf("new kid during a hanging refresh: %v, want unknown key", err)
	}
	if err := r.verify(t, r.token(t, a, "a")); err != nil {
		t.Errorf("known kid during a hanging refresh: %v", err)
	}
	if f := r.srv.fetches.Load(); f != 2 {
		t.Errorf("fetches = %d, want 2: a lookup queued a fetch behind the hanging one", f)
	}
	// Once the refresh is over, the new kid asks for a fetch of its own.
	r.srv.serveKeys(t, a, b)
	release()
	if err := await(t, r.obs.fetched, "refresh's outcome"); err != nil {
		t.Fatal(err)
	}
	r.clock.armedFor(t, time.Hour)
	if err := r.verify(t, r.token(t, b, "b")); err != nil {
		t.Errorf("new kid after the refresh: %v", err)
	}
}

// TestRemoteSlowRefreshNoBackToBack: a refresh that outlasts several
// refresh intervals is followed by a full interval's wait, not by another
// fetch at once.
func TestRemoteSlowRefreshNoBackToBack(t *testing.T) {
	a := testkit.NewKey(t, "ES256", "a")
	r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour, MaxStale: 24 * time.Hour},
		func(s *jwksServer) { s.serveKeys(t, a) }, true)
	release := r.srv.hold(t)
	r.clock.Add(time.Hour)
	await(t, r.srv.arrived, "scheduled refresh")
	r.clock.Add(5 * time.Hour)
	release()
	if err := await(t, r.obs.fetched, "slow refresh's outcome"); err != nil {
		t.Fatal(err)
	}
	r.clock.armedFor(t, time.Hour)
	if f := r.srv.fetches.Load(); f != 2 {
		t.Fatalf("fetches = %d, want 2: the slow refresh was followed by another at once", f)
	}
	r.clock.Add(time.Hour)
	if err := await(t, r.obs.fetched, "next scheduled refresh"); err != nil || r.srv.fetches.Load() != 3 {
		t.Errorf("next refresh: %v, fetches %d, want 3", err, r.srv.fetches.Load())
	}
}

// TestRemoteTimeout: RemoteConfig.Timeout bounds a fetch from an endpoint
// that never answers.
func TestRemoteTimeout(t *testing.T) {
	a := testkit.NewKey(t, "ES256", "a")
	r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour, Timeout: 50 * time.Millisecond},
		func(s *jwksServer) { s.serveKeys(t, a) }, true)
	r.srv.hold(t) // released only when the test ends
	r.clock.Add(time.Hour)
	err := await(t, r.obs.fetched, "timed-out refresh")
	if !errors.Is(err, verifier.ErrFetch) || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("fetch from a silent endpoint: %v, want a timeout", err)
	}
	if st := r.v.Status()[0]; !st.Ready || st.Stale || !strings.Contains(st.LastError, "deadline exceeded") {
		t.Errorf("status %+v", st)
	}
}

// TestRemoteRetriesUntilReady: a JWKS endpoint down at start is retried
// after 1s, 2s, 4s, … up to 30s or the refresh interval, whichever is less,
// until a fetch succeeds; the failures are logged without a last success
// that never was.
func TestRemoteRetriesUntilReady(t *testing.T) {
	for _, tt := range []struct {
		name     string
		interval time.Duration
		backoffs []time.Duration
	}{
		{"capped at 30s", 15 * time.Minute, []time.Duration{1, 2, 4, 8, 16, 30, 30}},
		{"capped at the refresh interval", 10 * time.Second, []time.Duration{1, 2, 4, 8, 10, 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := testkit.NewKey(t, "ES256", "a")
			r := newRig(t, verifier.RemoteConfig{RefreshInterval: tt.interval},
				func(s *jwksServer) { s.serve(http.StatusServiceUnavailable, nil) }, false)
			for i, want := range tt.backoffs {
				want *= time.Second
				if err := await(t, r.obs.fetched, "failed fetch"); err == nil {
					t.Fatalf("fetch %d succeeded", i)
				}
				if got := await(t, r.clock.armed, "retry timer"); got != want {
					t.Fatalf("retry %d after %v, want %v", i, got, want)
				}
				if r.v.Ready() {
					t.Fatal("ready without keys")
				}
				if i == 0 {
					st := r.v.Status()
					if len(st) != 1 || st[0].Ready || st[0].URL != r.srv.URL || !strings.Contains(st[0].LastError, "status 503") ||
						!strings.HasPrefix(st[0].Reason, "no keys yet") || !st[0].LastSuccess.IsZero() {
						t.Errorf("status %+v", st)
					}
				}
				if i == len(tt.backoffs)-1 {
					r.srv.serveKeys(t, a)
				}
				r.clock.Add(want)
			}
			if err := await(t, r.obs.fetched, "successful fetch"); err != nil {
				t.Fatalf("fetch after the endpoint recovered: %v", err)
			}
			if got := await(t, r.clock.armed, "refresh timer"); got != tt.interval {
				t.Errorf("after success, next fetch in %v, want the refresh interval %v", got, tt.interval)
			}
			if !r.v.Ready() {
				t.Error("not ready after a successful fetch")
			}
			if st := r.v.Status()[0]; !st.Ready || st.LastError != "" || st.Keys != 1 || !st.LastSuccess.Equal(r.clock.Now()) {
				t.Errorf("status %+v", st)
			}
			if n, withLastSuccess := r.messages("jwks fetch failed; no keys yet", "last_success"); n != len(tt.backoffs) || withLastSuccess != 0 {
				t.Errorf("%d failures logged (%d with last_success), want %d without", n, withLastSuccess, len(tt.backoffs))
			}
		})
	}
}

// TestRemoteStrayKIDDoesNotBlockRotation: a stray kid's fetch does not
// hold back the next new kid (a rotation); the stray kid itself is
// suppressed within the Cooldown (5s by default) and may fetch again after.
func TestRemoteStrayKIDDoesNotBlockRotation(t *testing.T) {
	a, b := testkit.NewKey(t, "ES256", "a"), testkit.NewKey(t, "ES256", "b")
	r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour}, func(s *jwksServer) { s.serveKeys(t, a) }, true)
	stray := r.token(t, a, "stray")
	if err := r.verify(t, stray); !errors.Is(err, verifier.ErrUnknownKey) || r.srv.fetches.Load() != 2 {
		t.Fatalf("stray kid: %v, fetches %d, want unknown key after one fetch", err, r.srv.fetches.Load())
	}
	r.srv.serveKeys(t, a, b)
	r.clock.Add(time.Second)
	if err := r.verify(t, r.token(t, b, "b")); err != nil {
		t.Fatalf("rotated key a second after a stray kid: %v", err)
	}
	if f := r.srv.fetches.Load(); f != 3 {
		t.Errorf("fetches = %d, want 3", f)
	}
	if err := r.verify(t, stray); !errors.Is(err, verifier.ErrUnknownKey) {
		t.Fatalf("stray kid again: %v", err)
	}
	if f, s := r.srv.fetches.Load(), r.obs.suppressed.Load(); f != 3 || s != 1 {
		t.Errorf("stray kid again within the cooldown: fetches %d, suppressed %d, want 3 and 1", f, s)
	}
	r.clock.Add(5 * time.Second)
	r.verify(t, stray)
	if f := r.srv.fetches.Load(); f != 4 {
		t.Errorf("stray kid after the cooldown: fetches %d, want 4", f)
	}
}

// TestRemoteUnknownKIDFlood: 1000 distinct made-up kids cause at most
// NewKIDFetches + (time taken)/Cooldown + 1 fetches — 32 within one
// Cooldown — and the rest are suppressed; a rotation during the flood is
// delayed by at most the Cooldown.
func TestRemoteUnknownKIDFlood(t *testing.T) {
	const flood, newKIDFetches, cooldown = 1000, 32, 5 * time.Second
	for _, tt := range []struct {
		name       string
		step       time.Duration // clock advance after each token
		concurrent bool
		min, max   int64 // fetches
	}{
		{"one after another within one cooldown", 0, false, newKIDFetches, newKIDFetches},
		{"all at once", 0, true, 1, newKIDFetches},
		{"one after another over 100 seconds", 100 * time.Millisecond, false, int64(100 * time.Second / cooldown),
			newKIDFetches + int64(100*time.Second/cooldown) + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := testkit.NewKey(t, "ES256", "a"), testkit.NewKey(t, "ES256", "b")
			r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour}, func(s *jwksServer) { s.serveKeys(t, a) }, true)
			tokens := make([]string, flood)
			for i := range tokens {
				tokens[i] = r.token(t, a, fmt.Sprint("made-up-", i))
			}
			var wg sync.WaitGroup
			var unexpected atomic.Value
			check := func(raw string) {
				if _, err := r.v.Verify(t.Context(), raw); !errors.Is(err, verifier.ErrUnknownKey) {
					unexpected.Store(fmt.Sprint(err))
				}
			}
			for _, raw := range tokens {
				if tt.concurrent {
					wg.Go(func() { check(raw) })
					continue
				}
				check(raw)
				r.clock.Add(tt.step)
			}
			wg.Wait()
			if e := unexpected.Load(); e != nil {
				t.Fatalf("made-up kid: %v, want unknown key", e)
			}
			f := r.srv.fetches.Load() - 1
			if f < tt.min || f > tt.max {
				t.Errorf("%d made-up kids caused %d fetches, want %d to %d", flood, f, tt.min, tt.max)
			}
			if tt.concurrent {
				return
			}
			if s := r.obs.suppressed.Load(); s != flood-f {
				t.Errorf("suppressed %d, want %d", s, flood-f)
			}
			// A rotation right now waits for the Cooldown, no longer.
			r.srv.serveKeys(t, a, b)
			if tt.step == 0 {
				if err := r.verify(t, r.token(t, b, "b")); !errors.Is(err, verifier.ErrUnknownKey) {
					t.Errorf("rotated key within the flood's cooldown: %v, want unknown key", err)
				}
			}
			r.clock.Add(cooldown)
			if err := r.verify(t, r.token(t, b, "b")); err != nil {
				t.Errorf("rotated key a cooldown after the flood: %v", err)
			}
		})
	}
}

// TestRemoteStaleKeys: past MaxStale, a token whose kid is in the stale
// set is refused as stale_keys, not unknown_key; readiness holds, Status
// says why, and the change is logged and observed once each way.
func TestRemoteStaleKeys(t *testing.T) {
	a := testkit.NewKey(t, "ES256", "a")
	r := newRig(t, verifier.RemoteConfig{RefreshInterval: time.Hour, MaxStale: 2 * time.Hour},
		func(s *jwksServer) { s.serveKeys(t, a) }, true)
	fetchedAt := r.clock.Now()
	if st := await(t, r.obs.stale, "KeysStale after the first fetch"); st {
		t.Fatal("stale after the first fetch")
	}
	r.srv.serve(http.StatusInternalServerError, nil)

	// An hour later the refresh fails; the cached keys serve on.
	r.clock.Add(time.Hour)
	if err := await(t, r.obs.fetched, "failed refresh"); err == nil {
		t.Fatal("refresh succeeded")
	}
	r.clock.armedFor(t, time.Hour)
	if n, withLastSuccess := r.messages("jwks fetch failed; serving cached keys", "last_success"); n != 1 || withLastSuccess != 1 {
		t.Errorf("failure with cached keys logged %d times (%d with last_success), want once with it", n, withLastSuccess)
	}
	tok := r.token(t, a, "a")
	if err := r.verify(t, tok); err != nil {
		t.Fatalf("cached key within MaxStale: %v", err)
	}

	// Past MaxStale the next refresh fails too: the keys go stale.
	r.clock.Add(time.Hour + time.Second)
	if err := await(t, r.obs.fetched, "failed refresh"); err == nil {
		t.Fatal("refresh succeeded")
	}
	if st := await(t, r.obs.stale, "KeysStale"); !st {
		t.Fatal("KeysStale(false) when the keys went stale")
	}
	r.clock.armedFor(t, time.Second) // retrying: nothing is served
	for range 3 {
		err := r.verify(t, r.token(t, a, "a"))
		if !errors.Is(err, verifier.ErrStaleKeys) || verifier.Reason(err) != "stale_keys" || verifier.Description(err) != "signing keys unavailable" {
			t.Fatalf("known kid past MaxStale: %v (reason %s), want stale keys", err, verifier.Reason(err))
		}
	}
	if !r.v.Ready() {
		t.Error("stale keys made the verifier unready")
	}
	st := r.v.Status()[0]
	if !st.Ready || !st.Stale || !st.LastSuccess.Equal(fetchedAt) || !strings.Contains(st.LastError, "status 500") ||
		!strings.HasPrefix(st.Reason, "keys stale") {
		t.Errorf("status %+v", st)
	}
	r.clock.Add(time.Second)
	if err := await(t, r.obs.fetched, "retry"); err == nil {
		t.Fatal("retry succeeded")
	}
	r.clock.armedFor(t, 2*time.Second)

	// The endpoint recovers: the keys are fresh again.
	r.srv.serveKeys(t, a)
	r.clock.Add(2 * time.Second)
	if err := await(t, r.obs.fetched, "successful retry"); err != nil {
		t.Fatalf("retry after recovery: %v", err)
	}
	if st := await(t, r.obs.stale, "KeysStale"); st {
		t.Fatal("KeysStale(true) after a successful fetch")
	}
	r.clock.armedFor(t, time.Hour)
	if err := r.verify(t, r.token(t, a, "a")); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if st := r.v.Status()[0]; st.Stale || st.LastError != "" || !strings.HasPrefix(st.Reason, "serving 1 keys") {
		t.Errorf("status after recovery %+v", st)
	}
	if on := r.obs.staleOn.Load(); on != 1 {
		t.Errorf("KeysStale(true) observed %d times, want once", on)
	}
	if n, _ := r.messages("jwks keys stale: tokens signed with them are refused until a fetch succeeds", ""); n != 1 {
		t.Errorf("going stale logged %d times, want once", n)
	}
	if n, _ := r.messages("jwks keys fresh again", ""); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	if n, withLastSuccess := r.messages("jwks fetch failed; keys stale", "last_success"); n != 2 || withLastSuccess != 2 {
		t.Errorf("failures while stale logged %d times (%d with last_success), want 2 with it", n, withLastSuccess)
	}
}
