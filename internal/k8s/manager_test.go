package k8s

import (
	"strings"
	"testing"
)

// Leader election without the name of its Lease is refused before anything starts, with what to
// set; the name is given by `aviary controller`'s flag, never made up here.
func TestLeaderElectionWithoutALeaseNameIsRefused(t *testing.T) {
	err := Run(t.Context(), Options{LeaderElection: true})
	if err == nil || !strings.Contains(err.Error(), "--leader-election-id") {
		t.Fatalf("Run = %v, want an error that names --leader-election-id", err)
	}
}
