package main

import (
	"strings"
	"testing"
	"time"
)

// TestTheControllerReadsTheFleetWithTheFlagsToken: the gateway fleet's read token comes from
// --fleet-token-file (a Secret's volume), else $AVIARY_GATEWAY_TOKEN; a look waits --fleet-timeout.
func TestTheControllerReadsTheFleetWithTheFlagsToken(t *testing.T) {
	hermetic(t)
	t.Setenv("AVIARY_ADMIN_TOKEN", "")
	t.Setenv("AVIARY_READ_TOKEN", "")
	t.Setenv("AVIARY_GATEWAY_TOKEN", "")
	file := kubeconfig(t, deadServer(t))

	_, o, err := controllerAdmin(t, "--kubeconfig", file)
	if err != nil || o.Fleet.Token != "" || o.Fleet.Timeout != 2*time.Second {
		t.Fatalf("by default: fleet options %+v (%v), want no token and a 2s timeout", o.Fleet, err)
	}
	t.Setenv("AVIARY_GATEWAY_TOKEN", " env-read\n")
	if _, o, err := controllerAdmin(t, "--kubeconfig", file, "--fleet-timeout", "500ms"); err != nil ||
		o.Fleet.Token != "env-read" || o.Fleet.Timeout != 500*time.Millisecond {
		t.Errorf("from the environment: fleet options %+v (%v), want env-read and 500ms", o.Fleet, err)
	}
	tok := writeToken(t, t.TempDir(), "read", "file-read\n")
	if _, o, err := controllerAdmin(t, "--kubeconfig", file, "--fleet-token-file", tok); err != nil || o.Fleet.Token != "file-read" {
		t.Errorf("from the file: fleet options %+v (%v), want the file's token over the environment's", o.Fleet, err)
	}
}

func TestTheControllerRefusesFleetFlagsItCannotUse(t *testing.T) {
	hermetic(t)
	t.Setenv("AVIARY_ADMIN_TOKEN", "")
	t.Setenv("AVIARY_READ_TOKEN", "")
	t.Setenv("AVIARY_GATEWAY_TOKEN", "")
	file := kubeconfig(t, deadServer(t))
	dir := t.TempDir()
	empty := writeToken(t, dir, "empty", " \n")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--fleet-timeout", "0s"}, []string{"--fleet-timeout 0s", "positive duration"}},
		{[]string{"--fleet-timeout", "-1s"}, []string{"--fleet-timeout -1s", "positive duration"}},
		{[]string{"--fleet-timeout", "2"}, []string{"--fleet-timeout", "2"}}, // pflag's: a duration needs a unit
		{[]string{"--fleet-token-file", dir + "/missing"}, []string{"--fleet-token-file", "no such file", "mount the Secret", "AVIARY_GATEWAY_TOKEN"}},
		{[]string{"--fleet-token-file", empty}, []string{"--fleet-token-file " + empty + ": the file is empty"}},
	} {
		_, _, err := controllerAdmin(t, append([]string{"--kubeconfig", file}, tc.args...)...)
		wantError(t, strings.Join(tc.args, " "), err, tc.want...)
	}
}
