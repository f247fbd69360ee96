package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// cliDocsDir is where the CLI reference lives, relative to the repository root.
const cliDocsDir = "docs/cli"

// newGenDocs is the hidden command that writes the CLI reference (one Markdown page per command)
// from the commands themselves: go run ./cmd/aviary gen-docs docs/cli. TestCLIDocsAreCurrent fails
// when the checked-in pages differ from what it writes.
func newGenDocs() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write the CLI reference, one Markdown page per command, into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return genCLIDocs(cmd.Root(), args[0])
		},
	}
}

// genCLIDocs writes root's Markdown reference into dir, creating it, and removes the pages of
// commands that are gone; pages carry no date, so the output depends on the commands alone.
func genCLIDocs(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create CLI docs directory %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, root.Name()+"*.md"))
	if err != nil {
		return fmt.Errorf("list CLI docs in %s: %w", dir, err)
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("remove old CLI page: %w", err)
		}
	}
	root.DisableAutoGenTag = true
	root.InitDefaultCompletionCmd() // Execute adds it; the reference shows the binary as it runs
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return fmt.Errorf("write CLI docs into %s: %w", dir, err)
	}
	return nil
}
