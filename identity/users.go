package identity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

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

// racyWindow is how long after a file's modification time a stat of it
// proves nothing: a second write within the file system's timestamp
// granularity (up to 2 s on some) can leave size and time unchanged.
const racyWindow = 2 * time.Second

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
	interval time.Duration
	logger   *zap.Logger
	hasher   Hasher
	now      func() time.Time
	onReload func(error)

	// snap is the last good version of the file; it is replaced whole and
	// never modified, so readers need no lock.
	snap atomic.Pointer[snapshot]

	// mu serialises reloads (Run, Reload) and guards seen and seenDigest.
	mu sync.Mutex
	// seen is the file as last examined, good or not, so that a broken
	// version is reported once and not again on every poll.
	seen fileStamp
	// seenDigest is the SHA-256 of the content last read (zero when the
	// last attempt could not read it), so that a touch or a re-sync of the
	// same content causes no reload.
	seenDigest [sha256.Size]byte
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
		interval: cfg.PollInterval,
		logger:   logger.Named("identity"),
		hasher:   o.hasher,
		now:      o.now,
		onReload: o.onReload,
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	st, data, err := u.read()
	if err != nil {
		return nil, err
	}
	if err := u.apply(st, data); err != nil {
		return nil, err
	}
	return u, nil
}

// Run checks the file every PollInterval and reloads it when it changed:
// another modification time, size, file (inode) or symlink target, as when
// Kubernetes swaps a ConfigMap's ..data link. Content identical to the last
// read causes no reload. Run returns nil when ctx is done.
func (u *Users) Run(ctx context.Context) error {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			u.poll()
		}
	}
}

// Reload reads the file now and, if it is valid, serves it. On error the
// last good version keeps serving and the error, which lists every problem
// and never a password hash, is logged and returned.
func (u *Users) Reload() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, data, err := u.read()
	if err == nil {
		err = u.apply(st, data)
	}
	u.reloaded(err)
	return err
}

// poll is one check of Run.
func (u *Users) poll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := u.stat()
	switch {
	case err != nil && u.seen.info == nil:
		return // still missing: reported when it went
	case err == nil && st.same(u.seen) && !u.seen.racy():
		return
	}
	st, data, err := u.read()
	if err != nil {
		u.reloaded(err)
		return
	}
	if sha256.Sum256(data) == u.seenDigest {
		u.seen = st // touched, or re-synced with the same content
		return
	}
	u.reloaded(u.apply(st, data))
}

// read stats and reads the file. The stat comes first: if the file changes
// in between, the next poll sees a new stamp and reads it again. On error
// seen records the failure, so that Run reports it once. u.mu must be held.
func (u *Users) read() (fileStamp, []byte, error) {
	st, err := u.stat()
	if err != nil {
		u.seen, u.seenDigest = fileStamp{}, [sha256.Size]byte{}
		return fileStamp{}, nil, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	data, err := readLimited(u.path)
	if err != nil {
		u.seen, u.seenDigest = st, [sha256.Size]byte{}
		return fileStamp{}, nil, err
	}
	return st, data, nil
}

// apply parses data, read from the file when it looked like st, and serves
// it if it is valid. u.mu must be held.
func (u *Users) apply(st fileStamp, data []byte) error {
	u.seen, u.seenDigest = st, sha256.Sum256(data)
	s, err := parseFile(data)
	if err != nil {
		return fmt.Errorf("%w: %s:\n%w", ErrInvalidFile, u.path, err)
	}
	// Making a dummy costs as much as a login; keep the old one when the
	// parameters have not changed.
	if old := u.snap.Load(); old != nil && old.params == s.params {
		s.dummy = old.dummy
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
	return nil
}

// reloaded logs the outcome of a reload attempt and reports it to the
// WithOnReload function. u.mu must be held.
func (u *Users) reloaded(err error) {
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
// exactly ErrInvalidCredentials. Other errors mean the check could not be
// made (ctx done, or the Hasher failed) and say nothing about the login.
func (u *Users) Authenticate(ctx context.Context, login string, password []byte) (*User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := u.snap.Load()
	var e *entry
	if login != "" && len(password) > 0 {
		e = s.byLogin[loginKey(login)]
	}
	hash := s.dummy
	if e != nil {
		hash = e.hash
	}
	ok, err := u.hasher.Compare(hash, password)
	if err != nil {
		// Every hash here was parsed at load time: this is a fault of the
		// Hasher, not of the login, so it is logged without the login.
		u.logger.Error("password comparison failed", zap.Error(err))
		return nil, fmt.Errorf("identity: compare password: %w", err)
	}
	if !ok || e == nil {
		return nil, ErrInvalidCredentials
	}
	return e.user.clone(), nil
}

// Lookup returns the user with id, or ErrUnknownUser.
func (u *Users) Lookup(ctx context.Context, id string) (*User, error) {
	if e, ok := u.snap.Load().byID[id]; ok {
		return e.user.clone(), nil
	}
	return nil, fmt.Errorf("%w: id %q", ErrUnknownUser, id)
}

// fileStamp is what a stat tells of a version of the file.
type fileStamp struct {
	resolved string      // Path with every symlink followed
	info     os.FileInfo // nil: not examined, or could not be
	seenAt   time.Time   // by the injected clock
}

// stat examines the file. u.mu must be held.
func (u *Users) stat() (fileStamp, error) {
	resolved, err := filepath.EvalSymlinks(u.path)
	if err != nil {
		return fileStamp{}, err
	}
	info, err := os.Stat(resolved)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{resolved: resolved, info: info, seenAt: u.now()}, nil
}

// same reports whether a and b look like the same version of the file.
func (a fileStamp) same(b fileStamp) bool {
	return a.info != nil && b.info != nil && a.resolved == b.resolved && os.SameFile(a.info, b.info) &&
		a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}

// racy reports whether the file was modified so shortly before it was
// examined that a later write may have left its stamp unchanged.
func (a fileStamp) racy() bool {
	return a.info != nil && a.info.ModTime().After(a.seenAt.Add(-racyWindow))
}

// readLimited reads at most maxFileBytes of path.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidFile, path, maxFileBytes)
	}
	return data, nil
}
