//go:build !linux

package promtest

import "syscall"

// dieWithParent: only Linux ties a child's life to its parent's; elsewhere t.Cleanup alone stops it.
func dieWithParent() *syscall.SysProcAttr { return nil }
