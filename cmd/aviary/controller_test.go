package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/k8s"
)

// controller runs `aviary controller` with args up to the point where it would start the
// manager, and returns the options it would start it with.
func controller(t *testing.T, podNSFile string, args ...string) (k8s.Options, error) {
	t.Helper()
	var got k8s.Options
	f := &controllerFlags{kube: kubeOptions{podNSFile: podNSFile}, run: func(_ context.Context, o k8s.Options) error {
		got = o
		return nil
	}}
	root := &cobra.Command{Use: "aviary", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newControllerWith(f))
	_, _, err := execute(t, root, "", append([]string{"controller"}, args...)...)
	return got, err
}

func TestControllerDefaults(t *testing.T) {
	hermetic(t)
	file := kubeconfig(t, deadServer(t))
	t.Setenv("KUBECONFIG", file)
	notAPod := filepath.Join(t.TempDir(), "namespace")

	o, err := controller(t, notAPod)
	if err != nil {
		t.Fatal(err)
	}
	if o.Config == nil || !strings.HasPrefix(o.Config.Host, "http://127.0.0.1:") {
		t.Fatalf("config = %+v, want the cluster of $KUBECONFIG", o.Config)
	}
	if o.Namespace != "" || o.MetricsAddr != ":8080" || o.ProbeAddr != ":8081" || !o.LeaderElection ||
		o.LeaderElectionID != "aviary-controller" || o.LeaderElectionNamespace != "default" || o.Interval != time.Second ||
		o.Logger == nil {
		t.Errorf("options = %+v, want all namespaces (not the context's team-a), :8080, :8081, a lease "+
			"aviary-controller in default, 1s", o)
	}

	// In a pod, the lease is in the pod's namespace.
	if err := os.WriteFile(notAPod, []byte("aviary-system\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := controller(t, notAPod); err != nil || o.LeaderElectionNamespace != "aviary-system" {
		t.Errorf("in a pod: lease namespace %q (%v), want the pod's, aviary-system", o.LeaderElectionNamespace, err)
	}
}

func TestControllerFlags(t *testing.T) {
	hermetic(t)
	file := kubeconfig(t, deadServer(t))
	o, err := controller(t, "", "--kubeconfig", file, "--context", "b", "-n", "shop", "--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:9444", "--leader-elect=false", "--leader-election-namespace", "ops",
		"--leader-election-id", "aviary-blue", "--interval", "250ms", "--log-level", "debug", "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	if o.Namespace != "shop" || o.MetricsAddr != "0" || o.ProbeAddr != "127.0.0.1:9444" || o.LeaderElection ||
		o.LeaderElectionNamespace != "ops" || o.LeaderElectionID != "aviary-blue" || o.Interval != 250*time.Millisecond {
		t.Errorf("options = %+v, want what the flags say", o)
	}
	if !o.Logger.Enabled(context.Background(), -4) {
		t.Error("--log-level debug: the logger does not log debug")
	}
}

func TestControllerErrorsSayWhatToDo(t *testing.T) {
	hermetic(t)
	file := kubeconfig(t, deadServer(t))
	missing := filepath.Join(t.TempDir(), "kubeconfig")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--kubeconfig", missing}, []string{"--kubeconfig " + missing, "no such file",
			"set --kubeconfig or KUBECONFIG to a kubeconfig file, or run in a cluster"}},
		{nil, []string{"no kubeconfig found", "set --kubeconfig or KUBECONFIG"}},
		{[]string{"--kubeconfig", file, "--context", "nope"}, []string{file, `context was not found for specified context: nope`}},
		{[]string{"--kubeconfig", file, "--interval", "0s"}, []string{"--interval 0s: want a positive duration"}},
		{[]string{"--kubeconfig", file, "--log-format", "xml"}, []string{`--log-format "xml": use text or json`}},
		{[]string{"--kubeconfig", file, "--leader-election-id", ""}, []string{"--leader-election-id: name the Lease"}},
	} {
		_, err := controller(t, "", tc.args...)
		wantError(t, fmt.Sprintf("controller %v", tc.args), err, tc.want...)
	}
}
