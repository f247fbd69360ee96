//go:build !linux

package provider_test

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's; elsewhere t.Cleanup alone
// stops Prometheus.
func dieWithParent() *syscall.SysProcAttr { return nil }
