package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// locate gives the errors that the validator found after decoding (which knows paths, not
// lines) the line of their path in the file, or of its nearest enclosing value that the file
// writes: a default that is wrong points at the mapping it was added to.
func locate(root *yaml.Node, errs Errors) {
	var lines map[string]int
	for i := range errs {
		if errs[i].Line > 0 || errs[i].Path == "" {
			continue
		}
		if lines == nil {
			lines = map[string]int{}
			pathLines(root, "", lines)
		}
		for p := errs[i].Path; p != ""; p = parentPath(p) {
			if l, ok := lines[p]; ok {
				errs[i].Line = l
				break
			}
		}
	}
}

// pathLines records the line of every path in the file, with the path syntax of checkNode and
// the validator (services[0].traffic[1].weight). A mapping entry is at its key's line. Aliases
// are not followed: checkAliases has bounded them, but their values' lines are the anchor's.
func pathLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			pathLines(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			lines[sub] = k.Line
			pathLines(v, sub, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			sub := fmt.Sprintf("%s[%d]", path, i)
			lines[sub] = c.Line
			pathLines(c, sub, lines)
		}
	}
}

// parentPath is path without its last key or index: services[0].traffic for
// services[0].traffic[1], services[0] for services[0].traffic.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}
