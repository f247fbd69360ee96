// Package docscheck holds the tests that keep the documentation honest: every relative link and
// #anchor in README.md and docs/ leads somewhere, and every config key the code reads is named in
// docs/config.md. It has no code of its own; `go test ./...` runs the checks.
package docscheck
