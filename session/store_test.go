package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
)

// replicated is a store as the suite sees it.
type replicated interface {
	Store
	DeviceCodes
	Revoked() *Revoked
}

// opener makes two replicas of one new, empty store on clock: for Memory
// both are the same; for Redis, two stores on one server, each with Run
// running and subscribed.
type opener func(t *testing.T, clock *testkit.Clock, opts ...Option) (a, b replicated)

// start is when every test's clock starts.
var start = time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)

const reuse = 5 * time.Second

// waitFor polls cond (every few milliseconds, for at most 10s) and fails
// the test if it never holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // a poll interval, not a synchronisation
	}
}

func fixture(clock *testkit.Clock, id, user string) Session {
	now := clock.Now()
	return Session{ID: id, UserID: user, ClientID: "stb", Profile: "p1", Scope: "openid catalog", Role: "viewer",
		PasswordStamp: "stamp-1", Created: now, Refreshed: now, Expires: now.Add(time.Hour)}
}

func sameSession(t testing.TB, got, want Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.ClientID != want.ClientID || got.Profile != want.Profile ||
		got.Scope != want.Scope || got.Role != want.Role || got.PasswordStamp != want.PasswordStamp ||
		!got.Created.Equal(want.Created) || !got.Refreshed.Equal(want.Refreshed) || !got.Expires.Equal(want.Expires) {
		t.Errorf("session\n got %+v\nwant %+v", got, want)
	}
}

func ids(list []Session) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

func mustCreate(t testing.TB, st Store, s Session, handle string, limit Limit) []string {
	t.Helper()
	evicted, err := st.Create(context.Background(), s, handle, limit)
	if err != nil {
		t.Fatalf("create %s: %v", s.ID, err)
	}
	return evicted
}

func mustRotate(t testing.TB, st Store, clock *testkit.Clock, presented, next string) Rotation {
	t.Helper()
	rot, err := st.Rotate(context.Background(), presented, next, "stb", clock.Now().Add(time.Hour), reuse)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return rot
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func wantCount(t testing.TB, st Store, want int) {
	t.Helper()
	n, err := st.Count(context.Background())
	if err != nil || n != want {
		t.Errorf("Count = %d, %v; want %d", n, err, want)
	}
}

// wantRevokedEverywhere checks that the replicas' Revoked sets hold id:
// a's at once, b's (another replica) eventually.
func wantRevokedEverywhere(t testing.TB, a, b replicated, id string) {
	t.Helper()
	if !a.Revoked().Contains(id) {
		t.Errorf("the revoking replica's set lacks %s", id)
	}
	waitFor(t, "the other replica's set holds "+id, func() bool { return b.Revoked().Contains(id) })
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu    sync.Mutex
	calls []string // "op error"
}

func (r *recorder) StoreCall(_ context.Context, op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("%s %v", op, err))
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// testContract runs the behaviour every Store must have.
func testContract(t *testing.T, open opener) {
	ctx := context.Background()

	t.Run("create, get, lookup, list, count", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		s, h := fixture(clock, "s1", "u1"), NewHandle()
		if evicted := mustCreate(t, a, s, h, Limit{}); len(evicted) != 0 {
			t.Errorf("evicted %v", evicted)
		}
		for name, st := range map[string]Store{"a": a, "b": b} {
			got, err := st.Get(ctx, "s1")
			if err != nil {
				t.Fatalf("%s: get: %v", name, err)
			}
			sameSession(t, got, s)
			got, err = st.Lookup(ctx, h)
			if err != nil {
				t.Fatalf("%s: lookup: %v", name, err)
			}
			sameSession(t, got, s)
			list, err := st.List(ctx, "u1")
			if err != nil || len(list) != 1 {
				t.Fatalf("%s: list %v %v", name, list, err)
			}
			sameSession(t, list[0], s)
			wantCount(t, st, 1)
		}
	})

	t.Run("created and refreshed default to now", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		s := fixture(clock, "s1", "u1")
		s.Created, s.Refreshed = time.Time{}, time.Time{}
		mustCreate(t, a, s, NewHandle(), Limit{})
		got, err := a.Get(ctx, "s1")
		if err != nil || !got.Created.Equal(start) || !got.Refreshed.Equal(start) {
			t.Errorf("got %+v, %v", got, err)
		}
	})

	t.Run("rotate", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		s, h0, h1 := fixture(clock, "s1", "u1"), NewHandle(), NewHandle()
		mustCreate(t, a, s, h0, Limit{})
		clock.Add(10 * time.Minute)
		rot := mustRotate(t, b, clock, h0, h1)
		if rot.Successor != "" {
			t.Errorf("a fresh rotation has successor %q", rot.Successor)
		}
		s.Refreshed, s.Expires = clock.Now(), clock.Now().Add(time.Hour)
		sameSession(t, rot.Session, s)
		got, err := a.Lookup(ctx, h1)
		if err != nil {
			t.Fatal(err)
		}
		sameSession(t, got, s)
		_, err = a.Lookup(ctx, h0)
		wantErr(t, "lookup of the replaced handle", err, ErrNotFound)
		got, _ = a.Get(ctx, "s1")
		sameSession(t, got, s)
	})

	t.Run("retry within the interval gets the same successor", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h0, h1, h2 := NewHandle(), NewHandle(), NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		first := mustRotate(t, a, clock, h0, h1)
		clock.Add(reuse) // the last moment of the interval
		rot := mustRotate(t, b, clock, h0, h2)
		if rot.Successor != h1 {
			t.Fatalf("retry successor %q, want the first rotation's", rot.Successor)
		}
		sameSession(t, rot.Session, first.Session)
		if _, err := a.Lookup(ctx, h2); !errors.Is(err, ErrNotFound) {
			t.Errorf("the retry's next handle was recorded: %v", err)
		}
		if rot := mustRotate(t, a, clock, h1, h2); rot.Successor != "" {
			t.Errorf("rotating the successor: %+v", rot)
		}
		if a.Revoked().Contains("s1") {
			t.Error("a retry revoked the session")
		}
	})

	t.Run("reuse after the interval revokes", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h0, h1 := NewHandle(), NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		mustRotate(t, a, clock, h0, h1)
		clock.Add(reuse + time.Millisecond)
		_, err := a.Rotate(ctx, h0, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "reuse", err, ErrReused)
		_, err = a.Get(ctx, "s1")
		wantErr(t, "get", err, ErrRevoked)
		_, err = b.Rotate(ctx, h1, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "rotate the successor", err, ErrRevoked)
		_, err = b.Lookup(ctx, h1)
		wantErr(t, "lookup the successor", err, ErrRevoked)
		wantCount(t, a, 0)
		if list, err := a.List(ctx, "u1"); len(list) != 0 || err != nil {
			t.Errorf("list %v %v", ids(list), err)
		}
		wantRevokedEverywhere(t, a, b, "s1")
	})

	t.Run("an older handle revokes, even within the interval", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h0, h1, h2 := NewHandle(), NewHandle(), NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		mustRotate(t, a, clock, h0, h1)
		mustRotate(t, a, clock, h1, h2)
		_, err := b.Rotate(ctx, h0, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "older handle", err, ErrReused)
		_, err = a.Lookup(ctx, h2)
		wantErr(t, "lookup of the head", err, ErrRevoked)
		wantRevokedEverywhere(t, b, a, "s1")
	})

	t.Run("another client's handle changes nothing", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		s, h0, h1 := fixture(clock, "s1", "u1"), NewHandle(), NewHandle()
		mustCreate(t, a, s, h0, Limit{})
		clock.Add(time.Minute)
		_, err := b.Rotate(ctx, h0, h1, "web", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "the current handle through another client", err, ErrWrongClient)
		got, err := a.Lookup(ctx, h0)
		if err != nil {
			t.Fatalf("the current handle after another client's attempt: %v", err)
		}
		sameSession(t, got, s) // neither refreshed nor extended
		_, err = a.Lookup(ctx, h1)
		wantErr(t, "lookup of the refused next handle", err, ErrNotFound)
		// The session's own client rotates it as if nothing had happened:
		// a fresh rotation (not a retry), to the same next handle.
		rot := mustRotate(t, a, clock, h0, h1)
		if rot.Successor != "" {
			t.Errorf("the owner's rotation is a retry of successor %q", rot.Successor)
		}
		s.Refreshed, s.Expires = clock.Now(), clock.Now().Add(time.Hour)
		sameSession(t, rot.Session, s)
		if a.Revoked().Contains("s1") || b.Revoked().Contains("s1") {
			t.Error("another client's attempt revoked the session")
		}
	})

	t.Run("another client's retry changes nothing", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h0, h1 := NewHandle(), NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		first := mustRotate(t, a, clock, h0, h1)
		clock.Add(reuse) // within the interval
		_, err := b.Rotate(ctx, h0, NewHandle(), "web", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "the used handle through another client", err, ErrWrongClient)
		rot := mustRotate(t, a, clock, h0, NewHandle())
		if rot.Successor != h1 {
			t.Fatalf("the owner's retry: successor %q, want the first rotation's", rot.Successor)
		}
		sameSession(t, rot.Session, first.Session)
		_, err = b.Rotate(ctx, h1, NewHandle(), "web", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "the successor through another client", err, ErrWrongClient)
		if rot := mustRotate(t, a, clock, h1, NewHandle()); rot.Successor != "" {
			t.Errorf("the owner's rotation of the successor is a retry of %q", rot.Successor)
		}
		if a.Revoked().Contains("s1") || b.Revoked().Contains("s1") {
			t.Error("another client's attempts revoked the session")
		}
	})

	t.Run("a used handle revokes, whichever client presents it", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		// s1: its last used handle after the interval; s2: an older one
		// within it.
		h1 := []string{NewHandle(), NewHandle()}
		h2 := []string{NewHandle(), NewHandle(), NewHandle()}
		mustCreate(t, a, fixture(clock, "s1", "u1"), h1[0], Limit{})
		mustCreate(t, a, fixture(clock, "s2", "u1"), h2[0], Limit{})
		mustRotate(t, a, clock, h1[0], h1[1])
		clock.Add(reuse + time.Millisecond)
		mustRotate(t, a, clock, h2[0], h2[1])
		mustRotate(t, a, clock, h2[1], h2[2])
		for _, c := range []struct {
			id, used, head string
		}{{"s1", h1[0], h1[1]}, {"s2", h2[0], h2[2]}} {
			_, err := b.Rotate(ctx, c.used, NewHandle(), "web", clock.Now().Add(time.Hour), reuse)
			wantErr(t, c.id+": a used handle through another client", err, ErrReused)
			_, err = a.Rotate(ctx, c.head, NewHandle(), "web", clock.Now().Add(time.Hour), reuse)
			wantErr(t, c.id+": its head through another client", err, ErrRevoked)
			wantRevokedEverywhere(t, b, a, c.id)
		}
	})

	t.Run("only the last handles are remembered", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		hs := []string{NewHandle()}
		mustCreate(t, a, fixture(clock, "s1", "u1"), hs[0], Limit{})
		for i := range keptHandles + 3 {
			hs = append(hs, NewHandle())
			mustRotate(t, a, clock, hs[i], hs[i+1])
		}
		// head hs[19], prev hs[18], kept hs[17]…hs[2]; hs[1], hs[0] forgotten.
		_, err := a.Rotate(ctx, hs[1], NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "a forgotten handle", err, ErrNotFound)
		if _, err := a.Get(ctx, "s1"); err != nil {
			t.Fatalf("a forgotten handle ended the session: %v", err)
		}
		_, err = a.Rotate(ctx, hs[2], NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "the oldest kept handle", err, ErrReused)
	})

	t.Run("unknown handle and id", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		mustCreate(t, a, fixture(clock, "s1", "u1"), NewHandle(), Limit{})
		_, err := a.Rotate(ctx, NewHandle(), NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "rotate", err, ErrNotFound)
		_, err = a.Lookup(ctx, NewHandle())
		wantErr(t, "lookup", err, ErrNotFound)
		_, err = a.Get(ctx, "s2")
		wantErr(t, "get", err, ErrNotFound)
		wantErr(t, "update", a.Update(ctx, "s2", "p2"), ErrNotFound)
		if list, err := a.List(ctx, "nobody"); len(list) != 0 || err != nil {
			t.Errorf("list %v %v", list, err)
		}
	})

	t.Run("a revoked session", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h := NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h, Limit{})
		mustCreate(t, a, fixture(clock, "s2", "u1"), NewHandle(), Limit{})
		until := clock.Now().Add(15 * time.Minute)
		if err := b.Revoke(ctx, []string{"s1", "never-seen"}, CauseLogout, until); err != nil {
			t.Fatal(err)
		}
		_, err := a.Get(ctx, "s1")
		wantErr(t, "get", err, ErrRevoked)
		_, err = a.Rotate(ctx, h, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "rotate", err, ErrRevoked)
		_, err = a.Lookup(ctx, h)
		wantErr(t, "lookup", err, ErrRevoked)
		wantErr(t, "update", a.Update(ctx, "s1", "p2"), ErrRevoked)
		_, err = a.Get(ctx, "never-seen")
		wantErr(t, "get an unknown id revoked", err, ErrRevoked)
		_, err = a.Create(ctx, fixture(clock, "s1", "u1"), NewHandle(), Limit{})
		wantErr(t, "create with a revoked id", err, ErrInvalidArgument)
		list, err := a.List(ctx, "u1")
		if err != nil || !slices.Equal(ids(list), []string{"s2"}) {
			t.Errorf("list %v %v", ids(list), err)
		}
		wantCount(t, a, 1)
		wantRevokedEverywhere(t, b, a, "s1")
		wantRevokedEverywhere(t, b, a, "never-seen")
		if err := a.Revoke(ctx, []string{"s1"}, CauseOperator, until); err != nil {
			t.Errorf("revoking again: %v", err)
		}
		if err := a.Revoke(ctx, nil, CauseOperator, until); err != nil {
			t.Errorf("revoking nothing: %v", err)
		}

		clock.Add(15*time.Minute + time.Millisecond)
		_, err = a.Get(ctx, "s1")
		wantErr(t, "get after until", err, ErrNotFound)
		_, err = a.Rotate(ctx, h, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "rotate after until", err, ErrNotFound)
	})

	t.Run("update", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h := NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h, Limit{})
		if err := b.Update(ctx, "s1", "p2"); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Get(ctx, "s1"); err != nil || got.Profile != "p2" {
			t.Errorf("get %+v %v", got, err)
		}
		if rot := mustRotate(t, a, clock, h, NewHandle()); rot.Session.Profile != "p2" {
			t.Errorf("rotated %+v", rot.Session)
		}
	})

	t.Run("list and count", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		for _, id := range []string{"s3", "s1", "s2"} { // s1 oldest
			s := fixture(clock, id, "u1")
			s.Created = start.Add(map[string]time.Duration{"s1": 0, "s2": time.Second, "s3": 2 * time.Second}[id])
			mustCreate(t, a, s, NewHandle(), Limit{})
		}
		mustCreate(t, a, fixture(clock, "s4", "u2"), NewHandle(), Limit{})
		list, err := b.List(ctx, "u1")
		if err != nil || !slices.Equal(ids(list), []string{"s1", "s2", "s3"}) {
			t.Errorf("list u1 %v %v", ids(list), err)
		}
		list, err = b.List(ctx, "u2")
		if err != nil || !slices.Equal(ids(list), []string{"s4"}) {
			t.Errorf("list u2 %v %v", ids(list), err)
		}
		wantCount(t, b, 4)
	})

	t.Run("limit evicts the oldest", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		for _, id := range []string{"s1", "s2"} {
			mustCreate(t, a, fixture(clock, id, "u1"), NewHandle(), Limit{Max: 2})
			clock.Add(time.Second)
		}
		mustCreate(t, a, fixture(clock, "other", "u2"), NewHandle(), Limit{Max: 1})
		if evicted := mustCreate(t, b, fixture(clock, "s3", "u1"), NewHandle(), Limit{Max: 2}); !slices.Equal(evicted, []string{"s1"}) {
			t.Errorf("evicted %v, want [s1]", evicted)
		}
		_, err := a.Get(ctx, "s1")
		wantErr(t, "get the evicted", err, ErrRevoked)
		wantRevokedEverywhere(t, b, a, "s1")
		list, _ := a.List(ctx, "u1")
		if !slices.Equal(ids(list), []string{"s2", "s3"}) {
			t.Errorf("list %v", ids(list))
		}
		clock.Add(time.Second)
		if evicted := mustCreate(t, a, fixture(clock, "s4", "u1"), NewHandle(), Limit{Max: 1}); !slices.Equal(evicted, []string{"s2", "s3"}) {
			t.Errorf("evicted %v, want [s2 s3]", evicted)
		}
		wantCount(t, a, 2) // s4, other
	})

	t.Run("limit refuses", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		mustCreate(t, a, fixture(clock, "s1", "u1"), NewHandle(), Limit{Max: 2, Refuse: true})
		mustCreate(t, b, fixture(clock, "s2", "u1"), NewHandle(), Limit{Max: 2, Refuse: true})
		evicted, err := a.Create(ctx, fixture(clock, "s3", "u1"), NewHandle(), Limit{Max: 2, Refuse: true})
		wantErr(t, "create beyond the limit", err, ErrLimitReached)
		if len(evicted) != 0 {
			t.Errorf("evicted %v", evicted)
		}
		_, err = a.Get(ctx, "s3")
		wantErr(t, "get the refused", err, ErrNotFound)
		if list, _ := a.List(ctx, "u1"); !slices.Equal(ids(list), []string{"s1", "s2"}) {
			t.Errorf("list %v", ids(list))
		}
	})

	t.Run("limit counts live sessions only", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		short := fixture(clock, "short", "u1")
		short.Expires = clock.Now().Add(time.Minute)
		mustCreate(t, a, short, NewHandle(), Limit{})
		mustCreate(t, a, fixture(clock, "ended", "u1"), NewHandle(), Limit{})
		if err := a.Revoke(ctx, []string{"ended"}, CauseLogout, clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		if evicted := mustCreate(t, a, fixture(clock, "s3", "u1"), NewHandle(), Limit{Max: 1, Refuse: true}); len(evicted) != 0 {
			t.Errorf("evicted %v", evicted)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		h0, h1 := NewHandle(), NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		mustCreate(t, a, fixture(clock, "s2", "u1"), h1, Limit{})
		clock.Add(50 * time.Minute)
		h2 := NewHandle()
		mustRotate(t, a, clock, h1, h2) // s2 now lives until 1h50m
		clock.Add(10 * time.Minute)     // s1's expiry
		_, err := a.Get(ctx, "s1")
		wantErr(t, "get", err, ErrNotFound)
		_, err = a.Lookup(ctx, h0)
		wantErr(t, "lookup", err, ErrNotFound)
		_, err = a.Rotate(ctx, h0, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "rotate", err, ErrNotFound)
		wantErr(t, "update", a.Update(ctx, "s1", "p"), ErrNotFound)
		if list, _ := a.List(ctx, "u1"); !slices.Equal(ids(list), []string{"s2"}) {
			t.Errorf("list %v", ids(list))
		}
		wantCount(t, a, 1)
		clock.Add(50 * time.Minute)
		wantCount(t, a, 0)
		_, err = a.Lookup(ctx, h2)
		wantErr(t, "lookup after the rotated expiry", err, ErrNotFound)
	})

	t.Run("invalid arguments", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock)
		h := NewHandle()
		past := fixture(clock, "s0", "u1")
		past.Expires = clock.Now()
		for name, c := range map[string]struct {
			s      Session
			handle string
		}{
			"no id":      {fixture(clock, "", "u1"), NewHandle()},
			"no user":    {fixture(clock, "s0", ""), NewHandle()},
			"no handle":  {fixture(clock, "s0", "u1"), ""},
			"expired":    {past, NewHandle()},
			"handle use": {fixture(clock, "s9", "u1"), h},
		} {
			if name == "handle use" {
				mustCreate(t, a, fixture(clock, "s1", "u1"), h, Limit{})
			}
			_, err := a.Create(ctx, c.s, c.handle, Limit{})
			wantErr(t, name, err, ErrInvalidArgument)
		}
		_, err := a.Create(ctx, fixture(clock, "s1", "u1"), NewHandle(), Limit{})
		wantErr(t, "an id in use", err, ErrInvalidArgument)
		if evicted, err := a.Create(ctx, fixture(clock, "s1", "u1"), h, Limit{}); err != nil || len(evicted) != 0 {
			t.Errorf("the same Create again (a retried call): %v %v", evicted, err)
		}
		_, err = a.Rotate(ctx, h, h, "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "rotate to itself", err, ErrInvalidArgument)
		_, err = a.Rotate(ctx, h, NewHandle(), "stb", clock.Now(), reuse)
		wantErr(t, "rotate into the past", err, ErrInvalidArgument)
		if _, err := a.Get(ctx, "s1"); err != nil {
			t.Errorf("the refused calls changed the session: %v", err)
		}
	})

	t.Run("WithRevokeFor bounds what the store revokes itself", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, _ := open(t, clock, WithRevokeFor(2*time.Minute))
		h0 := NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		mustRotate(t, a, clock, h0, NewHandle())
		clock.Add(time.Minute)
		_, err := a.Rotate(ctx, h0, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
		wantErr(t, "reuse", err, ErrReused)
		clock.Add(2 * time.Minute)
		_, err = a.Get(ctx, "s1")
		wantErr(t, "get past the revocation's until", err, ErrNotFound)
	})

	t.Run("50 rotations of one handle within the interval: one successor", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h0 := NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		type result struct {
			next string
			rot  Rotation
			err  error
		}
		results := make([]result, 50)
		var wg sync.WaitGroup
		for i := range results {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Go(func() {
				next := NewHandle()
				rot, err := st.Rotate(ctx, h0, next, "stb", clock.Now().Add(time.Hour), reuse)
				results[i] = result{next, rot, err}
			})
		}
		wg.Wait()
		var successor string
		fresh := 0
		for _, r := range results {
			if r.err != nil {
				t.Fatalf("rotate: %v", r.err)
			}
			got := r.rot.Successor
			if got == "" {
				fresh++
				got = r.next
			}
			if successor == "" {
				successor = got
			}
			if got != successor {
				t.Errorf("two successors: %q and %q", successor, got)
			}
		}
		if fresh != 1 {
			t.Errorf("%d fresh rotations, want 1", fresh)
		}
		if s, err := a.Lookup(ctx, successor); err != nil || s.ID != "s1" {
			t.Errorf("lookup of the successor: %v", err)
		}
		if a.Revoked().Contains("s1") || b.Revoked().Contains("s1") {
			t.Error("revoked")
		}
	})

	t.Run("50 rotations of one handle after the interval: one revocation", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		a, b := open(t, clock)
		h0, h1 := NewHandle(), NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h0, Limit{})
		mustRotate(t, a, clock, h0, h1)
		clock.Add(reuse + time.Millisecond)
		errs := make([]error, 50)
		var wg sync.WaitGroup
		for i := range errs {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Go(func() {
				_, errs[i] = st.Rotate(ctx, h0, NewHandle(), "stb", clock.Now().Add(time.Hour), reuse)
			})
		}
		wg.Wait()
		reused, revoked := 0, 0
		for _, err := range errs {
			switch {
			case errors.Is(err, ErrReused):
				reused++
			case errors.Is(err, ErrRevoked):
				revoked++
			default:
				t.Errorf("rotate: %v", err)
			}
		}
		if reused != 1 || revoked != 49 {
			t.Errorf("%d reused, %d revoked; want 1 and 49", reused, revoked)
		}
		_, err := a.Lookup(ctx, h1)
		wantErr(t, "lookup of the successor", err, ErrRevoked)
		wantRevokedEverywhere(t, a, b, "s1")
	})

	t.Run("observer", func(t *testing.T) {
		t.Parallel()
		clock := testkit.NewClock(start)
		rec := &recorder{}
		a, _ := open(t, clock, WithObserver(rec))
		h := NewHandle()
		mustCreate(t, a, fixture(clock, "s1", "u1"), h, Limit{})
		mustRotate(t, a, clock, h, NewHandle())
		a.Get(ctx, "nope")
		a.Lookup(ctx, h)
		a.Update(ctx, "s1", "p")
		a.List(ctx, "u1")
		a.Count(ctx)
		a.Revoke(ctx, []string{"s1"}, CauseLogout, clock.Now().Add(time.Minute))
		want := []string{"create <nil>", "rotate <nil>", "get " + ErrNotFound.Error(), "lookup " + ErrNotFound.Error(),
			"update <nil>", "list <nil>", "count <nil>", "revoke <nil>"}
		if got := rec.got(); !slices.Equal(got, want) {
			t.Errorf("observed\n%q\nwant\n%q", got, want)
		}
	})

	testDeviceContract(t, open)
}

func TestMemory(t *testing.T) {
	testContract(t, func(t *testing.T, clock *testkit.Clock, opts ...Option) (replicated, replicated) {
		m := NewMemory(clock.Now, opts...)
		return m, m
	})
}

func TestMemoryStaysBounded(t *testing.T) {
	clock := testkit.NewClock(start)
	m := NewMemory(clock.Now)
	ctx := context.Background()
	for i := range 100 {
		id := fmt.Sprintf("s%d", i)
		h := NewHandle()
		mustCreate(t, m, fixture(clock, id, fmt.Sprintf("u%d", i)), h, Limit{})
		for range 30 {
			next := NewHandle()
			mustRotate(t, m, clock, h, next)
			h = next
		}
		if i%2 == 0 {
			m.Revoke(ctx, []string{id}, CauseLogout, clock.Now().Add(time.Minute))
		}
	}
	m.mu.Lock()
	handles := len(m.handles)
	m.mu.Unlock()
	if bound := 100 * (keptHandles + 2); handles > bound {
		t.Errorf("%d handles kept for 100 sessions, want at most %d", handles, bound)
	}
	clock.Add(2 * time.Hour) // past every expiry and until
	wantCount(t, m, 0)       // sweeps
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sessions)+len(m.handles)+len(m.users)+len(m.gone) != 0 {
		t.Errorf("left after everything expired: %d sessions, %d handles, %d users, %d revoked",
			len(m.sessions), len(m.handles), len(m.users), len(m.gone))
	}
}

func TestMemoryRevokedIsConfirmedNow(t *testing.T) {
	clock := testkit.NewClock(start)
	m := NewMemory(clock.Now)
	clock.Add(time.Minute)
	if got := m.Revoked().Confirmed(); !got.Equal(clock.Now()) {
		t.Errorf("Confirmed %v, want now", got)
	}
}
