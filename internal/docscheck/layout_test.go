package docscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLayoutListsEveryDirectory fails when a directory of the repository is missing from the
// README's Layout: the top-level ones, and those under cmd/, internal/ (two levels) and test/.
func TestLayoutListsEveryDirectory(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	_, layout, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	for _, dir := range repoDirs(t) {
		pattern := `(?m)^` + regexp.QuoteMeta(dir+"/") + `\s`
		if walkRoots[dir] {
			pattern = `(?m)^` + regexp.QuoteMeta(dir+"/") // its subdirectories' lines show it
		}
		re := regexp.MustCompile(pattern)
		if !re.MatchString(layout) {
			t.Errorf("README.md's Layout does not list %s/; add a line for it", dir)
		}
	}
}

// walkRoots are the directories whose subdirectories the Layout lists one by one.
var walkRoots = map[string]bool{"cmd": true, "internal": true, "test": true}

// repoDirs lists the directories the Layout must show, as slash paths from the repository root.
func repoDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	add := func(parent string, depth int) {
		var walk func(string, int)
		walk = func(p string, d int) {
			entries, err := os.ReadDir(filepath.Join(root, p))
			if err != nil {
				t.Fatalf("list %s: %v", p, err)
			}
			for _, e := range entries {
				n := e.Name()
				if !e.IsDir() || strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules" {
					continue
				}
				child := n
				if p != "." {
					child = p + "/" + n
				}
				dirs = append(dirs, child)
				if d > 1 {
					walk(child, d-1)
				}
			}
		}
		walk(parent, depth)
	}
	add(".", 1)
	for r := range walkRoots {
		depth := 1
		if r == "internal" {
			depth = 2
		}
		add(r, depth)
	}
	return dirs
}
