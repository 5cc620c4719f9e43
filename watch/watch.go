package watch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// racyWindow is how long after a file's modification time a stat of it
// proves nothing: a second write within the file system's timestamp
// granularity (up to 2 s on some) can leave size and time unchanged.
const racyWindow = 2 * time.Second

// File is one file of a version read by a Watcher.
type File struct {
	// Name is the file's name in the watched directory, or the base name
	// of the watched file.
	Name string
	Data []byte
}

// Config configures a Watcher.
type Config struct {
	// Path is a file, or a directory whose regular files not starting with
	// "." are read, in name order. Symlinks are followed. Required.
	Path string
	// Interval is how often Run polls. Zero means 5s; negative is an error.
	Interval time.Duration
	// MaxBytes bounds each file. Zero means 16 MiB.
	MaxBytes int64
}

// Option sets an optional behaviour of a Watcher.
type Option func(*Watcher)

// WithClock sets the clock used to judge whether a modification time is
// too recent to trust. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(w *Watcher) { w.now = now } }

// WithReport sets a function called after every reload attempt with its
// error, nil on success: every Reload call and every change Run notices,
// including the path going missing, but not Load. It is called one call at
// a time and must not call Reload.
func WithReport(fn func(err error)) Option { return func(w *Watcher) { w.report = fn } }

// Watcher reads a path and hands each new version to a load function.
type Watcher struct {
	cfg    Config
	load   func([]File) error
	now    func() time.Time
	report func(error)

	// mu serialises reads and guards seen and seenDigest.
	mu sync.Mutex
	// seen is the path as last examined, good or not, so that a broken
	// version is reported once and not on every poll.
	seen stamp
	// seenDigest is the SHA-256 of the content last read (zero when the
	// last attempt could not read it), so that a touch or a re-sync of the
	// same content causes no load.
	seenDigest [sha256.Size]byte
}

// New returns a Watcher of cfg.Path that calls load with every new
// version. It reads nothing: call Load.
func New(cfg Config, load func([]File) error, opts ...Option) (*Watcher, error) {
	switch {
	case cfg.Path == "":
		return nil, errors.New("watch: Path is required")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("watch: Interval %v is negative", cfg.Interval)
	case cfg.Interval == 0:
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 16 << 20
	}
	w := &Watcher{cfg: cfg, load: load, now: time.Now, report: func(error) {}}
	for _, o := range opts {
		o(w)
	}
	return w, nil
}

// Load reads the path and loads it, reporting nothing: the first load,
// whose error the owner returns from its constructor.
func (w *Watcher) Load() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, files, err := w.read()
	if err != nil {
		return err
	}
	return w.apply(st, files)
}

// Reload reads the path now and loads it, whatever its stamp says, and
// reports the outcome.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, files, err := w.read()
	if err == nil {
		err = w.apply(st, files)
	}
	w.report(err)
	return err
}

// Run polls every Interval until ctx is done, loading what changed. It
// returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.poll()
		}
	}
}

// poll is one check of Run.
func (w *Watcher) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, err := w.stat()
	switch {
	case err != nil && w.seen.entries == nil:
		return // still missing: reported when it went
	case err == nil && st.same(w.seen) && !w.seen.racy():
		return
	}
	st, files, err := w.read()
	if err != nil {
		w.report(err)
		return
	}
	if digest(files) == w.seenDigest {
		w.seen = st // touched, or re-synced with the same content
		return
	}
	w.report(w.apply(st, files))
}

// read stats and reads the path. The stat comes first: if a file changes
// in between, the next poll sees a new stamp and reads it again. On error
// seen records the failure, so that Run reports it once. w.mu must be held.
func (w *Watcher) read() (stamp, []File, error) {
	st, err := w.stat()
	if err != nil {
		w.seen, w.seenDigest = stamp{}, [sha256.Size]byte{}
		return stamp{}, nil, err
	}
	files := make([]File, 0, len(st.entries))
	for _, e := range st.entries {
		data, err := readLimited(e.resolved, w.cfg.MaxBytes)
		if err != nil {
			w.seen, w.seenDigest = st, [sha256.Size]byte{}
			return stamp{}, nil, err
		}
		files = append(files, File{Name: e.name, Data: data})
	}
	return st, files, nil
}

// apply hands a version to load. w.mu must be held.
func (w *Watcher) apply(st stamp, files []File) error {
	w.seen, w.seenDigest = st, digest(files)
	return w.load(files)
}

// digest identifies a version's content: names and bytes.
func digest(files []File) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s:%d:", len(f.Name), f.Name, len(f.Data))
		h.Write(f.Data)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// stamp is what a stat tells of a version of the path.
type stamp struct {
	entries []entry   // nil: not examined, or could not be
	seenAt  time.Time // by the injected clock
}

// entry is one file of a stamp.
type entry struct {
	name     string
	resolved string // the path with every symlink followed
	info     os.FileInfo
}

// stat examines the path. w.mu must be held.
func (w *Watcher) stat() (stamp, error) {
	st := stamp{seenAt: w.now(), entries: []entry{}}
	info, err := os.Stat(w.cfg.Path)
	if err != nil {
		return stamp{}, err
	}
	if !info.IsDir() {
		e, err := examine(w.cfg.Path, filepath.Base(w.cfg.Path))
		if err != nil {
			return stamp{}, err
		}
		st.entries = append(st.entries, e)
		return st, nil
	}
	dir, err := os.ReadDir(w.cfg.Path)
	if err != nil {
		return stamp{}, err
	}
	for _, d := range dir { // in name order
		if strings.HasPrefix(d.Name(), ".") { // hidden, and Kubernetes' ..data
			continue
		}
		e, err := examine(filepath.Join(w.cfg.Path, d.Name()), d.Name())
		if err != nil {
			return stamp{}, err
		}
		if e.info.Mode().IsRegular() {
			st.entries = append(st.entries, e)
		}
	}
	return st, nil
}

func examine(path, name string) (entry, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return entry{}, err
	}
	info, err := os.Stat(resolved)
	if err != nil {
		return entry{}, err
	}
	return entry{name: name, resolved: resolved, info: info}, nil
}

// same reports whether a and b look like the same version.
func (a stamp) same(b stamp) bool {
	if a.entries == nil || b.entries == nil || len(a.entries) != len(b.entries) {
		return false
	}
	for i, x := range a.entries {
		y := b.entries[i]
		if x.name != y.name || x.resolved != y.resolved || !os.SameFile(x.info, y.info) ||
			x.info.Size() != y.info.Size() || !x.info.ModTime().Equal(y.info.ModTime()) {
			return false
		}
	}
	return true
}

// racy reports whether a file was modified so shortly before it was
// examined that a later write may have left its stamp unchanged.
func (a stamp) racy() bool {
	for _, e := range a.entries {
		if e.info.ModTime().After(a.seenAt.Add(-racyWindow)) {
			return true
		}
	}
	return false
}

// readLimited reads at most max bytes of path.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return data, nil
}
