package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tollgate/tollgate/internal/testkit"
)

// another returns one more replica of st's store: a Memory is its own;
// a Redis store gets another client on the same keys and options (no
// Run: device requests need no revocation feed).
func another(t *testing.T, st replicated) replicated {
	t.Helper()
	r, ok := st.(*Redis)
	if !ok {
		return st
	}
	o, err := NewRedis(r.cfg, zaptest.NewLogger(t), func(o *options) { *o = r.opts })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// deviceFixture is a request of client "tv" made now, for ten minutes.
func deviceFixture(clock *testkit.Clock) DeviceCode {
	return DeviceCode{UserCode: NewUserCode(), ClientID: "tv", Scope: "openid catalog",
		Expires: clock.Now().Add(10 * time.Minute), DeviceName: "Living-room box"}
}

func mustCreateDevice(t testing.TB, st DeviceCodes, d DeviceCode) (deviceCode string) {
	t.Helper()
	deviceCode = NewDeviceCode()
	if err := st.CreateDevice(context.Background(), deviceCode, d); err != nil {
		t.Fatalf("create device: %v", err)
	}
	return deviceCode
}

func sameDevice(t testing.TB, got, want DeviceCode) {
	t.Helper()
	if got.UserCode != want.UserCode || got.ClientID != want.ClientID || got.Scope != want.Scope ||
		!got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) || got.Interval != want.Interval ||
		got.Status != want.Status || got.UserID != want.UserID || got.Profile != want.Profile || got.DeviceName != want.DeviceName {
		t.Errorf("device request\n got %+v\nwant %+v", got, want)
	}
}

// wantPoll polls and checks the error; it returns what the poll gave.
func wantPoll(t testing.TB, st DeviceCodes, deviceCode, clientID string, want error) DeviceCode {
	t.Helper()
	d, err := st.PollDevice(context.Background(), deviceCode, clientID)
	if !errors.Is(err, want) {
		t.Fatalf("poll: error %v, want %v", err, want)
	}
	return d
}

// testDeviceContract runs the behaviour every DeviceCodes must have; it
// is part of testContract.
func testDeviceContract(t *testing.T, open opener) {
	ctx := context.Background()

	t.Run("device: approved, tokens once, then refused", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		want := d
		want.Created, want.Interval, want.Status = start, DefaultDeviceInterval, DevicePending
		typed := strings.ToLower(strings.ReplaceAll(d.UserCode, "-", " ")) // "bdfh kmnp"
		got, err := b.DeviceByUserCode(ctx, typed)
		if err != nil {
			t.Fatalf("by user code %q: %v", typed, err)
		}
		sameDevice(t, got, want)
		sameDevice(t, wantPoll(t, a, dc, "tv", ErrAuthorizationPending), want)

		clock.Add(5 * time.Second)
		if err := b.DecideDevice(ctx, typed, true, "u1", "p1"); err != nil {
			t.Fatal(err)
		}
		want.Status, want.UserID, want.Profile = DeviceApproved, "u1", "p1"
		got, _ = a.DeviceByUserCode(ctx, d.UserCode)
		sameDevice(t, got, want)
		wantErr(t, "decide again", a.DecideDevice(ctx, d.UserCode, false, "", ""), ErrDeviceDecided)

		want.Status = DeviceUsed
		sameDevice(t, wantPoll(t, b, dc, "tv", nil), want)
		clock.Add(5 * time.Second)
		for name, st := range map[string]replicated{"a": a, "b": b} {
			if d, err := st.PollDevice(ctx, dc, "tv"); !errors.Is(err, ErrNotFound) || d != (DeviceCode{}) {
				t.Errorf("%s: a used device code polled again: %+v, %v; want ErrNotFound", name, d, err)
			}
		}
		got, err = a.DeviceByUserCode(ctx, d.UserCode)
		if err != nil {
			t.Fatal(err)
		}
		sameDevice(t, got, want)
		wantErr(t, "decide a used request", a.DecideDevice(ctx, d.UserCode, true, "u2", "p2"), ErrDeviceDecided)
	})

	t.Run("device: denied", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		if err := b.DecideDevice(ctx, d.UserCode, false, "u1", ""); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "approve after the denial", a.DecideDevice(ctx, d.UserCode, true, "u1", "p1"), ErrDeviceDecided)
		for range 2 {
			if got := wantPoll(t, a, dc, "tv", ErrAccessDenied); got.Status != DeviceDenied || got.UserID != "" {
				t.Errorf("denied request %+v", got)
			}
			clock.Add(5 * time.Second)
		}
	})

	t.Run("device: expired", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		approved := deviceFixture(clock)
		approvedDC := mustCreateDevice(t, a, approved)
		if err := a.DecideDevice(ctx, approved.UserCode, true, "u1", "p1"); err != nil {
			t.Fatal(err)
		}
		clock.Add(10*time.Minute - time.Millisecond)
		if _, err := b.DeviceByUserCode(ctx, d.UserCode); err != nil {
			t.Fatalf("by user code at the last moment: %v", err)
		}
		clock.Add(time.Millisecond) // d.Expires
		_, err := b.DeviceByUserCode(ctx, d.UserCode)
		wantErr(t, "by user code", err, ErrNotFound)
		wantErr(t, "decide", b.DecideDevice(ctx, d.UserCode, true, "u1", "p1"), ErrNotFound)
		wantPoll(t, b, dc, "tv", ErrDeviceExpired)
		wantPoll(t, b, approvedDC, "tv", ErrDeviceExpired) // approved too late: no tokens
		// The user code is free again.
		again := deviceFixture(clock)
		again.UserCode = d.UserCode
		againDC := mustCreateDevice(t, a, again)
		wantPoll(t, b, againDC, "tv", ErrAuthorizationPending)
		wantPoll(t, b, dc, "tv", ErrDeviceExpired)

		clock.Add(deviceLinger)
		wantPoll(t, a, dc, "tv", ErrNotFound)
		wantPoll(t, a, approvedDC, "tv", ErrNotFound)
	})

	t.Run("device: slow_down raises the interval by 5s", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		d := deviceFixture(clock)
		d.Interval = 5 * time.Second
		dc := mustCreateDevice(t, a, d)
		wantPoll(t, a, dc, "tv", ErrAuthorizationPending)
		clock.Add(5*time.Second - time.Millisecond)
		if got := wantPoll(t, b, dc, "tv", ErrSlowDown); got.Interval != 10*time.Second {
			t.Errorf("interval after slow_down %v, want 10s", got.Interval)
		}
		if got, err := a.DeviceByUserCode(ctx, d.UserCode); err != nil || got.Interval != 10*time.Second {
			t.Errorf("stored interval %v, %v; want 10s", got.Interval, err)
		}
		clock.Add(10 * time.Second) // the raised interval after the slow poll
		if got := wantPoll(t, a, dc, "tv", ErrAuthorizationPending); got.Interval != 10*time.Second {
			t.Errorf("interval %v, want 10s", got.Interval)
		}
		clock.Add(5 * time.Second) // the first interval is not enough any more
		wantPoll(t, b, dc, "tv", ErrSlowDown)
		clock.Add(15 * time.Second)
		if got := wantPoll(t, b, dc, "tv", ErrAuthorizationPending); got.Interval != 15*time.Second {
			t.Errorf("interval %v, want 15s", got.Interval)
		}
		// Once approved, an early poll gets the tokens: slow_down is a
		// kind of authorization_pending.
		if err := a.DecideDevice(ctx, d.UserCode, true, "u1", "p1"); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Second)
		if got := wantPoll(t, a, dc, "tv", nil); got.UserID != "u1" || got.Interval != 15*time.Second {
			t.Errorf("tokens for %+v", got)
		}
	})

	t.Run("device: another client's device code, an unknown one", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		if got := wantPoll(t, b, dc, "other", ErrNotFound); got != (DeviceCode{}) {
			t.Errorf("another client learnt %+v", got)
		}
		wantPoll(t, a, dc, "tv", ErrAuthorizationPending) // the other's poll counted for nothing
		wantPoll(t, a, NewDeviceCode(), "tv", ErrNotFound)
		wantPoll(t, a, "", "tv", ErrNotFound)
		if err := b.DecideDevice(ctx, d.UserCode, true, "u1", "p1"); err != nil {
			t.Fatal(err)
		}
		clock.Add(5 * time.Second)
		wantPoll(t, b, dc, "other", ErrNotFound)
		wantPoll(t, b, dc, "tv", nil) // still there for its client
	})

	t.Run("device: user codes are unique among unexpired requests", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		other := deviceFixture(clock)
		other.UserCode = strings.ToLower(d.UserCode)
		err := b.CreateDevice(ctx, NewDeviceCode(), other)
		wantErr(t, "the same user code", err, ErrUserCodeInUse)
		wantErr(t, "the same user code", err, ErrInvalidArgument)
		if err := b.CreateDevice(ctx, dc, d); err != nil {
			t.Errorf("the same CreateDevice again (a retried call): %v", err)
		}
		other.UserCode = NewUserCode()
		err = b.CreateDevice(ctx, dc, other)
		wantErr(t, "the same device code, another user code", err, ErrInvalidArgument)
		if errors.Is(err, ErrUserCodeInUse) {
			t.Errorf("a device code in use said the user code is: %v", err)
		}
		got, err := a.DeviceByUserCode(ctx, d.UserCode)
		if err != nil || got.ClientID != "tv" || got.DeviceName != d.DeviceName {
			t.Errorf("the refused calls changed the request: %+v %v", got, err)
		}
	})

	t.Run("device: invalid arguments", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		for name, change := range map[string]func(*DeviceCode, *string){
			"no device code":    func(_ *DeviceCode, dc *string) { *dc = "" },
			"no user code":      func(d *DeviceCode, _ *string) { d.UserCode = "" },
			"a vowel":           func(d *DeviceCode, _ *string) { d.UserCode = "BDFH-KMNA" },
			"no client":         func(d *DeviceCode, _ *string) { d.ClientID = "" },
			"expired":           func(d *DeviceCode, _ *string) { d.Expires = clock.Now() },
			"negative interval": func(d *DeviceCode, _ *string) { d.Interval = -time.Second },
			"approved":          func(d *DeviceCode, _ *string) { d.Status = DeviceApproved },
			"with a user":       func(d *DeviceCode, _ *string) { d.UserID = "u1" },
		} {
			d, dc := deviceFixture(clock), NewDeviceCode()
			change(&d, &dc)
			wantErr(t, name, a.CreateDevice(ctx, dc, d), ErrInvalidArgument)
			if name != "no user code" && name != "a vowel" {
				_, err := a.DeviceByUserCode(ctx, d.UserCode)
				wantErr(t, name+": stored", err, ErrNotFound)
			}
		}
		d := deviceFixture(clock)
		mustCreateDevice(t, a, d)
		wantErr(t, "approve without a user", a.DecideDevice(ctx, d.UserCode, true, "", "p1"), ErrInvalidArgument)
		for _, code := range []string{"", "BDFH-KMN", "not a code", d.UserCode + "B"} {
			_, err := a.DeviceByUserCode(ctx, code)
			wantErr(t, "by user code "+code, err, ErrNotFound)
			wantErr(t, "decide "+code, a.DecideDevice(ctx, code, false, "", ""), ErrNotFound)
		}
		if got, err := a.DeviceByUserCode(ctx, d.UserCode); err != nil || got.Status != DevicePending {
			t.Errorf("the refused calls changed the request: %+v %v", got, err)
		}
	})

	t.Run("device: found, decided and polled on three replicas", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		c := another(t, b)
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, c, d)
		wantPoll(t, c, dc, "tv", ErrAuthorizationPending)
		got, err := a.DeviceByUserCode(ctx, d.UserCode)
		if err != nil || got.ClientID != "tv" || got.Status != DevicePending {
			t.Fatalf("found on a: %+v %v", got, err)
		}
		if err := b.DecideDevice(ctx, d.UserCode, true, "u1", "p2"); err != nil {
			t.Fatalf("decided on b: %v", err)
		}
		clock.Add(5 * time.Second)
		if got := wantPoll(t, c, dc, "tv", nil); got.UserID != "u1" || got.Profile != "p2" || got.Scope != d.Scope {
			t.Errorf("polled on c: %+v", got)
		}
		wantPoll(t, a, dc, "tv", ErrNotFound)
	})

	t.Run("device: 20 polls of an approved code: one gets tokens", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		replicas := []replicated{a, b, another(t, b)}
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		if err := b.DecideDevice(ctx, d.UserCode, true, "u1", "p1"); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 20)
		var wg sync.WaitGroup
		for i := range errs {
			st := replicas[i%len(replicas)]
			wg.Go(func() { _, errs[i] = st.PollDevice(ctx, dc, "tv") })
		}
		wg.Wait()
		tokens, refused := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				tokens++
			case errors.Is(err, ErrNotFound):
				refused++
			default:
				t.Errorf("poll: %v", err)
			}
		}
		if tokens != 1 || refused != 19 {
			t.Errorf("%d polls got tokens, %d were refused; want 1 and 19", tokens, refused)
		}
	})

	t.Run("device: observer", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		rec := &recorder{}
		a, _ := open(t, clock, WithObserver(rec))
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, a, d)
		a.PollDevice(ctx, dc, "tv")
		a.DeviceByUserCode(ctx, d.UserCode)
		a.DecideDevice(ctx, d.UserCode, false, "", "")
		want := []string{"device_create <nil>", "device_poll " + ErrAuthorizationPending.Error(), "device_get <nil>",
			"device_decide <nil>"}
		if got := rec.got(); !slices.Equal(got, want) {
			t.Errorf("observed\n%q\nwant\n%q", got, want)
		}
	})
}

func TestNewUserCode(t *testing.T) {
	seen := map[string]bool{}
	letters := map[rune]int{}
	for range 1000 {
		code := NewUserCode()
		if len(code) != 9 || code[4] != '-' {
			t.Fatalf("user code %q is not XXXX-XXXX", code)
		}
		for i, c := range code {
			if i != 4 && !strings.ContainsRune(UserCodeAlphabet, c) {
				t.Fatalf("user code %q has %q", code, c)
			}
			letters[c]++
		}
		if got, ok := NormalizeUserCode(code); !ok || got != code {
			t.Fatalf("NormalizeUserCode(%q) = %q, %v", code, got, ok)
		}
		if seen[code] {
			t.Fatalf("user code %q twice in 1000", code)
		}
		seen[code] = true
	}
	// 8000 draws, 400 expected of each: a letter far off means a biased
	// draw (the chance of any outside 300-500 by luck is about 1e-6).
	for _, c := range UserCodeAlphabet {
		if n := letters[c]; n < 300 || n > 500 {
			t.Errorf("%c drawn %d times in 8000, expected about 400", c, n)
		}
	}
}

func TestNormalizeUserCode(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "": not a user code
	}{
		{"BDFH-KMNP", "BDFH-KMNP"},
		{"bdfh-kmnp", "BDFH-KMNP"},
		{"BDFHKMNP", "BDFH-KMNP"},
		{" bdfh kmnp ", "BDFH-KMNP"},
		{"b-d-f-h--k m n p", "BDFH-KMNP"},
		{"", ""},
		{"----", ""},
		{"BDFH-KMN", ""},
		{"BDFH-KMNPQ", ""},
		{"BDFH-KMN0", ""},    // a digit
		{"BAFH-KMNP", ""},    // a vowel
		{"BDFH_KMNP", ""},    // not a dash
		{"BDFH\tKMNP", ""},   // not a space
		{"BDFH-KMNſ", ""},    // upper-cases to S outside ASCII
		{"BDFH-KMNPÉ", ""},   // not ASCII
		{"BDFH-KMN\x00", ""}, // a NUL
	} {
		got, ok := NormalizeUserCode(c.in)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("NormalizeUserCode(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
}

func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"BDFH-KMNP", "bdfh kmnp", "BDFH-KMN0", "", "ſſſſſſſſ", "-- b d f h k m n p --"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := NormalizeUserCode(s)
		if !ok {
			if got != "" {
				t.Fatalf("refused %q but returned %q", s, got)
			}
			return
		}
		if len(got) != 9 || got[4] != '-' || strings.Trim(got[:4]+got[5:], UserCodeAlphabet) != "" {
			t.Fatalf("NormalizeUserCode(%q) = %q, not a user code", s, got)
		}
		if again, ok := NormalizeUserCode(got); !ok || again != got {
			t.Fatalf("NormalizeUserCode(%q) = %q, %v: not stable", got, again, ok)
		}
		if strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s)) != got[:4]+got[5:] {
			t.Fatalf("NormalizeUserCode(%q) = %q changed more than case, spaces and dashes", s, got)
		}
	})
}

func TestNewDeviceCode(t *testing.T) {
	a, b := NewDeviceCode(), NewDeviceCode()
	if !strings.HasPrefix(a, DeviceCodePrefix) || len(a) != len(DeviceCodePrefix)+43 || a == b {
		t.Errorf("device codes %q, %q", a, b)
	}
}

func TestMemoryForgetsExpiredDevices(t *testing.T) {
	clock := testkit.NewClock(start)
	m := NewMemory(clock.Now)
	for i := range 50 {
		d := deviceFixture(clock)
		dc := mustCreateDevice(t, m, d)
		if i%2 == 0 {
			wantPoll(t, m, dc, "tv", ErrAuthorizationPending)
		}
	}
	clock.Add(10 * time.Minute)
	wantCount(t, m, 0) // sweeps
	m.mu.Lock()
	devices, codes := len(m.devices), len(m.userCodes)
	m.mu.Unlock()
	if devices != 50 || codes != 0 {
		t.Errorf("at expiry: %d requests, %d user codes; want 50 (for expired_token) and 0", devices, codes)
	}
	clock.Add(deviceLinger)
	wantCount(t, m, 0)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.devices)+len(m.userCodes) != 0 {
		t.Errorf("after the linger: %d requests, %d user codes", len(m.devices), len(m.userCodes))
	}
}
