package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/redact"
	"aviary.dev/aviary/internal/store"
)

// The effective spec of a service is the config file's, unless a spec was applied to it through the
// API (`aviary apply -f`, `aviary rollout start`) after the file's version of the service was last
// changed: the last change wins. A stored spec remembers the hash of the file's service it was
// applied over (its basis); once the file's service differs from that basis, someone has edited the
// file since, and the file takes over again (the stored spec is dropped, and that is logged).
// Weights have one source of truth: a managed service's come from the rollout controller only.

// serviceHash identifies a service's spec as written.
func serviceHash(svc config.Service) string {
	b, _ := json.Marshal(svc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// merge returns the effective services and the stored specs that the file has overtaken.
func merge(file []config.Service, stored map[string]store.StoredSpec) (effective []config.Service, stale []string) {
	seen := map[string]bool{}
	for _, svc := range file {
		seen[svc.Name] = true
		sp, ok := stored[svc.Name]
		switch {
		case !ok:
			effective = append(effective, svc)
		case sp.Basis != serviceHash(svc):
			stale = append(stale, svc.Name)
			effective = append(effective, svc)
		default:
			effective = append(effective, sp.Service)
		}
	}
	var extra []string
	for name := range stored {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra) // services that live only in the store, in a stable order
	for _, name := range extra {
		effective = append(effective, stored[name].Service)
	}
	return effective, stale
}

// storedSpec is svc as applied now over the file's version of it.
func storedSpec(svc config.Service, file []config.Service, by string) store.StoredSpec {
	sp := store.StoredSpec{Service: svc, AppliedAt: time.Now().UTC(), By: by}
	if i := slices.IndexFunc(file, func(s config.Service) bool { return s.Name == svc.Name }); i >= 0 {
		sp.Basis = serviceHash(file[i])
	}
	return sp
}

// validServices checks services as they would be served together with the file's other settings.
func validServices(base *config.Config, services []config.Service) config.Errors {
	cfg := *base
	cfg.Services = services
	return cfg.Validate()
}

func errorStrings(err error) []string {
	if errs, ok := err.(config.Errors); ok {
		out := make([]string, len(errs))
		for i, e := range errs {
			out[i] = e.Error()
		}
		return out
	}
	return []string{redact.Text(fmt.Sprint(err))}
}
