package server

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// live is the state that the config file and the specs applied through the API share: the config
// in force, and the services that it and the stored specs make together. Both change it under mu
// and through apply only, so a reload and an API change never interleave.
type live struct {
	log   *slog.Logger
	ctrl  *rollout.Controller
	store *store.Store
	judge *analysis.Analyzer
	flags flagSource // the flags in force: the flag rollouts' variants

	mu      sync.Mutex
	current *config.Config
}

// apply makes cfg's services, merged with the specs applied through the API, the ones in force;
// put, when set, is a spec being applied now. It checks everything first and changes nothing when
// it returns errors. l.mu must be held.
func (l *live) apply(cfg *config.Config, put []store.StoredSpec, by string) []string {
	stored, err := l.store.Specs()
	if err != nil {
		return []string{fmt.Sprintf("read the specs applied through the API: %v", err)}
	}
	for _, sp := range put {
		stored[sp.Service.Name] = sp
	}
	services, stale := merge(cfg.Services, stored)
	if errs := validServices(cfg, services); len(errs) > 0 {
		return errorStrings(errs)
	}
	rolls, errs := flagRolloutSpecs(services, l.flags.Current())
	if len(errs) > 0 {
		return errs
	}
	services = append(services, rolls...)
	if errs := l.ctrl.Validate(services); len(errs) > 0 {
		return errorStrings(errs)
	}
	if len(put) > 0 {
		if err := l.store.PutSpecs(put); err != nil { // all or none
			return []string{fmt.Sprintf("save the specs applied through the API: %v; nothing was changed", err)}
		}
	}
	for _, name := range stale {
		l.log.Info("the config file changed this service since a spec was applied through the API; the file's spec takes over", "service", name)
		if err := l.store.DeleteSpec(name); err != nil {
			l.log.Error("drop a stale applied spec", "service", name, "err", err)
		}
	}
	l.judge.SetTemplates(analysisTemplates(cfg)) // before a rollout that names a new template can start
	if err := l.ctrl.SetSpecsBy(services, by); err != nil {
		l.log.Error("apply services", "err", err)
	}
	return nil
}

// reapply applies the config in force again, for the flags in force changed (a flag rollout may
// have become possible, or its variants changed); by names the change.
func (l *live) reapply(by string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errs := l.apply(l.current, nil, by); len(errs) > 0 {
		l.log.Warn("the flags in force do not fit the config's flag rollouts; the rollouts stay as they were", "errors", errs)
	}
}

// shutdownTimeout is gateway.timeouts.shutdown of the config in force.
func (l *live) shutdownTimeout() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current.Gateway.Timeouts.Shutdown.Duration
}

// experiments are the experiments of the config in force.
func (l *live) experiments() []config.Experiment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current.Experiments
}
