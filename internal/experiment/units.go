package experiment

import (
	"fmt"
	"time"

	"aviary.dev/aviary/internal/bucket"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/store"
)

// Source is what the results are read from: the store.
type Source interface {
	EachExposure(flag string, fn func(store.Exposure) error) error
	EachTracked(event string, fn func(store.TrackedEvent) error) error
}

// VersionExposures is the name under which the exposures of a service's versions are recorded,
// beside the flags' (the gateway reports each sticky unit's version; the server records it).
func VersionExposures(service string) string { return "service:" + service }

// unit is one exposed unit: its arm, when it entered, and its values per metric.
type unit struct {
	key     string
	arm     int
	exposed time.Time
	end     time.Time // when its events stop counting: its arm's stop (zero: the window's end)
	y, x    []float64 // per metric: value after exposure, value before it
	d       []float64 // per builtin metric: the requests its value is a share of (0: no value)
}

// in says whether an event at t counts for the unit (within the window and before its arm
// stopped: after that its unit got control).
func (u *unit) in(w window, t time.Time) bool {
	return w.in(t) && (u.end.IsZero() || !t.After(u.end))
}

// window is the time in which an experiment counts: from its start to its stop (zero: now).
type window struct{ start, end time.Time }

func (w window) in(t time.Time) bool {
	return !t.Before(w.start) && (w.end.IsZero() || !t.After(w.end))
}

// assign reads a flag's exposures and puts each unit in the arm of its first exposure within the
// window; a unit exposed earlier enters at the start. A unit outside the experiment's traffic
// share (package bucket's draw, as the gateway and the flag's overlay make it) is left out. It returns the units in order of key and
// the number exposed to more than one arm (they stay in their first).
func assign(e config.Experiment, st store.ExperimentState, w window, src Source) ([]*unit, map[string]*unit, int, error) {
	source, arm := e.Flag, map[string]int{}
	for i, a := range e.Arms {
		arm[a.Variant] = i
	}
	if e.Service != "" {
		source, arm = VersionExposures(e.Service), map[string]int{}
		for i, a := range e.Arms {
			arm[a.Version] = i
		}
	}
	byKey := map[string]*unit{}
	var order []*unit
	crossed := map[string]bool{}
	share := bucket.TrafficSalt(e.Name)
	err := src.EachExposure(source, func(x store.Exposure) error {
		i, ok := arm[x.Variant]
		if !ok || (!w.end.IsZero() && x.Time.After(w.end)) {
			return nil
		}
		if e.Traffic < 100 && !bucket.InShare(bucket.Of(share, x.Key), e.Traffic) {
			return nil // outside the experiment's share: it got control, and is not counted
		}
		at := x.Time
		if at.Before(w.start) {
			at = w.start
		}
		u := byKey[x.Key]
		if u == nil {
			u = &unit{key: x.Key, arm: i, exposed: at}
			byKey[x.Key] = u
			order = append(order, u)
			return nil
		}
		if u.arm != i {
			crossed[x.Key] = true
			if x.Time.Before(u.exposed) {
				u.arm, u.exposed = i, at
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read the exposures %q: %w", source, err)
	}
	// A unit of a stopped arm got control from the stop on: its events count until then. A unit
	// first exposed to a stopped arm after its stop (a placement decided just before) is not one.
	stops := map[int]time.Time{}
	for i, a := range e.Arms {
		if s, ok := st.ArmStopped(a.Name); ok {
			stops[i] = s.At
		}
	}
	if len(stops) > 0 {
		kept := order[:0]
		for _, u := range order {
			if at, ok := stops[u.arm]; ok {
				if u.exposed.After(at) {
					delete(byKey, u.key)
					continue
				}
				u.end = at
			}
			kept = append(kept, u)
		}
		order = kept
	}
	return order, byKey, len(crossed), nil
}

// measure fills each unit's value of every metric it can compute (ok[m]: event metrics, and the
// builtins of requests.go) and says, per metric, whether any unit had a value before its exposure
// (CUPED's covariate; builtins have none: the gateway's records begin with the exposure).
func measure(e config.Experiment, w window, units []*unit, byKey map[string]*unit, src Source) (ok, pre []bool, err error) {
	ok, pre = make([]bool, len(e.Metrics)), make([]bool, len(e.Metrics))
	for _, u := range units {
		u.y, u.x, u.d = make([]float64, len(e.Metrics)), make([]float64, len(e.Metrics)), make([]float64, len(e.Metrics))
	}
	cache := map[string][]store.TrackedEvent{} // each event name read once, for all its metrics
	read := func(name string) ([]store.TrackedEvent, error) {
		if evs, seen := cache[name]; seen {
			return evs, nil
		}
		var evs []store.TrackedEvent
		err := src.EachTracked(name, func(t store.TrackedEvent) error {
			if byKey[t.Unit] != nil {
				evs = append(evs, t)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the tracked events %q: %w", name, err)
		}
		cache[name] = evs
		return evs, nil
	}
	for m, spec := range e.Metrics {
		if spec.Prometheus != nil {
			continue // per arm, not per unit: see countMetric
		}
		if spec.Builtin != "" {
			if ok[m], err = measureBuiltin(e, m, spec, w, units, byKey, read); err != nil {
				return nil, nil, err
			}
			continue
		}
		ok[m] = true
		evs, err := read(spec.Event)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range evs {
			u := byKey[t.Unit]
			v := t.Value
			if spec.Kind == config.KindProportion {
				v = 1
			}
			switch {
			case t.Time.Before(u.exposed):
				pre[m] = true
				u.x[m] = accumulate(spec.Kind, u.x[m], v)
			case u.in(w, t.Time):
				u.y[m] = accumulate(spec.Kind, u.y[m], v)
			}
		}
	}
	return ok, pre, nil
}

// measureBuiltin fills each unit's value of a builtin metric: its numerator over its requests
// after its exposure (d, the requests, stays 0 for a unit without any: it has no value).
func measureBuiltin(e config.Experiment, m int, spec config.ExperimentMetric, w window, units []*unit, byKey map[string]*unit,
	read func(string) ([]store.TrackedEvent, error)) (bool, error) {
	num, den, ok := builtinEvents(e, spec)
	if !ok {
		return false, nil
	}
	for i, name := range []string{den, num} {
		evs, err := read(name)
		if err != nil {
			return false, err
		}
		for _, t := range evs {
			u := byKey[t.Unit]
			if t.Time.Before(u.exposed) || !u.in(w, t.Time) {
				continue
			}
			if i == 0 {
				u.d[m] += t.Value
			} else {
				u.y[m] += t.Value
			}
		}
	}
	for _, u := range units {
		if u.d[m] > 0 {
			u.y[m] /= u.d[m]
		}
	}
	return true, nil
}
func accumulate(k config.MetricKind, acc, v float64) float64 {
	if k == config.KindProportion {
		return 1
	}
	return acc + v
}
