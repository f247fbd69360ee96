package promtest

import "syscall"

// dieWithParent has the kernel kill the child when the test binary dies, so that no Prometheus
// outlives a test killed by -timeout.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
