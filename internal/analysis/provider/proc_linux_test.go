package provider_test

import "syscall"

// dieWithParent has the kernel kill a child process when the test binary dies, so that a test
// killed by go test's -timeout leaves no Prometheus behind.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
