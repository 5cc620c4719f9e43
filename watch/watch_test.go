package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testkit"
)

// loads records what a Watcher loaded and reported.
type loads struct {
	loaded   []string   // content of each version loaded, files joined by "|"
	reported chan error // every report
	refuse   func([]File) error
}

func (l *loads) load(files []File) error {
	if l.refuse != nil {
		if err := l.refuse(files); err != nil {
			return err
		}
	}
	var parts []string
	for _, f := range files {
		parts = append(parts, f.Name+"="+string(f.Data))
	}
	l.loaded = append(l.loaded, strings.Join(parts, "|"))
	return nil
}

func newWatcher(t *testing.T, path string, clock time.Time) (*Watcher, *loads) {
	t.Helper()
	l := &loads{reported: make(chan error, 10)}
	w, err := New(Config{Path: path}, l.load, WithClock(func() time.Time { return clock }), WithReport(func(err error) { l.reported <- err }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(); err != nil {
		t.Fatal(err)
	}
	return w, l
}

func reportedNow(t *testing.T, l *loads) error {
	t.Helper()
	select {
	case err := <-l.reported:
		return err
	default:
		t.Fatal("no reload was reported")
		return nil
	}
}

func noReport(t *testing.T, l *loads) {
	t.Helper()
	select {
	case err := <-l.reported:
		t.Errorf("reloaded (%v); want no reload", err)
	default:
	}
}

func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	testkit.WriteFile(t, path, content)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// The checks of one poll, driven directly: no goroutine, no timing.
func TestPollFile(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	setup := func(t *testing.T, clock time.Time) (*Watcher, string, *loads) {
		path := filepath.Join(t.TempDir(), "users.yaml")
		write(t, path, "version 1", t0)
		w, l := newWatcher(t, path, clock)
		return w, path, l
	}
	// sameSizeEdit rewrites the file in place (same inode, same size) and
	// puts its modification time back.
	sameSizeEdit := func(t *testing.T, path string) {
		if err := os.WriteFile(path, []byte("version 2"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("unchanged", func(t *testing.T) {
		w, _, l := setup(t, t0.Add(time.Hour))
		w.poll()
		noReport(t, l)
		if len(l.loaded) != 1 {
			t.Errorf("loaded %v", l.loaded)
		}
	})
	t.Run("touched, same content", func(t *testing.T) {
		w, path, l := setup(t, t0.Add(time.Hour))
		if err := os.Chtimes(path, t0.Add(time.Minute), t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		w.poll()
		noReport(t, l)
		if len(l.loaded) != 1 {
			t.Errorf("loaded %v", l.loaded)
		}
	})
	t.Run("edited, new modification time", func(t *testing.T) {
		w, path, l := setup(t, t0.Add(time.Hour))
		sameSizeEdit(t, path)
		if err := os.Chtimes(path, t0.Add(time.Second), t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		w.poll()
		if err := reportedNow(t, l); err != nil || l.loaded[1] != "users.yaml=version 2" {
			t.Fatalf("edit: %v %v", err, l.loaded)
		}
	})
	// A stamp taken within racyWindow of the modification proves nothing:
	// the file is read again until it is old enough.
	t.Run("edited within the timestamp granularity", func(t *testing.T) {
		w, path, l := setup(t, t0.Add(racyWindow/2))
		sameSizeEdit(t, path)
		w.poll()
		if err := reportedNow(t, l); err != nil || len(l.loaded) != 2 {
			t.Fatalf("edit: %v %v", err, l.loaded)
		}
	})
	// Once the stamp is old enough, polls trust it and do not read.
	t.Run("stamp trusted when old enough", func(t *testing.T) {
		w, path, l := setup(t, t0.Add(time.Hour))
		sameSizeEdit(t, path)
		w.poll()
		noReport(t, l)
		// Reload reads regardless.
		if err := w.Reload(); err != nil || l.loaded[len(l.loaded)-1] != "users.yaml=version 2" {
			t.Fatalf("Reload did not read the file: %v %v", err, l.loaded)
		}
	})
	t.Run("missing, then back", func(t *testing.T) {
		w, path, l := setup(t, t0.Add(time.Hour))
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		w.poll()
		if err := reportedNow(t, l); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing: %v", err)
		}
		w.poll()
		noReport(t, l)                  // reported once
		write(t, path, "version 1", t0) // the same content comes back
		w.poll()
		if err := reportedNow(t, l); err != nil || len(l.loaded) != 2 {
			t.Errorf("back: %v %v", err, l.loaded)
		}
	})
	t.Run("refused version reported once", func(t *testing.T) {
		w, path, l := setup(t, t0.Add(time.Hour))
		l.refuse = func([]File) error { return errors.New("broken") }
		write(t, path, "broken!!!", t0.Add(time.Second))
		w.poll()
		if err := reportedNow(t, l); err == nil || err.Error() != "broken" {
			t.Errorf("broken: %v", err)
		}
		if err := os.Chtimes(path, t0.Add(time.Minute), t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		w.poll()
		noReport(t, l)
	})
}

// A directory: files in name order, hidden ones skipped, a file added,
// removed or changed is a new version; Kubernetes swaps ..data.
func TestPollDirectory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.pem"), "B", t0)
	write(t, filepath.Join(dir, "a.pem"), "A", t0)
	write(t, filepath.Join(dir, ".hidden"), "H", t0)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	w, l := newWatcher(t, dir, t0.Add(time.Hour))
	if l.loaded[0] != "a.pem=A|b.pem=B" {
		t.Fatalf("first load %q", l.loaded[0])
	}
	write(t, filepath.Join(dir, "c.pem"), "C", t0)
	w.poll()
	if err := reportedNow(t, l); err != nil || l.loaded[1] != "a.pem=A|b.pem=B|c.pem=C" {
		t.Fatalf("added: %v %v", err, l.loaded)
	}
	if err := os.Remove(filepath.Join(dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	w.poll()
	if err := reportedNow(t, l); err != nil || l.loaded[2] != "b.pem=B|c.pem=C" {
		t.Fatalf("removed: %v %v", err, l.loaded)
	}
	w.poll()
	noReport(t, l)
}

// Kubernetes mounts a Secret as dir/key → ..data/key, with ..data →
// ..<timestamp>, and updates it by swapping the ..data symlink. Both
// versions have the same size and time: only the link target tells.
func TestSymlinkSwap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "..2026_01_01_00_00_00.1"), filepath.Join(dir, "..2026_01_01_00_05_00.2")
	for i, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "key.pem"), []string{"one", "two"}[i], t0)
	}
	symlink(t, filepath.Base(v1), filepath.Join(dir, "..data"))
	symlink(t, filepath.Join("..data", "key.pem"), filepath.Join(dir, "key.pem"))
	w, l := newWatcher(t, dir, t0.Add(time.Hour))
	symlink(t, filepath.Base(v2), filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	w.poll()
	if err := reportedNow(t, l); err != nil || !slices.Equal(l.loaded, []string{"key.pem=one", "key.pem=two"}) {
		t.Fatalf("swap: %v %v", err, l.loaded)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "x", time.Now())
	l := &loads{reported: make(chan error, 100)}
	w, err := New(Config{Path: path, Interval: time.Millisecond}, l.load, WithReport(func(err error) { l.reported <- err }))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	write(t, path, "y", time.Now().Add(-time.Hour))
	if err := <-l.reported; err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	write(t, path, strings.Repeat("x", 100), time.Now())
	w, err := New(Config{Path: path, MaxBytes: 10}, (&loads{}).load)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(); err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") {
		t.Errorf("oversized file: %v", err)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("no path accepted")
	}
	if _, err := New(Config{Path: "x", Interval: -1}, nil); err == nil {
		t.Error("negative interval accepted")
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
