package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCLIDocsAreCurrent regenerates the CLI reference into a temporary directory and fails when
// docs/cli differs from it: a flag, a command or a help text changed without the pages.
func TestCLIDocsAreCurrent(t *testing.T) {
	const update = "run `go run ./cmd/aviary gen-docs docs/cli` to update"
	checked := filepath.Join("..", "..", cliDocsDir)
	fresh := t.TempDir()
	if err := genCLIDocs(newRoot(), fresh); err != nil {
		t.Fatal(err)
	}
	want := readDir(t, fresh)
	got := readDir(t, checked)
	for name, text := range want {
		old, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s/%s is missing; %s", cliDocsDir, name, update)
		case old != text:
			t.Errorf("%s/%s is out of date; %s", cliDocsDir, name, update)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s/%s documents a command that is gone; %s", cliDocsDir, name, update)
		}
	}
}

func TestGenDocsIsHidden(t *testing.T) {
	cmd, _, err := newRoot().Find([]string{"gen-docs"})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Name() != "gen-docs" || !cmd.Hidden {
		t.Fatalf("gen-docs: found %q, hidden %v; want the hidden gen-docs command", cmd.Name(), cmd.Hidden)
	}
}

// readDir returns the Markdown files of dir by name.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}
