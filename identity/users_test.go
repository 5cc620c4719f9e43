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

// countingHasher counts comparisons and records the hashes compared.
type countingHasher struct {
	mu     sync.Mutex
	hashes []string // guarded by mu
}

func (c *countingHasher) Compare(encodedHash string, password []byte) (bool, error) {
	c.mu.Lock()
	c.hashes = append(c.hashes, encodedHash)
	c.mu.Unlock()
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
