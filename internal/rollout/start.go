package rollout

import "fmt"

// StartRequest asks that Version become the release of Service (`aviary rollout start`).
type StartRequest struct {
	Service string
	Version string
	// Endpoints: the request gives the version's endpoints, to add the version or replace them.
	Endpoints bool
	By        string
}

// DecideStart says how a start request is carried out, from the release the service's spec names
// and the rollout's state (managed: the service has one). It returns the command to run on the
// rollout as it stands when the spec already names the version and no endpoints come with it: a
// retry of that release when it was aborted, or a start of it when no rollout is in flight and it
// is not stable (the release again, after an undo). It returns nil and no error when the spec must
// change instead (its release, or the version's endpoints): the controller then starts the rollout
// from the changed spec. Asking for the release in flight, or for the stable release again, is a
// *ConflictError that says where to look.
func DecideStart(specRelease string, st State, managed bool, req StartRequest) (*Command, error) {
	if !managed || specRelease != req.Version || req.Endpoints {
		return nil, nil
	}
	if st.Phase == Degraded && st.Canary == req.Version {
		return &Command{Kind: Retry, By: req.By}, nil
	}
	if !st.InFlight() && st.Stable != req.Version {
		return &Command{Kind: StartCmd, Version: req.Version, By: req.By}, nil
	}
	return nil, &ConflictError{Msg: fmt.Sprintf("%s is already the release of %s (phase %s); `aviary rollout status %s` shows where it is",
		req.Version, req.Service, st.Phase, req.Service)}
}
