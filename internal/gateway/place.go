package gateway

// PlaceKey is the version the gateway gives a sticky key of a service by weight (or by the
// service's experiment, see SetExperiments) — the bucket a
// request carrying that key lands in — and whether it is the service's stable version (the one
// that takes the share of a version without healthy endpoints). Routes are not consulted: they
// match requests, and a key alone is no request. ok is false for a service the gateway does not
// serve. It reads the routing snapshot in force and is safe for concurrent use; feature flags use
// it so that a flag's "canary users" are the users the gateway sends to the canary.
func (g *Gateway) PlaceKey(service, key string) (version string, stable, ok bool) {
	snap := g.snap.Load()
	for _, s := range snap.services {
		if s.name != service {
			continue
		}
		v := s.versions[s.split.version(bucketOf(s.name, key))]
		if xv := g.experimentVersion(s, key); xv != nil {
			v = xv
		}
		return v.name, v == s.stable, true
	}
	return "", false, false
}
