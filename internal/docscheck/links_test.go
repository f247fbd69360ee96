package docscheck

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

// TestDocLinksResolve fails when a relative link in README.md or a page under docs/ names a file
// that does not exist, or an #anchor that no heading of the target page makes.
func TestDocLinksResolve(t *testing.T) {
	pages := markdownPages(t)
	anchors := map[string]map[string]bool{} // page path -> anchors
	links := map[string][]string{}          // page path -> link destinations
	for _, p := range pages {
		a, l := parsePage(t, p)
		anchors[p], links[p] = a, l
	}
	for _, p := range pages {
		for _, dest := range links[p] {
			if err := checkLink(p, dest, anchors); err != nil {
				t.Errorf("%s: link %q: %v", rel(p), dest, err)
			}
		}
	}
}

// markdownPages lists README.md and every .md file under docs/.
func markdownPages(t *testing.T) []string {
	t.Helper()
	pages := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			pages = append(pages, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list docs: %v", err)
	}
	return pages
}

// parsePage returns the anchors a page's headings make, GitHub's way, and its link destinations.
func parsePage(t *testing.T, path string) (map[string]bool, []string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read page: %v", err)
	}
	md := goldmark.New(goldmark.WithExtensions(extension.GFM))
	doc := md.Parser().Parse(text.NewReader(src))
	anchors := map[string]bool{}
	seen := map[string]int{}
	var links []string
	err = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			slug := gitHubSlug(plainText(n, src))
			if k := seen[slug]; k > 0 {
				anchors[fmt.Sprintf("%s-%d", slug, k)] = true
			} else {
				anchors[slug] = true
			}
			seen[slug]++
		case *ast.Link:
			links = append(links, string(n.Destination))
		case *ast.Image:
			links = append(links, string(n.Destination))
		}
		return ast.WalkContinue, nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", rel(path), err)
	}
	return anchors, links
}

// plainText is the text of a node's inline children, code spans included.
func plainText(n ast.Node, src []byte) string {
	var b strings.Builder
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Segment.Value(src))
		case *ast.String:
			b.Write(c.Value)
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}

// gitHubSlug makes a heading's anchor as GitHub does: lower-case, punctuation dropped (letters,
// digits, spaces, hyphens and underscores stay), spaces turned into hyphens.
func gitHubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var scheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

// checkLink resolves one destination of page: a file relative to the page, and an anchor of the
// target page when it names one.
func checkLink(page, dest string, anchors map[string]map[string]bool) error {
	if scheme.MatchString(dest) {
		return nil // http(s), mailto: outside the repository
	}
	u, err := url.Parse(dest)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	target := page
	if u.Path != "" {
		target = filepath.Join(filepath.Dir(page), filepath.FromSlash(u.Path))
		if _, err := os.Stat(target); err != nil {
			return fmt.Errorf("no such file %s", rel(target))
		}
	}
	if u.Fragment == "" {
		return nil
	}
	a, ok := anchors[target]
	if !ok {
		return fmt.Errorf("an anchor into %s, which is not a checked Markdown page", rel(target))
	}
	if !a[u.Fragment] {
		return fmt.Errorf("%s has no heading with anchor #%s", rel(target), u.Fragment)
	}
	return nil
}

// rel shows a path from the repository root.
func rel(p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

func TestGitHubSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Analysis: the judge":          "analysis-the-judge",
		"The config file and the API":  "the-config-file-and-the-api",
		"Admin API and metrics":        "admin-api-and-metrics",
		"Kubernetes mode (controller)": "kubernetes-mode-controller",
		"snake_case and `code`":        "snake_case-and-code",
	} {
		if got := gitHubSlug(in); got != want {
			t.Errorf("gitHubSlug(%q) = %q, want %q", in, got, want)
		}
	}
}
