package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
)

// Sentinel errors.
var (
	// ErrInvalidCredentials: unknown login or wrong password — always the
	// same error for both.
	ErrInvalidCredentials = errors.New("identity: invalid credentials")
	// ErrUnknownUser: Lookup found no user with that id.
	ErrUnknownUser = errors.New("identity: unknown user")
	// ErrInvalidFile: the users file cannot be used.
	ErrInvalidFile = errors.New("identity: invalid users file")
)

// reservedClaims cannot be set through a user's extra claims: the issuer
// owns them.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "typ", "type", "scope",
	"client_id", "sid", "profile", "azp", "auth_time", "nonce"}

// User is one user. Values handed out are copies: changing one changes
// nothing in the store.
type User struct {
	ID        string
	Username  string
	Email     string
	Profiles  []string // the first is the default
	Role      string
	PartnerID string
	Claims    map[string]any // extra claims for tokens and userinfo
}

// DefaultProfile returns the user's first profile, or "".
func (u *User) DefaultProfile() string {
	if len(u.Profiles) == 0 {
		return ""
	}
	return u.Profiles[0]
}

// HasProfile reports whether id is one of the user's profiles.
func (u *User) HasProfile(id string) bool { return slices.Contains(u.Profiles, id) }

func (u *User) clone() *User {
	c := *u
	c.Profiles = slices.Clone(u.Profiles)
	c.Claims = maps.Clone(u.Claims)
	return &c
}

// fileUser is one entry of the users file.
type fileUser struct {
	ID           string         `yaml:"id"`
	Username     string         `yaml:"username"`
	Email        string         `yaml:"email"`
	PasswordHash string         `yaml:"password_hash"`
	Profiles     []string       `yaml:"profiles"`
	Role         string         `yaml:"role"`
	PartnerID    string         `yaml:"partner_id"`
	Claims       map[string]any `yaml:"claims"`
}

// entry is a user with its hash, inside a snapshot.
type entry struct {
	user *User
	hash string
}

// snapshot is one immutable, validated version of the users file.
type snapshot struct {
	byID    map[string]*entry
	byLogin map[string]*entry // lowercased username and email
	dummy   string            // hash for unknown logins, like the users' hashes
	stamp   fileStamp
}

// Config configures Users.
type Config struct {
	// Path is the users file. Required.
	Path string
	// PollInterval is how often Run checks the file for changes. Zero
	// means 5 seconds.
	PollInterval time.Duration
}

// Option configures optional behaviour.
type Option func(*Users)

// WithHasher replaces the password hasher.
func WithHasher(h Hasher) Option { return func(u *Users) { u.hasher = h } }

// WithOnReload is called after every reload attempt with its error (nil on
// success); for metrics and tests.
func WithOnReload(fn func(error)) Option { return func(u *Users) { u.onReload = fn } }

// Users is the users file, kept current. It is safe for concurrent use.
type Users struct {
	cfg      Config
	logger   *zap.Logger
	hasher   Hasher
	onReload func(error)
	snap     atomic.Pointer[snapshot]
}

// New reads the users file; a bad file is an error (fail fast at start).
func New(cfg Config, logger *zap.Logger, opts ...Option) (*Users, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: no path", ErrInvalidFile)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	u := &Users{cfg: cfg, logger: logger.Named("identity"), hasher: PasswordHasher{}, onReload: func(error) {}}
	for _, o := range opts {
		o(u)
	}
	s, err := load(cfg.Path)
	if err != nil {
		return nil, err
	}
	u.snap.Store(s)
	if len(s.byID) == 0 {
		u.logger.Warn("users file has no users", zap.String("path", cfg.Path))
	}
	return u, nil
}

// Reload re-reads the file. On error the last good version keeps serving.
func (u *Users) Reload() error {
	s, err := load(u.cfg.Path)
	if err != nil {
		u.logger.Error("users file not reloaded; keeping the last good version", zap.String("path", u.cfg.Path), zap.Error(err))
	} else {
		u.snap.Store(s)
		u.logger.Info("users file reloaded", zap.String("path", u.cfg.Path), zap.Int("users", len(s.byID)))
	}
	u.onReload(err)
	return err
}

// Run reloads the file whenever it changes (modification time, size, or
// the file a symlink resolves to, as when Kubernetes swaps a ConfigMap),
// until ctx is done.
func (u *Users) Run(ctx context.Context) error {
	t := time.NewTicker(u.cfg.PollInterval)
	defer t.Stop()
	last := u.snap.Load().stamp
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st, err := stampOf(u.cfg.Path)
		if err != nil || st == last {
			continue
		}
		last = st
		u.Reload()
	}
}

// Len returns the number of users.
func (u *Users) Len() int { return len(u.snap.Load().byID) }

// Authenticate checks login (username or email, any case) and password.
// Unknown logins and wrong passwords both cost one hash comparison and
// both return ErrInvalidCredentials.
func (u *Users) Authenticate(_ context.Context, login string, password []byte) (*User, error) {
	s := u.snap.Load()
	e, found := s.byLogin[strings.ToLower(strings.TrimSpace(login))]
	hash := s.dummy
	if found {
		hash = e.hash
	}
	ok, err := u.hasher.Compare(hash, password)
	if err != nil || !ok || !found || login == "" || len(password) == 0 {
		return nil, ErrInvalidCredentials
	}
	return e.user.clone(), nil
}

// Lookup returns the user with id.
func (u *Users) Lookup(_ context.Context, id string) (*User, error) {
	if e, ok := u.snap.Load().byID[id]; ok {
		return e.user.clone(), nil
	}
	return nil, ErrUnknownUser
}

// fileStamp identifies a version of the file on disk.
type fileStamp struct {
	resolved string
	size     int64
	mtime    time.Time
}

func stampOf(path string) (fileStamp, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileStamp{}, err
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{resolved: resolved, size: st.Size(), mtime: st.ModTime()}, nil
}

// load reads, parses and validates the file, reporting every problem.
func load(path string) (*snapshot, error) {
	stamp, err := stampOf(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	s, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidFile, path, err)
	}
	s.stamp = stamp
	return s, nil
}

// parse validates a users file. Errors name users by index and id, never
// by hash.
func parse(data []byte) (*snapshot, error) {
	var f struct {
		Users []fileUser `yaml:"users"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("yaml: %v", err)
	}
	s := &snapshot{byID: map[string]*entry{}, byLogin: map[string]*entry{}}
	var errs []error
	// Every id and login claimed so far, valid user or not, so that each
	// clash is reported.
	ids, claimed := map[string]bool{}, map[string]bool{}
	for i, fu := range f.Users {
		where := fmt.Sprintf("user %d (id %q)", i, fu.ID)
		var problems []string
		if fu.ID == "" {
			problems = append(problems, "id is required")
		} else if ids[fu.ID] {
			problems = append(problems, "id is used twice")
		}
		ids[fu.ID] = true
		if fu.Username == "" && fu.Email == "" {
			problems = append(problems, "username or email is required")
		}
		logins := loginsOf(fu)
		for _, login := range logins {
			if claimed[login] {
				problems = append(problems, fmt.Sprintf("login %q is used by another user", login))
			}
			claimed[login] = true
		}
		if fu.PasswordHash == "" {
			problems = append(problems, "password_hash is required")
		} else if err := checkHash(fu.PasswordHash); err != nil {
			problems = append(problems, "password_hash: "+err.Error())
		}
		seen := map[string]bool{}
		for _, p := range fu.Profiles {
			if p == "" || seen[p] {
				problems = append(problems, fmt.Sprintf("profile %q is empty or repeated", p))
			}
			seen[p] = true
		}
		for _, c := range reservedClaims {
			if _, ok := fu.Claims[c]; ok {
				problems = append(problems, fmt.Sprintf("claim %q is reserved", c))
			}
		}
		if len(problems) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s", where, strings.Join(problems, "; ")))
			continue
		}
		e := &entry{hash: fu.PasswordHash, user: &User{
			ID: fu.ID, Username: fu.Username, Email: fu.Email, Profiles: fu.Profiles,
			Role: fu.Role, PartnerID: fu.PartnerID, Claims: fu.Claims,
		}}
		s.byID[fu.ID] = e
		for _, login := range logins {
			s.byLogin[login] = e
		}
		if s.dummy == "" {
			s.dummy = dummyHash(fu.PasswordHash)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if s.dummy == "" {
		s.dummy = dummyHash("")
	}
	return s, nil
}

// loginsOf returns the distinct lowercased logins of a user.
func loginsOf(fu fileUser) []string {
	var out []string
	for _, l := range []string{fu.Username, fu.Email} {
		if l = strings.ToLower(strings.TrimSpace(l)); l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}
