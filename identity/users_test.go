package identity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

// cheapArgon is an argon2id hash with tiny parameters, for fast tests.
func cheapArgon(t testing.TB, pw string) string {
	t.Helper()
	h, err := encodeArgon(&argonParams{memory: 64, time: 1, threads: 1, salt: make([]byte, 16), key: make([]byte, 32)}, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func cheapBcrypt(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func usersYAML(t testing.TB) string {
	return `users:
  - id: "2"
    username: someuser@24i.com
    email: someuser@24i.com
    password_hash: "` + cheapBcrypt(t, "qwerty123") + `"
    profiles: ["4f3d8946-4423-11ea-bbb8-b7af30354b4a", "kids"]
    role: AGENT
    partner_id: "10000"
    claims: {agentId: "f9683b7b-e332-4864-b725-ac6cdc207dbd", siteId: 10115}
  - id: "3"
    email: Client1@Company.com
    password_hash: "` + cheapArgon(t, "s3cret") + `"
`
}

func newUsers(t testing.TB, content string, opts ...Option) (*Users, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, path, content)
	u, err := New(Config{Path: path}, zap.NewNop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return u, path
}

func TestAuthenticate(t *testing.T) {
	u, _ := newUsers(t, usersYAML(t))
	tests := []struct {
		login, password string
		wantID          string // "" = ErrInvalidCredentials
	}{
		{"someuser@24i.com", "qwerty123", "2"},
		{"SomeUser@24i.com", "qwerty123", "2"},
		{"client1@company.com", "s3cret", "3"},
		{"CLIENT1@COMPANY.COM", "s3cret", "3"},
		{"someuser@24i.com", "wrong", ""},
		{"client1@company.com", "wrong", ""},
		{"nobody@example.com", "qwerty123", ""},
		{"", "qwerty123", ""},
		{"someuser@24i.com", "", ""},
	}
	for _, tt := range tests {
		got, err := u.Authenticate(t.Context(), tt.login, []byte(tt.password))
		if tt.wantID == "" {
			if !errors.Is(err, ErrInvalidCredentials) || got != nil {
				t.Errorf("%s/%s: %v %v, want invalid credentials", tt.login, tt.password, got, err)
			}
			continue
		}
		if err != nil || got.ID != tt.wantID {
			t.Errorf("%s: %v %v", tt.login, got, err)
		}
	}
	user, _ := u.Authenticate(t.Context(), "someuser@24i.com", []byte("qwerty123"))
	if user.DefaultProfile() != "4f3d8946-4423-11ea-bbb8-b7af30354b4a" || !user.HasProfile("kids") || user.HasProfile("x") ||
		user.Role != "AGENT" || user.PartnerID != "10000" || user.Claims["siteId"] != 10115 || user.Claims["agentId"] != "f9683b7b-e332-4864-b725-ac6cdc207dbd" {
		t.Errorf("user %+v", user)
	}
	// Copies: a caller cannot change the store.
	user.Profiles[0], user.Claims["siteId"] = "hacked", 1
	again, _ := u.Lookup(t.Context(), "2")
	if again.Profiles[0] == "hacked" || again.Claims["siteId"] != 10115 {
		t.Error("a returned user shares memory with the store")
	}
	if _, err := u.Lookup(t.Context(), "404"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Lookup unknown: %v", err)
	}
}

// countingHasher counts comparisons and records the hashes compared.
type countingHasher struct {
	calls  atomic.Int64
	hashes []string
}

func (c *countingHasher) Compare(encoded string, pw []byte) (bool, error) {
	c.calls.Add(1)
	c.hashes = append(c.hashes, encoded)
	return PasswordHasher{}.Compare(encoded, pw)
}

func TestUnknownUserAndWrongPasswordCostTheSame(t *testing.T) {
	for _, alg := range []string{"bcrypt", "argon2id"} {
		t.Run(alg, func(t *testing.T) {
			h := &countingHasher{}
			hash := cheapBcrypt(t, "pw")
			if alg == "argon2id" {
				hash = cheapArgon(t, "pw")
			}
			u, _ := newUsers(t, "users:\n  - {id: \"1\", username: alice, password_hash: \""+hash+"\"}\n", WithHasher(h))
			for _, login := range []string{"alice", "mallory", ""} {
				before := h.calls.Load()
				if _, err := u.Authenticate(t.Context(), login, []byte("guess")); !errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("%q: %v", login, err)
				}
				if got := h.calls.Load() - before; got != 1 {
					t.Errorf("%q: %d comparisons, want 1", login, got)
				}
			}
			// The unknown login was compared against a dummy made like the
			// users' hashes: same algorithm, same cost.
			dummy := h.hashes[1]
			if dummy == hash || dummy[:7] != hash[:7] {
				t.Errorf("dummy %q is not made like %q", dummy[:12], hash[:12])
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	good := cheapBcrypt(t, "x")
	_, err := parse([]byte(`users:
  - {id: "0", username: alice, password_hash: "` + good + `"}
  - {id: "1", password_hash: "` + good + `"}
  - {username: nobody, password_hash: "` + good + `"}
  - {id: "2", username: b, password_hash: "$argon2id$v=19$m=2000000,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"}
  - {id: "3", username: c, password_hash: "` + good + `", profiles: ["p", "p"], claims: {sub: "admin", agentId: x}}
  - {id: "4", username: ALICE, email: alice@x, password_hash: "` + good + `"}
  - {id: "4", username: d}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`user 5 (id "4"): login "alice" is used by another user`, "username or email is required", "out of bounds",
		"id is required", `profile "p" is empty or repeated`, `claim "sub" is reserved`, "id is used twice", "password_hash is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), good) {
		t.Error("the error holds a password hash")
	}
	if _, err := parse([]byte("users:\n  - {id: \"1\", username: a, password: plain}\n")); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("unknown key accepted: %v", err)
	}
	if s, err := parse([]byte("users: []\n")); err != nil || len(s.byID) != 0 {
		t.Errorf("empty list: %v", err)
	}
}

func TestReload(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	reloaded := make(chan error, 10)
	path := filepath.Join(t.TempDir(), "users.yaml")
	first := usersYAML(t)
	writeFile(t, path, first)
	u, err := New(Config{Path: path, PollInterval: time.Millisecond}, zap.New(core), WithOnReload(func(err error) { reloaded <- err }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// A new user appears while serving.
	newHash := cheapBcrypt(t, "newpw")
	writeFile(t, path, first+"  - {id: \"9\", username: newbie, password_hash: \""+newHash+"\"}\n")
	if err := <-reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != nil || got.ID != "9" {
		t.Fatalf("new user: %v %v", got, err)
	}

	// A broken edit: the error is logged, the last good version serves.
	writeFile(t, path, "users:\n  - {id: \"9\", username: newbie, password_hash: [oops\n")
	if err := <-reloaded; !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("broken reload: %v", err)
	}
	if _, err := u.Authenticate(t.Context(), "newbie", []byte("newpw")); err != nil {
		t.Errorf("last good version lost: %v", err)
	}
	if logs.FilterMessage("users file not reloaded; keeping the last good version").Len() == 0 {
		t.Error("the broken file was not logged")
	}
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, newHash) || strings.Contains(f.String, "$2a$") || (f.Interface != nil && strings.Contains(errString(f.Interface), "$2a$")) {
				t.Errorf("a log line holds a hash: %s", e.Message)
			}
		}
	}
}

func errString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return ""
}

// Kubernetes mounts a ConfigMap as path → ..data/users.yaml, and swaps the
// ..data symlink atomically on update.
func TestReloadConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "..v1"), filepath.Join(dir, "..v2")
	os.Mkdir(v1, 0o700)
	os.Mkdir(v2, 0o700)
	writeFile(t, filepath.Join(v1, "users.yaml"), usersYAML(t))
	writeFile(t, filepath.Join(v2, "users.yaml"), "users:\n  - {id: \"7\", username: swapped, password_hash: \""+cheapBcrypt(t, "pw")+"\"}\n")
	os.Symlink("..v1", filepath.Join(dir, "..data"))
	path := filepath.Join(dir, "users.yaml")
	os.Symlink(filepath.Join("..data", "users.yaml"), path)

	reloaded := make(chan error, 10)
	u, err := New(Config{Path: path, PollInterval: time.Millisecond}, zap.NewNop(), WithOnReload(func(err error) { reloaded <- err }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	os.Symlink("..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(t.Context(), "swapped", []byte("pw")); err != nil {
		t.Errorf("swapped file not served: %v", err)
	}
}

func TestPasswordHasher(t *testing.T) {
	h := PasswordHasher{}
	enc, err := h.Hash([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not use the default parameters", enc)
	}
	if ok, err := h.Compare(enc, []byte("correct horse")); !ok || err != nil {
		t.Errorf("round trip: %v %v", ok, err)
	}
	if ok, _ := h.Compare(enc, []byte("wrong horse")); ok {
		t.Error("wrong password matched")
	}
	if other, _ := h.Hash([]byte("correct horse")); other == enc {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{
		"", "plain", "$argon2id$", "$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=1099511627776,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1000,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$!!!$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$short",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$2a$99$invalidbcrypt",
	} {
		if ok, err := h.Compare(bad, []byte("x")); ok || err == nil {
			t.Errorf("%q: ok %v err %v", bad, ok, err)
		}
	}
}

func FuzzParseArgon2id(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")
	f.Add("$argon2id$v=19$m=-1,t=1,p=1$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseArgon2id(s)
		if err != nil {
			return
		}
		if p.memory > maxArgonMemoryKiB || p.time > maxArgonTime || p.threads > maxArgonThreads || len(p.key) > maxArgonKeyLen || len(p.salt) < 8 {
			t.Fatalf("out-of-bounds parameters accepted: %+v", p)
		}
	})
}

func BenchmarkAuthenticate(b *testing.B) {
	for _, alg := range []string{"argon2id-default", "bcrypt-10"} {
		b.Run(alg, func(b *testing.B) {
			var hash string
			if alg == "bcrypt-10" {
				h, _ := bcrypt.GenerateFromPassword([]byte("pw"), 10)
				hash = string(h)
			} else {
				hash, _ = PasswordHasher{}.Hash([]byte("pw"))
			}
			u, _ := newUsers(b, "users:\n  - {id: \"1\", username: alice, password_hash: \""+hash+"\"}\n")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := u.Authenticate(b.Context(), "alice", []byte("pw")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
