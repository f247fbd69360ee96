package server

import (
	"fmt"
	"maps"
	"slices"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// specs is the admin API's backend for rollouts and the specs applied through it (api.Rollouts):
// it reads rollouts from the controller and the store, and changes specs through the state it
// shares with the config file.
type specs struct {
	*live
	file string // the config file's path, for messages
}

// RolloutStatus implements api.Rollouts.
func (s *specs) RolloutStatus(service string) (rollout.Status, error) {
	return s.ctrl.Status(service)
}

// Do implements api.Rollouts.
func (s *specs) Do(service string, cmd rollout.Command) (rollout.Status, error) {
	return s.ctrl.Do(service, cmd)
}

// Start implements api.Rollouts: make version the release of service, adding or replacing its
// endpoints when they are given. The changed spec is stored as applied through the API.
func (s *specs) Start(service string, req api.StartRequest, by string) (rollout.Status, error) {
	s.mu.Lock()
	svc, ok := s.ctrl.Spec(service)
	if !ok {
		s.mu.Unlock()
		return rollout.Status{}, &rollout.NotFoundError{Msg: fmt.Sprintf("no service named %s; `aviary get services` lists them", service)}
	}
	st, managed := s.ctrl.State(service)
	cmd, err := rollout.DecideStart(svc.Release, st, managed,
		rollout.StartRequest{Service: service, Version: req.Version, Endpoints: len(req.Endpoints) > 0, By: by})
	if cmd != nil || err != nil {
		s.mu.Unlock()
		if err != nil {
			return rollout.Status{}, err
		}
		return s.ctrl.Do(service, *cmd)
	}
	defer s.mu.Unlock()
	svc, err = released(svc, req)
	if err != nil {
		return rollout.Status{}, err
	}
	if errs := s.apply(s.current, []store.StoredSpec{storedSpec(svc, s.current.Services, by)}, by); len(errs) > 0 {
		return rollout.Status{}, &api.Invalid{Errors: errs}
	}
	return s.ctrl.Status(service)
}

// released is svc with req.Version as its release, and req's endpoints, when given, as the
// version's (added, or replacing those it has); the traffic becomes the controller's.
func released(svc config.Service, req api.StartRequest) (config.Service, error) {
	svc.Versions = slices.Clone(svc.Versions)
	i := slices.IndexFunc(svc.Versions, func(v config.Version) bool { return v.Name == req.Version })
	switch {
	case i < 0 && len(req.Endpoints) == 0:
		return svc, &api.BadRequest{Msg: fmt.Sprintf("%s is not a version of %s; give its endpoints with --endpoint URL", req.Version, svc.Name)}
	case i < 0:
		svc.Versions = append(svc.Versions, config.Version{Name: req.Version, Endpoints: req.Endpoints})
	case len(req.Endpoints) > 0:
		svc.Versions[i].Endpoints = req.Endpoints
	}
	svc.Release, svc.Traffic = req.Version, nil
	// svc came through config with its defaults; what the release adds (a strategy, when the
	// service had none) gets them now. Nothing that svc shares with the controller is written.
	svc.ApplyDefaults()
	return svc, nil
}

// Apply implements api.Rollouts: specs of services from a file, as `aviary apply -f` sends them.
func (s *specs) Apply(data []byte, by string) (api.ApplyResult, error) {
	cfg, err := config.Parse(data)
	if err != nil {
		return api.ApplyResult{}, &api.Invalid{Errors: errorStrings(err)}
	}
	if len(cfg.Services) == 0 {
		return api.ApplyResult{}, &api.Invalid{Errors: []string{"services: the file has none; apply takes a file with a services list"}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var res api.ApplyResult
	var put []store.StoredSpec
	for _, svc := range cfg.Services {
		cur, ok := s.ctrl.Spec(svc.Name)
		if ok && serviceHash(cur) == serviceHash(svc) {
			res.Unchanged = append(res.Unchanged, svc.Name)
			continue
		}
		res.Applied = append(res.Applied, svc.Name)
		put = append(put, storedSpec(svc, s.current.Services, by))
	}
	if errs := s.apply(s.current, put, by); len(errs) > 0 {
		return api.ApplyResult{}, &api.Invalid{Errors: errs}
	}
	return res, nil
}

// Delete implements api.Rollouts: drop the spec applied through the API to service. The config
// file's spec of the service takes over, or, when the file has none, the service is no longer
// served. A rollout in flight is refused unless force, which aborts it first (traffic back to the
// stable version) and then deletes. A deletion the controller refuses (the file's spec lacks the
// stable version) changes nothing but that abort.
func (s *specs) Delete(service string, force bool, by string) (api.DeleteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, err := s.store.Specs()
	if err != nil {
		return api.DeleteResult{}, fmt.Errorf("read the specs applied through the API: %w", err)
	}
	sp, applied := stored[service]
	_, served := s.ctrl.Spec(service)
	switch {
	case !applied && served:
		return api.DeleteResult{}, &rollout.ConflictError{Msg: fmt.Sprintf("%s comes from the config file %s, not from the API; remove it from the file instead", service, s.file)}
	case !applied:
		return api.DeleteResult{}, &rollout.NotFoundError{Msg: fmt.Sprintf("no service named %s; `aviary get services` lists them", service)}
	}
	if st, ok := s.ctrl.State(service); ok && st.InFlight() {
		if !force {
			return api.DeleteResult{}, &rollout.ConflictError{Msg: fmt.Sprintf("a rollout of %s is in flight (phase %s, %s at %d%%); abort it first (`aviary rollout abort %s`), or delete with --force (?force=true) to abort it and delete",
				service, st.Phase, st.Canary, st.Weight, service)}
		}
		if _, err := s.ctrl.Do(service, rollout.Command{Kind: rollout.Abort, Reason: "its spec applied through the API is deleted", By: by}); err != nil {
			return api.DeleteResult{}, fmt.Errorf("abort the rollout of %s before deleting its spec: %w", service, err)
		}
	}
	if err := s.store.DeleteSpec(service); err != nil {
		return api.DeleteResult{}, fmt.Errorf("delete the spec of %s applied through the API: %w; nothing was changed", service, err)
	}
	if errs := s.apply(s.current, nil, by); len(errs) > 0 {
		if err := s.store.PutSpecs([]store.StoredSpec{sp}); err != nil { // put it back: nothing changed
			s.log.Error("restore a deleted spec after its removal was refused", "service", service, "err", err)
		}
		return api.DeleteResult{}, &api.Invalid{Errors: errs}
	}
	fromFile := slices.ContainsFunc(s.current.Services, func(s config.Service) bool { return s.Name == service })
	s.log.Info("spec applied through the API deleted", "service", service, "by", by, "force", force, "fileSpecTakesOver", fromFile)
	return api.DeleteResult{Deleted: service, FileSpec: fromFile}, nil
}

// History implements api.Rollouts.
func (s *specs) History(service string) ([]store.HistoryEntry, error) {
	if _, ok := s.ctrl.Spec(service); !ok {
		return nil, &rollout.NotFoundError{Msg: fmt.Sprintf("no service named %s; `aviary get services` lists them", service)}
	}
	return s.store.History(service)
}

// Events implements api.Rollouts.
func (s *specs) Events(service string, after uint64, limit int) ([]rollout.Event, error) {
	return s.store.Events(store.EventQuery{Service: service, After: after, Limit: limit})
}

// LastEvents implements api.Rollouts.
func (s *specs) LastEvents(service string, n int) ([]rollout.Event, error) {
	return s.store.LastEvents(service, n)
}

// ShipFlag makes variant the release of flag in the service the flag is bound to
// (services[].flags): a flag rollout starts, by the flag's strategy, judged like any other, and
// when it completes every user gets the variant. The changed spec is stored as applied through the
// API. Experiments conclude a flag experiment through it.
func (s *specs) ShipFlag(flag, variant, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, err := s.store.Specs()
	if err != nil {
		return fmt.Errorf("read the specs applied through the API: %w", err)
	}
	names := slices.Sorted(maps.Keys(stored))
	for _, svc := range s.current.Services {
		names = append(names, svc.Name)
	}
	for _, name := range names {
		svc, ok := s.ctrl.Spec(name)
		if !ok {
			continue
		}
		j := slices.IndexFunc(svc.Flags, func(f config.ServiceFlag) bool { return f.Key == flag })
		if j < 0 {
			continue
		}
		svc.Flags = slices.Clone(svc.Flags)
		svc.Flags[j].Release = variant
		svc.ApplyDefaults()
		if errs := s.apply(s.current, []store.StoredSpec{storedSpec(svc, s.current.Services, by)}, by); len(errs) > 0 {
			return &api.Invalid{Errors: errs}
		}
		return nil
	}
	return &api.BadRequest{Msg: fmt.Sprintf("flag %q is bound to no service (services[].flags), so no flag rollout can ship it; bind it to the service whose users it serves, or make %q its default with aviary flag set", flag, variant)}
}
