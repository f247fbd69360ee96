package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/config"
)

// filledStore writes a store of many pages (events with long reasons) and returns its path and
// size, closed.
func filledStore(t *testing.T) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aviary.db")
	s, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		ev := event("web", "StepStarted", i)
		ev.Reason = strings.Repeat("a long reason to fill pages ", 40)
		commit(t, s, "web", int64(i), ev)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 64<<10 {
		t.Fatalf("the filled store is only %d bytes; the test needs many pages", fi.Size())
	}
	return path, fi.Size()
}

// wantOpenError opens path and checks that it fails with every one of want, and that whatever
// Open refused can still be read by the reads that would follow it.
func wantOpenError(t *testing.T, path string, want ...string) {
	t.Helper()
	s, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents})
	if err == nil {
		// Reading everything is what the controller does next; on a cut file, that faulted.
		_, _ = s.States()
		_, _ = s.Events(EventQuery{Limit: 1 << 20})
		s.Close()
		t.Fatalf("Open(%s) succeeded; want an error with %q", path, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Open(%s): %v\nwant it to say %q", path, err, w)
		}
	}
}

func TestOpenRefusesAStoreCutShort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		keep func(size int64) int64
		want []string
	}{
		{"half", func(n int64) int64 { return n / 2 }, []string{"is damaged or not an aviary store", "cut short", "restore it from a backup"}},
		{"one page", func(int64) int64 { return 4096 }, []string{"is damaged or not an aviary store", "restore it from a backup"}},
		{"a few bytes", func(int64) int64 { return 100 }, []string{"is damaged or not an aviary store", "restore it from a backup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, size := filledStore(t)
			if err := os.Truncate(path, tc.keep(size)); err != nil {
				t.Fatal(err)
			}
			wantOpenError(t, path, tc.want...)
		})
	}
}

func TestOpenRefusesAnEmptyFile(t *testing.T) {
	t.Parallel()
	path, _ := filledStore(t)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, path, "store "+path+" is empty (0 bytes)", "restore it from a backup, or remove it to start afresh")
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("the refused empty file was changed: %v, %v", fi, err)
	}
}

func TestOpenRefusesANonStoreAndADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a bbolt file ", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, garbage, "store "+garbage+" is damaged or not an aviary store", "invalid database")
	wantOpenError(t, dir, "store "+dir+" is a directory", "set storage.path to a file, such as "+filepath.Join(dir, "aviary.db"))
}

// A new store is written aside and linked into place whole: nothing else is left in its directory.
func TestOpenCreatesANewStoreWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "state", "aviary.db"), Options{MaxEvents: config.DefaultMaxEvents})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "aviary.db" {
		t.Errorf("the store's directory holds %v, want only aviary.db", entries)
	}
	s2 := open(t, filepath.Join(dir, "state", "aviary.db"), Options{MaxEvents: config.DefaultMaxEvents})
	if states, err := s2.States(); err != nil || len(states) != 0 {
		t.Errorf("the new store reopened: %v, %v", states, err)
	}
}

// TestOpenWantsTheConfigsMaxEvents: the bound on the event log comes from the config, which
// defaults it; the store has no default of its own that could drift from it.
func TestOpenWantsTheConfigsMaxEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aviary.db")
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "storage.maxEvents") {
		t.Fatalf("Open with no MaxEvents: %v, want an error that names storage.maxEvents", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Errorf("Open refused the options but left a file behind: %v", statErr)
	}
}
