package identity

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

func newUsers(t testing.TB, content string, opts ...Option) (*Users, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	testkit.WriteFile(t, path, content)
	u, err := New(Config{Path: path}, zap.NewNop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return u, path
}

// twoUsersYAML has a bcrypt user (someuser@24i.com / qwerty123) and an
// argon2id one (Client1@Company.com / s3cret).
func twoUsersYAML(t testing.TB) string {
	return someUserYAML(bcryptHash(t, "qwerty123")) + `  - id: "3"
    email: Client1@Company.com
    password_hash: "` + argonHash(t, "s3cret") + `"
    claims: {tags: [a, b], nested: {k: v}}
`
}

// reloads returns an option recording reload outcomes on a channel.
func reloads() (Option, chan error) {
	ch := make(chan error, 16)
	return WithOnReload(func(err error) { ch <- err }), ch
}

// reloadedNow returns the outcome of the reload that the synchronous call
// just made (Reload, poll) must have reported.
func reloadedNow(t *testing.T, reloaded <-chan error) error {
	t.Helper()
	select {
	case err := <-reloaded:
		return err
	default:
		t.Fatal("no reload was reported")
		return nil
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := New(Config{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no path: %v", err)
	}
	if _, err := New(Config{Path: "users.yaml", PollInterval: -time.Second}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative interval: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := New(Config{Path: missing}, nil); !errors.Is(err, ErrInvalidFile) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "users.yaml")
	testkit.WriteFile(t, bad, "users:\n  - {id: \"1\"}\n")
	if _, err := New(Config{Path: bad}, nil); !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), "username or email is required") {
		t.Errorf("invalid file: %v", err)
	}
	if u, _ := newUsers(t, twoUsersYAML(t)); u.Len() != 2 {
		t.Errorf("%d users", u.Len())
	}
	if _, err := New(Config{Path: t.TempDir()}, nil); !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("a directory: %v", err)
	}
}

func TestNewWarnsOfNoUsers(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	path := filepath.Join(t.TempDir(), "users.yaml")
	testkit.WriteFile(t, path, "users: []\n")
	u, err := New(Config{Path: path}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 0 {
		t.Errorf("%d users", u.Len())
	}
	warnings := logs.FilterLevelExact(zapcore.WarnLevel).FilterLoggerName("identity").All()
	if len(warnings) != 1 || !strings.Contains(warnings[0].Message, "no users") {
		t.Errorf("warnings: %v", warnings)
	}
	// With nobody to find, a login still costs a comparison, and fails.
	if _, err := u.Authenticate(t.Context(), "anyone", []byte("pw")); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("login: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	u, _ := newUsers(t, twoUsersYAML(t))
	tests := []struct {
		name, login, password string
		wantID                string // "" means ErrInvalidCredentials
	}{
		{"bcrypt by username", "someuser@24i.com", "qwerty123", "2"},
		{"bcrypt login in another case", "SomeUser@24I.com", "qwerty123", "2"},
		{"argon2id by email", "client1@company.com", "s3cret", "3"},
		{"argon2id by email in upper case", "CLIENT1@COMPANY.COM", "s3cret", "3"},
		{"surrounding space", " client1@company.com\t", "s3cret", "3"},
		{"bcrypt wrong password", "someuser@24i.com", "qwerty124", ""},
		{"argon2id wrong password", "client1@company.com", "S3cret", ""},
		{"password case matters", "someuser@24i.com", "QWERTY123", ""},
		{"unknown user", "nobody@example.com", "qwerty123", ""},
		{"another user's password", "client1@company.com", "qwerty123", ""},
		{"empty login", "", "qwerty123", ""},
		{"empty password", "someuser@24i.com", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := u.Authenticate(t.Context(), tt.login, []byte(tt.password))
			if tt.wantID == "" {
				if err != ErrInvalidCredentials || got != nil { // exactly this error, not a wrapped one
					t.Errorf("got %v, %v; want ErrInvalidCredentials", got, err)
				}
				return
			}
			if err != nil || got == nil || got.ID != tt.wantID {
				t.Errorf("got %v, %v; want user %s", got, err, tt.wantID)
			}
		})
	}
}

func TestAuthenticateCancelled(t *testing.T) {
	h := &countingHasher{}
	u, _ := newUsers(t, twoUsersYAML(t), WithHasher(h))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := u.Authenticate(ctx, "someuser@24i.com", []byte("qwerty123")); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
	if n := len(h.compared()); n != 0 {
		t.Errorf("%d comparisons for a request already gone", n)
	}
}

// failingHasher is a Hasher that cannot work.
type failingHasher struct{}

func (failingHasher) Compare(string, []byte) (bool, error) { return false, errors.New("out of memory") }

func TestAuthenticateHasherFailure(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	path := filepath.Join(t.TempDir(), "users.yaml")
	testkit.WriteFile(t, path, twoUsersYAML(t))
	u, err := New(Config{Path: path}, zap.New(core), WithHasher(failingHasher{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Authenticate(t.Context(), "someuser@24i.com", []byte("qwerty123"))
	if err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("err %v; want an internal error, not a verdict on the password", err)
	}
	if logs.FilterLevelExact(zapcore.ErrorLevel).Len() != 1 {
		t.Errorf("the failure was not logged: %v", logs.All())
	}
}

// Returned users are copies: a caller cannot change what others get.
func TestReturnedUsersAreCopies(t *testing.T) {
	u, _ := newUsers(t, twoUsersYAML(t))
	a, err := u.Authenticate(t.Context(), "someuser@24i.com", []byte("qwerty123"))
	if err != nil {
		t.Fatal(err)
	}
	a.Profiles[0], a.Claims["siteId"], a.Role = "hacked", 1, "ADMIN"
	b, err := u.Lookup(t.Context(), "3")
	if err != nil {
		t.Fatal(err)
	}
	b.Claims["tags"].([]any)[0] = "hacked"
	b.Claims["nested"].(map[string]any)["k"] = "hacked"

	a2, _ := u.Lookup(t.Context(), "2")
	if a2.Profiles[0] != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" || a2.Claims["siteId"] != 10115 || a2.Role != "AGENT" {
		t.Errorf("user 2 changed through a copy: %+v", a2)
	}
	b2, _ := u.Authenticate(t.Context(), "client1@company.com", []byte("s3cret"))
	if b2.Claims["tags"].([]any)[0] != "a" || b2.Claims["nested"].(map[string]any)["k"] != "v" {
		t.Errorf("user 3's nested claims changed through a copy: %+v", b2.Claims)
	}
}

func TestLookup(t *testing.T) {
	u, _ := newUsers(t, twoUsersYAML(t))
	got, err := u.Lookup(t.Context(), "2")
	if err != nil || got.Email != "someuser@24i.com" || got.DefaultProfile() != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" {
		t.Errorf("Lookup(2): %+v, %v", got, err)
	}
	for _, id := range []string{"404", "", "someuser@24i.com"} {
		if got, err := u.Lookup(t.Context(), id); !errors.Is(err, ErrUnknownUser) || got != nil {
			t.Errorf("Lookup(%q): %v, %v", id, got, err)
		}
	}
}

// countingHasher counts comparisons and records the hashes compared. It
// compares with inner, or PasswordHasher if inner is nil.
type countingHasher struct {
	inner  Hasher
	mu     sync.Mutex
	hashes []string // guarded by mu
}

func (c *countingHasher) Compare(encodedHash string, password []byte) (bool, error) {
	c.mu.Lock()
	c.hashes = append(c.hashes, encodedHash)
	c.mu.Unlock()
	if c.inner != nil {
		return c.inner.Compare(encodedHash, password)
	}
	return PasswordHasher{}.Compare(encodedHash, password)
}

func (c *countingHasher) compared() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hashes...)
}

// An unknown login and a wrong password take the same path: one
// comparison each, the unknown login against a dummy made like the users'
// hashes.
func TestUnknownUserCostsWhatAWrongPasswordCosts(t *testing.T) {
	for _, alg := range []string{"bcrypt", "argon2id"} {
		t.Run(alg, func(t *testing.T) {
			hash := bcryptHash(t, "pw")
			if alg == "argon2id" {
				hash = argonHash(t, "pw")
			}
			userParams, err := parseHash(hash)
			if err != nil {
				t.Fatal(err)
			}
			h := &countingHasher{}
			u, _ := newUsers(t, "users:\n  - {id: \"1\", username: alice, password_hash: \""+hash+"\"}\n", WithHasher(h))
			tests := []struct {
				name, login, password string
				againstUsersHash      bool
			}{
				{"wrong password", "alice", "guess", true},
				{"unknown user", "mallory", "guess", false},
				{"empty login", "", "guess", false},
				{"empty password", "alice", "", false},
				{"empty both", "", "", false},
			}
			for _, tt := range tests {
				before := len(h.compared())
				if _, err := u.Authenticate(t.Context(), tt.login, []byte(tt.password)); err != ErrInvalidCredentials {
					t.Fatalf("%s: %v", tt.name, err)
				}
				calls := h.compared()[before:]
				if len(calls) != 1 {
					t.Errorf("%s: %d comparisons, want 1", tt.name, len(calls))
					continue
				}
				if tt.againstUsersHash {
					if calls[0] != hash {
						t.Errorf("%s: not compared against the user's hash", tt.name)
					}
					continue
				}
				if calls[0] == hash {
					t.Errorf("%s: compared against the user's hash, want the dummy", tt.name)
				}
				dummy, err := parseHash(calls[0])
				if err != nil || dummy.hashParams != userParams.hashParams {
					t.Errorf("%s: dummy is %v (%v), want one like the user's: %v", tt.name, dummy.hashParams, err, userParams.hashParams)
				}
			}
		})
	}
}

// The dummy is made like the most common kind of hash in the file, and is
// made again only when that kind changes.
func TestDummyHashFollowsMostUsers(t *testing.T) {
	ar, bc := argonHash(t, "a"), bcryptHash(t, "b")
	mixed := func(firstArgon bool, nBcrypt int) string {
		var b strings.Builder
		b.WriteString("users:\n")
		if firstArgon {
			fmt.Fprintf(&b, "  - {id: a, username: a, password_hash: %q}\n", ar)
		}
		for i := range nBcrypt {
			fmt.Fprintf(&b, "  - {id: b%d, username: b%d, password_hash: %q}\n", i, i, bc)
		}
		return b.String()
	}
	u, path := newUsers(t, mixed(true, 2))
	first := u.snap.Load()
	if p, err := parseHash(first.dummy); err != nil || p.alg != algBcrypt || p.cost != bcrypt.MinCost {
		t.Errorf("one argon2id user, two bcrypt ones: dummy %v, %v; want bcrypt cost %d", p.hashParams, err, bcrypt.MinCost)
	}
	testkit.WriteFile(t, path, mixed(false, 3))
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if second := u.snap.Load(); second == first || second.dummy != first.dummy {
		t.Error("same kind of hash, but the dummy was made again (or nothing was reloaded)")
	}
	testkit.WriteFile(t, path, mixed(true, 0))
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if p, err := parseHash(u.snap.Load().dummy); err != nil || p.alg != algArgon2id || p.memory != 64 {
		t.Errorf("argon2id users only: dummy %v, %v", p.hashParams, err)
	}
}

func TestReloadAddsUser(t *testing.T) {
	onReload, reloaded := reloads()
	u, path := newUsers(t, twoUsersYAML(t), onReload)
	if _, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != ErrInvalidCredentials {
		t.Fatalf("before: %v", err)
	}
	testkit.WriteFile(t, path, twoUsersYAML(t)+"  - {id: \"9\", username: newbie, password_hash: \""+argonHash(t, "newpw")+"\"}\n")
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := reloadedNow(t, reloaded); err != nil {
		t.Errorf("OnReload got %v", err)
	}
	if got, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != nil || got.ID != "9" {
		t.Errorf("new user: %v, %v", got, err)
	}
	if u.Len() != 3 {
		t.Errorf("%d users", u.Len())
	}
	// A user removed from the file can no longer log in or refresh.
	testkit.WriteFile(t, path, twoUsersYAML(t))
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != ErrInvalidCredentials {
		t.Errorf("removed user logs in: %v", err)
	}
	if _, err := u.Lookup(t.Context(), "9"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("removed user found: %v", err)
	}
}

func TestReloadKeepsLastGoodVersion(t *testing.T) {
	oldHash, newHash := bcryptHash(t, "qwerty123"), bcryptHash(t, "newpw")
	tests := []struct{ name, file, want string }{
		{"syntax error", "users:\n  - {id: \"9\", username: newbie, password_hash: [oops\n", "yaml:"},
		{"hash under the wrong key", "users:\n  - {id: \"9\", username: newbie, profiles: \"" + newHash + "\"}\n", "password_hash is required"},
		{"one bad user among good ones", someUserYAML(oldHash) + "  - {id: \"9\", username: newbie, password_hash: \"" + newHash[:40] + "\"}\n", "bcrypt: 40 characters"},
		{"empty", "", "the file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			path := filepath.Join(t.TempDir(), "users.yaml")
			testkit.WriteFile(t, path, someUserYAML(oldHash))
			onReload, reloaded := reloads()
			u, err := New(Config{Path: path}, zap.New(core), onReload)
			if err != nil {
				t.Fatal(err)
			}
			testkit.WriteFile(t, path, tt.file)
			err = u.Reload()
			if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reload: %v; want ErrInvalidFile saying %q", err, tt.want)
			}
			if got := reloadedNow(t, reloaded); got != err {
				t.Errorf("OnReload got %v", got)
			}
			if got, err := u.Authenticate(t.Context(), "someuser@24i.com", []byte("qwerty123")); err != nil || got.ID != "2" {
				t.Errorf("the last good version is lost: %v, %v", got, err)
			}
			if _, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != ErrInvalidCredentials {
				t.Errorf("part of the broken file is served: %v", err)
			}
			errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
			if len(errs) != 1 || errs[0].ContextMap()["path"] != path || !strings.Contains(fmt.Sprint(errs[0].ContextMap()["error"]), tt.want) {
				t.Errorf("error log: %+v", errs)
			}
			for _, e := range logs.All() {
				line := fmt.Sprint(e.Message, e.ContextMap())
				for _, secret := range []string{oldHash, newHash, newHash[:40], oldHash[7:], newHash[7:29], "$2a$"} {
					if strings.Contains(line, secret) {
						t.Errorf("a log line holds (part of) a password hash: %s", line)
					}
				}
			}
		})
	}
}

// waitReload returns the next reload outcome. Should none come, it fails
// the test shortly before the test binary's deadline rather than hang.
func waitReload(t *testing.T, reloaded <-chan error) error {
	t.Helper()
	var giveUp <-chan time.Time
	if d, ok := t.Deadline(); ok {
		giveUp = time.After(time.Until(d) * 9 / 10)
	}
	select {
	case err := <-reloaded:
		return err
	case <-giveUp:
		t.Fatal("Run did not reload before the test deadline")
		return nil
	}
}

// onReloadRun starts Run with a tiny interval and returns the channel of
// its reload outcomes; Run stops when the test ends.
func onReloadRun(t *testing.T, path string, opts ...Option) (*Users, chan error) {
	t.Helper()
	onReload, reloaded := reloads()
	u, err := New(Config{Path: path, PollInterval: time.Millisecond}, zap.NewNop(), append(opts, onReload)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return u, reloaded
}

func TestRunPicksUpEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	testkit.WriteFile(t, path, twoUsersYAML(t))
	u, reloaded := onReloadRun(t, path)

	testkit.WriteFile(t, path, twoUsersYAML(t)+"  - {id: \"9\", username: newbie, password_hash: \""+bcryptHash(t, "newpw")+"\"}\n")
	if err := waitReload(t, reloaded); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != nil || got.ID != "9" {
		t.Errorf("new user: %v, %v", got, err)
	}

	testkit.WriteFile(t, path, "users: [oops\n")
	if err := waitReload(t, reloaded); !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("broken edit: %v", err)
	}
	if _, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != nil {
		t.Errorf("the last good version is lost: %v", err)
	}

	testkit.WriteFile(t, path, "users: []\n")
	if err := waitReload(t, reloaded); err != nil || u.Len() != 0 {
		t.Fatalf("fixed edit: %v, %d users", err, u.Len())
	}
}

// Kubernetes mounts a ConfigMap key as path → ..data/users.yaml, with
// ..data → ..<timestamp>, and updates it by swapping the ..data symlink.
func TestRunPicksUpConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "..2026_01_01_00_00_00.1"), filepath.Join(dir, "..2026_01_01_00_05_00.2")
	for _, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Both versions have the same size and modification time: only where
	// the link leads, and the inode, tell them apart.
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for file, content := range map[string]string{
		filepath.Join(v1, "users.yaml"): twoUsersYAML(t),
		filepath.Join(v2, "users.yaml"): strings.ReplaceAll(twoUsersYAML(t), "someuser@24i.com", "otheruse@24i.com"),
	} {
		testkit.WriteFile(t, file, content)
		if err := os.Chtimes(file, t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	mustSymlink(t, filepath.Base(v1), filepath.Join(dir, "..data"))
	path := filepath.Join(dir, "users.yaml")
	mustSymlink(t, filepath.Join("..data", "users.yaml"), path)

	u, reloaded := onReloadRun(t, path, WithClock(func() time.Time { return t0.Add(time.Hour) }))
	if _, err := u.Authenticate(t.Context(), "someuser@24i.com", []byte("qwerty123")); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Base(v2), filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := waitReload(t, reloaded); err != nil {
		t.Fatal(err)
	}
	if got, err := u.Authenticate(t.Context(), "otheruse@24i.com", []byte("qwerty123")); err != nil || got.ID != "2" {
		t.Errorf("the swapped version is not served: %v, %v", got, err)
	}
	if _, err := u.Authenticate(t.Context(), "someuser@24i.com", []byte("qwerty123")); err != ErrInvalidCredentials {
		t.Errorf("the old version is still served: %v", err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// Reloads run while logins go on; -race checks the snapshot swap.
func TestConcurrentAuthenticateAndReload(t *testing.T) {
	u, path := newUsers(t, twoUsersYAML(t))
	content := twoUsersYAML(t)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 20 {
				if _, err := u.Authenticate(t.Context(), "client1@company.com", []byte("s3cret")); err != nil {
					t.Errorf("login during reload: %v", err)
					return
				}
				u.Len()
			}
		})
	}
	for range 5 {
		testkit.WriteFile(t, path, content)
		if err := u.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func BenchmarkAuthenticate(b *testing.B) {
	for _, alg := range []string{"argon2id-default", "bcrypt-10"} {
		var hash string
		if alg == "bcrypt-10" {
			h, err := bcrypt.GenerateFromPassword([]byte("pw"), 10)
			if err != nil {
				b.Fatal(err)
			}
			hash = string(h)
		} else {
			var err error
			if hash, err = (PasswordHasher{}).Hash([]byte("pw")); err != nil {
				b.Fatal(err)
			}
		}
		u, _ := newUsers(b, "users:\n  - {id: \"1\", username: alice, password_hash: \""+hash+"\", claims: {siteId: 10115}}\n")
		for _, tt := range []struct {
			name, login, password string
			wantErr               error
		}{
			{"known", "alice", "pw", nil},
			{"wrong-password", "alice", "px", ErrInvalidCredentials},
			{"unknown-user", "mallory", "pw", ErrInvalidCredentials},
		} {
			b.Run(alg+"/"+tt.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := u.Authenticate(b.Context(), tt.login, []byte(tt.password)); err != tt.wantErr {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// lastCompare logs in and returns the one hash the Hasher was asked to
// compare, with Authenticate's error.
func lastCompare(t *testing.T, u *Users, h *countingHasher, login, password string) (string, error) {
	t.Helper()
	before := len(h.compared())
	_, err := u.Authenticate(t.Context(), login, []byte(password))
	calls := h.compared()[before:]
	if len(calls) != 1 {
		t.Fatalf("%s: %d comparisons, want 1", login, len(calls))
	}
	return calls[0], err
}

// A user whose hash is not made like most users' is rehashed in memory,
// like most, at the first successful login: from then on a wrong password
// for them is compared against a hash with the parameters an unknown login
// is compared against. The rehash lasts until a reload changes the user's
// hash or what most users have.
func TestUncommonHashIsRehashedAtLogin(t *testing.T) {
	tests := []struct {
		name          string
		common, other func(testing.TB, string) string
	}{
		{"bcrypt user among argon2id ones", argonHash, bcryptHash},
		{"argon2id user among bcrypt ones", bcryptHash, argonHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			common := []string{tt.common(t, "a"), tt.common(t, "b")}
			want, err := parseHash(common[0])
			if err != nil {
				t.Fatal(err)
			}
			file := func(oddHash string, moreOdd ...string) string {
				var b strings.Builder
				b.WriteString("users:\n")
				for i, h := range common {
					fmt.Fprintf(&b, "  - {id: c%d, username: c%d, password_hash: %q}\n", i, i, h)
				}
				fmt.Fprintf(&b, "  - {id: odd, username: odd, password_hash: %q}\n", oddHash)
				for i, h := range moreOdd {
					fmt.Fprintf(&b, "  - {id: o%d, username: o%d, password_hash: %q}\n", i, i, h)
				}
				return b.String()
			}
			odd := tt.other(t, "pw")
			h := &countingHasher{}
			u, path := newUsers(t, file(odd), WithHasher(h))
			isCommon := func(step, hash string) {
				t.Helper()
				p, err := parseHash(hash)
				if err != nil || p.hashParams != want.hashParams {
					t.Errorf("%s: compared against a hash with %v (%v), want %v", step, p.hashParams, err, want.hashParams)
				}
			}

			if got, err := lastCompare(t, u, h, "odd", "guess"); got != odd || err != ErrInvalidCredentials {
				t.Errorf("before the first login: err %v, compared against the file's hash: %v", err, got == odd)
			}
			if got, err := lastCompare(t, u, h, "odd", "pw"); got != odd || err != nil {
				t.Fatalf("first login: err %v, compared against the file's hash: %v", err, got == odd)
			}
			got, err := lastCompare(t, u, h, "odd", "guess")
			if err != ErrInvalidCredentials {
				t.Errorf("wrong password after the first login: %v", err)
			}
			isCommon("wrong password after the first login", got)
			got, err = lastCompare(t, u, h, "odd", "pw")
			if err != nil {
				t.Errorf("second login: %v", err)
			}
			isCommon("second login", got)

			// A reload that leaves the user's hash alone keeps the rehash.
			testkit.WriteFile(t, path, file(odd)+"  - {id: new, username: new, password_hash: \""+tt.common(t, "new")+"\"}\n")
			if err := u.Reload(); err != nil {
				t.Fatal(err)
			}
			got, _ = lastCompare(t, u, h, "odd", "guess")
			isCommon("after a reload that kept the user's hash", got)

			// A new hash in the file replaces the rehash of the old one.
			odd2 := tt.other(t, "pw2")
			testkit.WriteFile(t, path, file(odd2))
			if err := u.Reload(); err != nil {
				t.Fatal(err)
			}
			if got, err := lastCompare(t, u, h, "odd", "pw"); got != odd2 || err != ErrInvalidCredentials {
				t.Errorf("old password after the user's hash changed: err %v, compared against the new hash: %v", err, got == odd2)
			}
			if _, err := lastCompare(t, u, h, "odd", "pw2"); err != nil {
				t.Errorf("new password: %v", err)
			}
			got, _ = lastCompare(t, u, h, "odd", "guess")
			isCommon("after a login with the new password", got)

			// When the user's kind of hash becomes the common one, the
			// rehash, made like the former majority, goes.
			testkit.WriteFile(t, path, file(odd2, tt.other(t, "x"), tt.other(t, "y")))
			if err := u.Reload(); err != nil {
				t.Fatal(err)
			}
			if got, _ := lastCompare(t, u, h, "odd", "guess"); got != odd2 {
				t.Error("the user's kind of hash is now the common one, but the rehash is still compared against")
			}
		})
	}
}

// A password bcrypt cannot hold whole is not rehashed into bcrypt; the
// user keeps logging in against the file's hash.
func TestUncommonHashTooLongForBcryptStays(t *testing.T) {
	long := strings.Repeat("x", 100)
	h := &countingHasher{}
	odd := argonHash(t, long)
	u, _ := newUsers(t, fmt.Sprintf("users:\n  - {id: a, username: a, password_hash: %q}\n  - {id: b, username: b, password_hash: %q}\n  - {id: odd, username: odd, password_hash: %q}\n",
		bcryptHash(t, "a"), bcryptHash(t, "b"), odd), WithHasher(h))
	for range 2 {
		if got, err := lastCompare(t, u, h, "odd", long); err != nil || got != odd {
			t.Errorf("login: %v, compared against the file's hash: %v", err, got == odd)
		}
	}
}

func TestHashWarnings(t *testing.T) {
	bc, ar := bcryptHash(t, "b"), argonHash(t, "a")
	ar128, err := PasswordHasher{Memory: 128, Time: 1}.Hash([]byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	users := func(prefix, hash string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "  - {id: %s%d, username: %s%d, password_hash: %q}\n", prefix, i, prefix, i, hash)
		}
		return b.String()
	}
	tests := []struct {
		name, file string
		want       []string // substrings, one line each
	}{
		{"one kind", "users:\n" + users("a", ar, 3), nil},
		{"no users", "users: []\n", nil},
		{"one other user", "users:\n" + users("a", ar, 2) + users("b", bc, 1), []string{
			`user "b0" (1 of 3) has a password hash made with bcrypt cost=4 where most users' are made with argon2id m=64,t=1,p=1 salt=16 key=32`,
		}},
		{"many other users, two kinds", "users:\n" + users("a", ar, 8) + users("b", bc, 7) + users("m", ar128, 1), []string{
			`users "b0", "b1", "b2", "b3", "b4" and 2 more (7 of 16) have password hashes made with bcrypt cost=4 where most users' are made with argon2id m=64,t=1,p=1 salt=16 key=32`,
			`user "m0" (1 of 16) has a password hash made with argon2id m=128,t=1,p=1 salt=16 key=32 where`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			path := filepath.Join(t.TempDir(), "users.yaml")
			testkit.WriteFile(t, path, tt.file)
			u, err := New(Config{Path: path}, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			got := u.HashWarnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d:\n%s\ndoes not say\n%s", i, got[i], w)
				}
			}
			for _, line := range got {
				for _, secret := range []string{bc[7:], ar[len(ar)-20:], ar128[len(ar128)-20:], "$2a$", "$argon2id$"} {
					if strings.Contains(line, secret) {
						t.Errorf("a warning holds (part of) a password hash: %s", line)
					}
				}
			}
			logged := logs.FilterMessageSnippet("not made like most").All()
			switch {
			case len(tt.want) == 0 && len(logged) != 0:
				t.Errorf("a hash warning is logged for a file without one: %v", logged)
			case len(tt.want) > 0 && (len(logged) != 1 || logged[0].Level != zapcore.WarnLevel ||
				fmt.Sprint(logged[0].ContextMap()["hash_warnings"]) != fmt.Sprint(got)):
				t.Errorf("the warnings are not logged once: %v", logged)
			}
			// Callers get a copy.
			if len(got) > 0 {
				got[0] = "changed"
				if u.HashWarnings()[0] == "changed" {
					t.Error("HashWarnings returns the snapshot's slice")
				}
			}
		})
	}
}

// truncatingHasher is a Hasher that, like bcrypt itself, reads only the
// first 72 bytes of a password for a bcrypt hash.
type truncatingHasher struct{}

func (truncatingHasher) Compare(encodedHash string, password []byte) (bool, error) {
	if strings.HasPrefix(encodedHash, "$2") {
		password = password[:min(len(password), 72)]
	}
	return PasswordHasher{}.Compare(encodedHash, password)
}

// bcrypt reads the first 72 bytes of a password: a longer one is refused,
// after one comparison like any refusal, whatever the Hasher says.
func TestAuthenticateRefusesBcryptPasswordsOver72Bytes(t *testing.T) {
	pw72 := strings.Repeat("p", 72)
	longArgon := strings.Repeat("q", 100)
	file := fmt.Sprintf("users:\n  - {id: b, username: b, password_hash: %q}\n  - {id: a, username: a, password_hash: %q}\n",
		bcryptHash(t, pw72), argonHash(t, longArgon))
	tests := []struct {
		name, login, password string
		ok                    bool
	}{
		{"bcrypt, 72 bytes", "b", pw72, true},
		{"bcrypt, 73 bytes, the first 72 right", "b", pw72 + "x", false},
		{"bcrypt, 200 bytes, the first 72 right", "b", pw72 + strings.Repeat("x", 128), false},
		{"argon2id, 100 bytes", "a", longArgon, true},
		{"argon2id, 101 bytes", "a", longArgon + "q", false},
	}
	for _, hasher := range []struct {
		name string
		h    Hasher
	}{{"PasswordHasher", PasswordHasher{}}, {"a Hasher that truncates", truncatingHasher{}}} {
		for _, tt := range tests {
			t.Run(hasher.name+"/"+tt.name, func(t *testing.T) {
				h := &countingHasher{inner: hasher.h}
				u, _ := newUsers(t, file, WithHasher(h))
				got, err := u.Authenticate(t.Context(), tt.login, []byte(tt.password))
				switch {
				case tt.ok && (err != nil || got == nil || got.ID != tt.login):
					t.Errorf("got %v, %v; want user %s", got, err, tt.login)
				case !tt.ok && (err != ErrInvalidCredentials || got != nil):
					t.Errorf("got %v, %v; want ErrInvalidCredentials", got, err)
				}
				// A refusal costs one comparison, like any other.
				if n := len(h.compared()); n != 1 {
					t.Errorf("%d comparisons, want 1", n)
				}
			})
		}
	}
}

// BenchmarkAuthenticateUncommonHash measures what the rehash is for: with
// most users on argon2id (OWASP's parameters), a wrong password for a
// bcrypt-10 user costs bcrypt-10 until that user's first login, and then
// what an unknown login costs.
func BenchmarkAuthenticateUncommonHash(b *testing.B) {
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	var file strings.Builder
	file.WriteString("users:\n")
	for i := range 2 {
		h, err := PasswordHasher{}.Hash([]byte("pw"))
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&file, "  - {id: a%d, username: a%d, password_hash: %q}\n", i, i, h)
	}
	fmt.Fprintf(&file, "  - {id: b, username: bob, password_hash: %q}\n", bc)
	for _, tt := range []struct {
		name, login string
		loginFirst  bool
	}{
		{"unknown-user", "mallory", false},
		{"bcrypt-10-user-before-first-login", "bob", false},
		{"bcrypt-10-user-after-first-login", "bob", true},
	} {
		b.Run(tt.name, func(b *testing.B) {
			u, _ := newUsers(b, file.String())
			if tt.loginFirst {
				if _, err := u.Authenticate(b.Context(), tt.login, []byte("pw")); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := u.Authenticate(b.Context(), tt.login, []byte("guess")); err != ErrInvalidCredentials {
					b.Fatal(err)
				}
			}
		})
	}
}
