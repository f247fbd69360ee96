//go:build e2e && !linux

package crash_test

import "syscall"

// childAttr: only Linux can tie a child's life to the test's; elsewhere t.Cleanup stops them.
func childAttr() *syscall.SysProcAttr { return nil }
