//go:build e2e && linux

package crash_test

import "syscall"

// childAttr makes the kernel kill a child when the test process dies, so that not even a test
// binary killed by its -timeout leaves an aviary or upstream behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
