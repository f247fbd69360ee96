package main

import (
	"strings"
	"testing"
)

// The Kubernetes source's flags are refused with what to do, before anything starts.
func TestServeSourceFlagsAreChecked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--source", "kubernetes"}, "--gateway: name the gateway fleet"},
		{[]string{"--source", "etcd"}, `--source "etcd": want file`},
		{[]string{"--gateway", "edge"}, "need --source kubernetes"},
		{[]string{"-n", "shop"}, "need --source kubernetes"},
		{[]string{"--source", "kubernetes", "--gateway", "edge", "--probe-interval", "0s"}, "--probe-interval 0s: want a positive duration"},
		{[]string{"--source", "kubernetes", "--gateway", "edge", "--kubeconfig", "/nonexistent/kubeconfig"}, "--kubeconfig /nonexistent/kubeconfig"},
	} {
		cmd := newServe()
		cmd.SetArgs(c.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("aviary serve %s: %v, want an error that says %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
