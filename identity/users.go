package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/watch"
	"go.uber.org/zap"
)

// Config configures Users.
type Config struct {
	// Path is the users file. Required. It may be a symlink, as in a
	// Kubernetes ConfigMap volume; changes to where it leads are noticed.
	Path string
	// PollInterval is how often Run checks the file for changes. Zero
	// means 5 seconds; negative is an error.
	PollInterval time.Duration
}

const defaultPollInterval = 5 * time.Second

// Option sets an optional behaviour of Users.
type Option func(*options)

type options struct {
	hasher   Hasher
	now      func() time.Time
	onReload func(error)
}

// WithHasher replaces PasswordHasher for comparisons (tests count calls
// through it). Dummy hashes are still made by this package.
func WithHasher(h Hasher) Option { return func(o *options) { o.hasher = h } }

// WithClock sets the clock Run uses to judge whether a modification time
// is too recent to trust. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithOnReload sets a function called after every reload attempt with its
// error, nil on success: every Reload call and every change Run notices,
// including the file going missing, but not the first load in New. It is
// called synchronously, one call at a time, and must not call Reload.
func WithOnReload(fn func(err error)) Option { return func(o *options) { o.onReload = fn } }

// Users is the users file, kept current. It is safe for concurrent use.
type Users struct {
	path     string
	logger   *zap.Logger
	hasher   Hasher
	onReload func(error)
	watch    *watch.Watcher

	// snap is the last good version of the file; it is replaced whole and
	// never modified, so readers need no lock.
	snap atomic.Pointer[snapshot]
}

// New reads and validates the users file at cfg.Path. A file that cannot
// be read or has any problem is an error wrapping ErrInvalidFile that lists
// every problem: tollgate must not start with half its users.
func New(cfg Config, logger *zap.Logger, opts ...Option) (*Users, error) {
	switch {
	case cfg.Path == "":
		return nil, fmt.Errorf("%w: Path is required", ErrInvalidConfig)
	case cfg.PollInterval < 0:
		return nil, fmt.Errorf("%w: PollInterval %v is negative", ErrInvalidConfig, cfg.PollInterval)
	case cfg.PollInterval == 0:
		cfg.PollInterval = defaultPollInterval
	}
	o := options{hasher: PasswordHasher{}, now: time.Now, onReload: func(error) {}}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	u := &Users{
		path:     cfg.Path,
		logger:   logger.Named("identity"),
		hasher:   o.hasher,
		onReload: o.onReload,
	}
	w, err := watch.New(watch.Config{Path: cfg.Path, Interval: cfg.PollInterval, MaxBytes: maxFileBytes},
		func(files []watch.File) error {
			if len(files) != 1 {
				return fmt.Errorf("%s is a directory", cfg.Path)
			}
			return u.apply(files[0].Data)
		},
		watch.WithClock(o.now), watch.WithReport(u.reloaded))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	u.watch = w
	if err := w.Load(); err != nil {
		return nil, invalidFile(err)
	}
	return u, nil
}

// Run checks the file every PollInterval and reloads it when it changed:
// another modification time, size, file (inode) or symlink target, as when
// Kubernetes swaps a ConfigMap's ..data link. Content identical to the last
// read causes no reload. Run returns nil when ctx is done.
func (u *Users) Run(ctx context.Context) error { return u.watch.Run(ctx) }

// Reload reads the file now and, if it is valid, serves it. On error the
// last good version keeps serving and the error, which lists every problem
// and never a password hash, is logged and returned.
func (u *Users) Reload() error { return invalidFile(u.watch.Reload()) }

// invalidFile makes a read error an ErrInvalidFile.
func invalidFile(err error) error {
	if err == nil || errors.Is(err, ErrInvalidFile) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrInvalidFile, err)
}

// apply parses the file's content and serves it if it is valid.
func (u *Users) apply(data []byte) error {
	s, err := parseFile(data)
	if err != nil {
		return fmt.Errorf("%w: %s:\n%w", ErrInvalidFile, u.path, err)
	}
	// Making a dummy costs as much as a login; keep the old one when the
	// parameters have not changed.
	old := u.snap.Load()
	if old != nil && old.params == s.params {
		s.dummy = old.dummy
		keepRehashes(old, s)
	} else if s.dummy, err = newDummyHash(s.params); err != nil {
		return err
	}
	u.snap.Store(s)
	if len(s.byID) == 0 {
		u.logger.Warn("users file has no users: every login will fail", zap.String("path", u.path))
	} else {
		u.logger.Info("users file loaded", zap.String("path", u.path), zap.Int("users", len(s.byID)),
			zap.Stringer("dummy_hash_params", s.params))
	}
	if len(s.warnings) > 0 {
		u.logger.Warn("some password hashes are not made like most: their users' logins can be told apart by timing",
			zap.String("path", u.path), zap.Strings("hash_warnings", s.warnings))
	}
	return nil
}

// keepRehashes carries the in-memory rehashes of old over to s, which has
// the same params: a user whose hash in the file is unchanged need not log
// in again to cost what everyone costs. A user whose hash changed starts
// again from the new one.
func keepRehashes(old, s *snapshot) {
	for id, e := range s.byID {
		if o := old.byID[id]; o != nil && o.hash == e.hash {
			if r := o.rehash.Load(); r != nil {
				e.rehash.Store(r)
			}
		}
	}
}

// reloaded logs the outcome of a reload attempt and reports it to the
// WithOnReload function.
func (u *Users) reloaded(err error) {
	err = invalidFile(err)
	if err != nil {
		u.logger.Error("users file not reloaded; the last good version keeps serving",
			zap.String("path", u.path), zap.Error(err))
	}
	u.onReload(err)
}

// Len returns the number of users being served.
func (u *Users) Len() int { return len(u.snap.Load().byID) }

// Authenticate returns the user whose username or email (in any case) is
// login, if password is theirs. An unknown login, a wrong password and an
// empty login or password all cost one Hasher.Compare call and all return
// exactly ErrInvalidCredentials; so does a password over 72 bytes for a
// bcrypt hash, which bcrypt could check only in part. Other errors mean
// the check could not be made (ctx done, or the Hasher failed) and say
// nothing about the login.
//
// The first successful login of a user whose hash is not made like most
// users' hashes rehashes the password in memory, like most (the file is
// not written), so that from then on a wrong password for that user costs
// what it costs for anyone.
func (u *Users) Authenticate(ctx context.Context, login string, password []byte) (*User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := u.snap.Load()
	var e *entry
	if login != "" && len(password) > 0 {
		e = s.byLogin[loginKey(login)]
	}
	hash, params := s.dummy, s.params
	if e != nil {
		hash, params = e.hash, e.params
		if r := e.rehash.Load(); r != nil {
			hash, params = *r, s.params
		}
	}
	ok, err := u.hasher.Compare(hash, password)
	if err != nil {
		// Every hash here was parsed at load time: this is a fault of the
		// Hasher, not of the login, so it is logged without the login.
		u.logger.Error("password comparison failed", zap.Error(err))
		return nil, fmt.Errorf("identity: compare password: %w", err)
	}
	if params.alg == algBcrypt && len(password) > maxBcryptPassword {
		ok = false // whatever the Hasher says: it may have read 72 bytes only
	}
	if !ok || e == nil {
		return nil, ErrInvalidCredentials
	}
	if params != s.params {
		u.rehash(s, e, password)
	}
	return e.user.clone(), nil
}

// rehash makes e's rehash, a hash of password made with s.params.
func (u *Users) rehash(s *snapshot, e *entry, password []byte) {
	h, err := hashWith(s.params, password)
	if err != nil {
		// Only a password too long for a bcrypt s.params gets here: the
		// user keeps the hash of the file.
		u.logger.Warn("password not rehashed like most users'; this user's logins stay distinguishable by timing",
			zap.String("id", e.user.ID), zap.Stringer("params", s.params), zap.Error(err))
		return
	}
	e.rehash.Store(&h)
	u.logger.Debug("password rehashed in memory like most users'", zap.String("id", e.user.ID), zap.Stringer("params", s.params))
}

// HashWarnings describes the users of the file being served whose
// password hashes are not made with the parameters most users' hashes
// have: one line per kind of hash, with how many users have it and the
// first few of their ids, and never a hash. Until such a user logs in once
// after tollgate starts, a wrong password for them takes another time than
// for an unknown login, which tells that the login exists. Nil means every
// hash is made alike. New and every reload also log these lines.
func (u *Users) HashWarnings() []string { return slices.Clone(u.snap.Load().warnings) }

// Lookup returns the user with id, or ErrUnknownUser.
func (u *Users) Lookup(ctx context.Context, id string) (*User, error) {
	if e, ok := u.snap.Load().byID[id]; ok {
		return e.user.clone(), nil
	}
	return nil, fmt.Errorf("%w: id %q", ErrUnknownUser, id)
}
