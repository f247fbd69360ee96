package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
)

// A file that a writer is still writing when it is read (here: the writer finishes during the
// first read) is read again once it holds still, and the reload gets the whole file.
func TestReadStillReadsAgainAFileThatChangedWhileRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aviary.yaml")
	half, whole := "services:\n  - name: shop\n", "services:\n  - name: shop\n    versions: [{name: v1, endpoints: [\"http://h:1\"]}]\n"
	must(t, os.WriteFile(path, []byte(half), 0o644))
	reads, waits := 0, 0
	r := &configFile{path: path,
		afterRead: func() {
			if reads++; reads == 1 {
				must(t, os.WriteFile(path, []byte(whole), 0o644)) // in place, as a slow writer does
			}
		},
		wait: func(d time.Duration) {
			if d != debounce {
				t.Errorf("waited %v between reads, want the debounce %v", d, debounce)
			}
			waits++
		}}
	data, err := r.readStill()
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != whole {
		t.Errorf("readStill returned %q, want the whole file %q", data, whole)
	}
	if reads != 2 || waits != 1 {
		t.Errorf("%d reads and %d waits, want 2 reads with one wait between them", reads, waits)
	}
}

// A file that changes during every read is given up on after stillReads reads, with an error; the
// config in force stays and the file's next change tries again.
func TestReadStillGivesUpOnAFileThatKeepsChanging(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aviary.yaml")
	must(t, os.WriteFile(path, []byte("services:\n"), 0o644))
	reads, waits := 0, 0
	r := &configFile{path: path,
		afterRead: func() {
			reads++
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteString("# still writing\n")
			must(t, err)
			must(t, f.Close())
		},
		wait: func(time.Duration) { waits++ }}
	_, err := r.readStill()
	if err == nil || !strings.Contains(err.Error(), "changed while it was read, 5 times in a row; the config in force stays") {
		t.Errorf("readStill of a file that never holds still: %v", err)
	}
	if reads != stillReads || waits != stillReads {
		t.Errorf("%d reads and %d waits, want %d of each", reads, waits, stillReads)
	}
}

func TestMassRemovalIsRefusedUnlessAllowed(t *testing.T) {
	services := func(names ...string) []config.Service {
		var out []config.Service
		for _, n := range names {
			out = append(out, config.Service{Name: n})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		old, new []string
		empty    bool
		allow    bool
		want     string // "" when allowed
	}{
		{"an empty file", []string{"a", "b", "c"}, nil, true, false, "the new file is empty: it removes all 3 services in force (a, b, c)"},
		{"no services left", []string{"a"}, nil, false, false, "removes 1 of the 1 services in force (a): is it cut short?"},
		{"most removed", []string{"a", "b", "c"}, []string{"a"}, false, false, "removes 2 of the 3 services in force (b, c)"},
		{"half removed", []string{"a", "b", "c", "d"}, []string{"a", "b"}, false, false, ""},
		{"one renamed", []string{"a", "b"}, []string{"a", "c"}, false, false, ""},
		{"all removed, allowed", []string{"a", "b", "c"}, nil, false, true, ""},
		{"none before", nil, nil, true, false, ""},
	} {
		cfg := &config.Config{Services: services(tc.new...), Reload: config.Reload{AllowMassRemoval: tc.allow}}
		err := massRemoval(&config.Config{Services: services(tc.old...)}, cfg, tc.empty)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "If that is meant, set reload.allowMassRemoval: true in the file")):
			t.Errorf("%s: %v\nwant an error with %q and how to allow it", tc.name, err, tc.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
