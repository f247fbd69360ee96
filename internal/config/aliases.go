package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// MinAliasBudget is how many values YAML aliases may add to a config beyond those written in
// it, or as many as it holds itself when that is more. The checker and the decoder follow every
// alias, so without a cap a few kilobytes of aliases of aliases ("billion laughs") expand to
// millions of values and hold the reload lock for minutes.
const MinAliasBudget = 100_000

// checkAliases counts the values that root holds once every alias is expanded, without
// expanding them (each anchored value is counted once and remembered), and refuses a file whose
// aliases add more than the budget. It runs before anything walks the tree.
func checkAliases(root *yaml.Node) *FieldError {
	own, first := 0, 0
	walkOwn(root, func(n *yaml.Node) {
		own++
		if n.Kind == yaml.AliasNode && first == 0 {
			first = n.Line
		}
	})
	if first == 0 {
		return nil
	}
	limit := own + max(MinAliasBudget, own)
	c := aliasCounter{limit: limit, sizes: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	if c.size(root) <= limit {
		return nil
	}
	return &FieldError{Line: first, Msg: fmt.Sprintf(
		"YAML aliases expand this file to more than %d values (it writes out %d, and aliases may add at most %d); write the repeated parts out, or use fewer aliases of aliases",
		limit, own, limit-own)}
}

// walkOwn calls f on every node written in the file, not following aliases.
func walkOwn(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walkOwn(c, f)
	}
}

// aliasCounter counts expanded values up to just past limit.
type aliasCounter struct {
	limit int
	sizes map[*yaml.Node]int  // expanded size of each node counted so far
	open  map[*yaml.Node]bool // nodes being counted: an alias back into one is a cycle
}

// size is the number of values n stands for with its aliases expanded, or limit+1 if more.
func (c *aliasCounter) size(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		n = n.Alias
	}
	if s, ok := c.sizes[n]; ok {
		return s
	}
	if c.open[n] { // yaml refuses an anchor that contains itself; never loop if it did not
		return c.limit + 1
	}
	c.open[n] = true
	total := 1
	for _, ch := range n.Content {
		if total += c.size(ch); total > c.limit {
			total = c.limit + 1
			break
		}
	}
	delete(c.open, n)
	c.sizes[n] = total
	return total
}
