package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/admin"
)

// controllerAdmin runs `aviary controller` with args up to the manager's start, and returns the
// options of its admin listener (nil when it is off).
func controllerAdmin(t *testing.T, args ...string) (*admin.Options, k8s.Options, error) {
	t.Helper()
	var got k8s.Options
	f := &controllerFlags{run: func(_ context.Context, o k8s.Options) error {
		got = o
		return nil
	}}
	root := &cobra.Command{Use: "aviary", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newControllerWith(f))
	_, _, err := execute(t, root, "", append([]string{"controller"}, args...)...)
	return f.admin.opts, got, err
}

func writeToken(t *testing.T, dir, name, token string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTheControllersAdminListenerIsOnLoopbackByDefaultAndTakesTokens(t *testing.T) {
	hermetic(t)
	t.Setenv("AVIARY_ADMIN_TOKEN", "")
	t.Setenv("AVIARY_READ_TOKEN", "")
	file := kubeconfig(t, deadServer(t))

	a, o, err := controllerAdmin(t, "--kubeconfig", file)
	if err != nil {
		t.Fatal(err)
	}
	if a == nil || a.Addr != "127.0.0.1:8082" || a.Tokens.Admin != "" || a.Tokens.Read != "" || o.Extra == nil {
		t.Fatalf("admin options %+v (extra set: %v), want 127.0.0.1:8082, open", a, o.Extra != nil)
	}

	// Tokens from the environment, or from files (a Secret's volume), which win.
	t.Setenv("AVIARY_ADMIN_TOKEN", "env-admin")
	t.Setenv("AVIARY_READ_TOKEN", "env-read")
	if a, _, err := controllerAdmin(t, "--kubeconfig", file, "--admin-bind-address", ":8082"); err != nil ||
		a.Tokens.Admin != "env-admin" || a.Tokens.Read != "env-read" || a.Addr != ":8082" {
		t.Errorf("from the environment: %+v (%v)", a, err)
	}
	dir := t.TempDir()
	adminFile, readFile := writeToken(t, dir, "admin", "file-admin\n"), writeToken(t, dir, "read", "file-read")
	a, _, err = controllerAdmin(t, "--kubeconfig", file, "--admin-bind-address", ":8082", "--admin-token-file", adminFile,
		"--read-token-file", readFile, "--admin-allowed-host", "aviary.example.com")
	if err != nil || a.Tokens.Admin != "file-admin" || a.Tokens.Read != "file-read" || len(a.AllowedHosts) != 1 {
		t.Errorf("from files: %+v (%v)", a, err)
	}

	// Off.
	if a, o, err := controllerAdmin(t, "--kubeconfig", file, "--admin-bind-address", "0"); err != nil || a != nil || o.Extra != nil {
		t.Errorf("--admin-bind-address 0: %+v (%v), want no admin listener", a, err)
	}
}

func TestTheControllersAdminListenerRefusesWhatWouldExposeIt(t *testing.T) {
	hermetic(t)
	t.Setenv("AVIARY_ADMIN_TOKEN", "")
	t.Setenv("AVIARY_READ_TOKEN", "")
	file := kubeconfig(t, deadServer(t))
	dir := t.TempDir()
	empty := writeToken(t, dir, "empty", "\n")
	same := writeToken(t, dir, "same", "s3cret")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--admin-bind-address", ":8082"}, []string{"--admin-bind-address :8082 is not a loopback address and there is no admin token",
			"AVIARY_ADMIN_TOKEN", "--admin-token-file", "kubectl port-forward"}},
		{[]string{"--admin-bind-address", "0.0.0.0:8082", "--read-token-file", same}, []string{"no admin token"}},
		{[]string{"--admin-bind-address", "8082"}, []string{`--admin-bind-address "8082" is not host:port`}},
		{[]string{"--admin-token-file", filepath.Join(dir, "missing")}, []string{"--admin-token-file", "no such file", "mount the Secret"}},
		{[]string{"--admin-token-file", empty}, []string{"--admin-token-file " + empty + ": the file is empty"}},
		{[]string{"--admin-token-file", same, "--read-token-file", same}, []string{"the admin and the read token are the same"}},
	} {
		_, _, err := controllerAdmin(t, append([]string{"--kubeconfig", file}, tc.args...)...)
		wantError(t, strings.Join(tc.args, " "), err, tc.want...)
		if err != nil && (strings.Contains(err.Error(), "s3cret")) {
			t.Errorf("%v: the error shows the token: %v", tc.args, err)
		}
	}
}

// TestTheInstallManifestsArgsAreTheControllersFlags: deploy/controller.yaml's args, with its
// token files where the Secret's volume puts them, start the admin listener on :8082 with both
// tokens.
func TestTheInstallManifestsArgsAreTheControllersFlags(t *testing.T) {
	hermetic(t)
	t.Setenv("AVIARY_ADMIN_TOKEN", "")
	t.Setenv("AVIARY_READ_TOKEN", "")
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "controller.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for dep.Kind != "Deployment" {
		dep = appsv1.Deployment{}
		if err := dec.Decode(&dep); errors.Is(err, io.EOF) {
			t.Fatal("deploy/controller.yaml has no Deployment")
		} else if err != nil {
			t.Fatal(err)
		}
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if len(c.VolumeMounts) == 0 {
		t.Fatal("the controller mounts no token volume")
	}
	mount, dir := c.VolumeMounts[0].MountPath, t.TempDir()
	writeToken(t, dir, "admin-token", "a")
	writeToken(t, dir, "read-token", "r")
	args := []string{"--kubeconfig", kubeconfig(t, deadServer(t))}
	for _, a := range c.Args[1:] { // after the subcommand
		args = append(args, strings.ReplaceAll(a, mount, dir))
	}
	a, _, err := controllerAdmin(t, args...)
	if err != nil {
		t.Fatalf("the manifest's args %v: %v", c.Args, err)
	}
	if a == nil || a.Addr != ":8082" || a.Tokens.Admin != "a" || a.Tokens.Read != "r" {
		t.Errorf("the manifest's admin listener: %+v, want :8082 with both tokens", a)
	}
}
