package gateway

import "aviary.dev/aviary/internal/bucket"

// Experiment places the sticky users of a service for an experiment over its versions: a unit is
// in the experiment when its traffic draw falls in Traffic percent, and then gets the version of
// the arm its arm draw falls in (by the arms' weights); every other unit, and every unit of an arm
// that was stopped, gets control (the first arm's version). Both draws are package bucket's, with
// the experiment's own salts, so the experiment's results can tell who was in it. Requests without
// a sticky key, and requests a route places, are not the experiment's: the service's weights and
// routes place them.
type Experiment struct {
	Name    string
	Service string
	Traffic float64 // percent of units in the experiment
	Arms    []ExperimentArm
}

// ExperimentArm is one arm of an Experiment; the first is control.
type ExperimentArm struct {
	Version string
	Weight  float64
	// Stopped: the arm broke a guardrail (or was stopped by hand); its units get control.
	Stopped bool
}

// experimentPlan is an Experiment made ready for the request path.
type experimentPlan struct {
	trafficSalt, armSalt string
	traffic              float64
	control              string
	upper                []uint32 // upper[i]: end of arm i's buckets
	versions             []string // arm i's version as served: control for a stopped arm
}

// SetExperiments makes xs the experiments the gateway places sticky users for, replacing the last
// ones; a service with several gets the first. nil or empty: none.
func (g *Gateway) SetExperiments(xs []Experiment) {
	plans := map[string]*experimentPlan{}
	for _, x := range xs {
		if _, taken := plans[x.Service]; taken || len(x.Arms) == 0 {
			continue
		}
		p := &experimentPlan{trafficSalt: bucket.TrafficSalt(x.Name), armSalt: bucket.ArmSalt(x.Name),
			traffic: x.Traffic, control: x.Arms[0].Version}
		var total, acc float64
		for _, a := range x.Arms {
			total += a.Weight
		}
		for _, a := range x.Arms {
			acc += a.Weight
			p.upper = append(p.upper, uint32(acc/total*bucket.N))
			v := a.Version
			if a.Stopped {
				v = p.control
			}
			p.versions = append(p.versions, v)
		}
		p.upper[len(p.upper)-1] = bucket.N
		plans[x.Service] = p
	}
	g.experiments.Store(&plans)
}

// experimentVersion is the version an experiment gives a sticky key of svc, or nil when no
// experiment places svc's users (or its version is not served now).
func (g *Gateway) experimentVersion(svc *service, key string) *version {
	p := g.experiments.Load()
	if p == nil {
		return nil
	}
	x := (*p)[svc.name]
	if x == nil {
		return nil
	}
	name := x.control
	if bucket.InShare(bucket.Of(x.trafficSalt, key), x.traffic) {
		b := bucket.Of(x.armSalt, key)
		for i, u := range x.upper {
			if b < u {
				name = x.versions[i]
				break
			}
		}
	}
	for _, v := range svc.versions {
		if v.name == name {
			return v
		}
	}
	return nil
}
