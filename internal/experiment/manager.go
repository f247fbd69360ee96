package experiment

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// Store is what the Manager keeps its state and events in: *store.Store.
type Store interface {
	Source
	PutExperiment(store.ExperimentState) error
	ChangeExperiment(store.ExperimentState, []rollout.Event) ([]rollout.Event, error)
	Experiment(name string) (store.ExperimentState, bool, error)
	AddTracked([]store.TrackedEvent) (added, dropped int, err error)
	// Version changes with every write to the store (results are cached until it does).
	Version() (uint64, error)
}

// Options configure a Manager.
type Options struct {
	Store Store
	// Specs are the experiments of the config in force.
	Specs func() []config.Experiment
	Now   func() time.Time
	// Ship starts the rollout of a service's version, judged like any other (the server's rollout
	// API); by names who asked. nil: experiments cannot be concluded.
	Ship func(service, version, by string) error
	// ShipFlag starts the flag rollout of a flag's variant to every user, judged like any other
	// (the server's, through the service the flag is bound to). nil: flag experiments cannot be
	// concluded.
	ShipFlag func(flag, variant, by string) error
	// Prometheus are the options of the Prometheus queries of metrics read per arm (nil HTTPDo:
	// a client without environment proxies).
	Prometheus provider.Options
	// Judge judges the guardrails (see Guard): the server's analyzer. nil: guardrails stop no
	// arm (they still keep an arm from winning when the results show it harmed).
	Judge rollout.Judge
	// OnChange hears of every change of what runs — an experiment started, stopped or
	// concluded, an arm stopped — with the events that explain it (none for some): the server
	// places the units anew and publishes the events. nil: nobody.
	OnChange func([]rollout.Event)
}

// Manager starts and stops experiments, takes tracked events, and computes results.
type Manager struct {
	o  Options
	mu sync.Mutex // one state change at a time: start and stop read, then write

	guardMu sync.Mutex
	asked   map[string]bool // the judge's guardrail checks asked about at the last Guard

	cacheMu sync.Mutex
	cache   map[string]cachedResults // by experiment
}

// ResultsMaxAge is how stale cached results may be while the store keeps changing: results are
// computed again when the store changed since they were, but at most once per ResultsMaxAge, so a
// dashboard read every second over a busy gateway does not recompute each time. A change made
// through the Manager (start, stop, an arm stopped, conclude) is seen at once.
const ResultsMaxAge = 5 * time.Second

type cachedResults struct {
	res     Results
	version uint64
	state   store.ExperimentState
}

// New returns a Manager.
func New(o Options) *Manager { return &Manager{o: o} }

// ErrNotFound is returned for a name that is not an experiment of the config.
var ErrNotFound = errors.New("no such experiment in the config: GET /api/v1/experiments lists them")

// ErrNotStarted is returned for the results of an experiment that has not started.
var ErrNotStarted = errors.New("the experiment has not started: start it with aviary experiment start NAME")

// Summary is one experiment in a list.
type Summary struct {
	Name    string                `json:"name"`
	Service string                `json:"service,omitempty"`
	Flag    string                `json:"flag,omitempty"`
	Arms    []string              `json:"arms"`
	Phase   store.ExperimentPhase `json:"phase,omitempty"` // empty: not started
	Started time.Time             `json:"started,omitzero"`
	Stopped time.Time             `json:"stopped,omitzero"`
}

func (m *Manager) spec(name string) (config.Experiment, error) {
	for _, e := range m.o.Specs() {
		if e.Name == name {
			return e, nil
		}
	}
	return config.Experiment{}, fmt.Errorf("experiment %q: %w", name, ErrNotFound)
}

// List lists the config's experiments with their phases.
func (m *Manager) List() ([]Summary, error) {
	out := []Summary{}
	for _, e := range m.o.Specs() {
		s := Summary{Name: e.Name, Service: e.Service, Flag: e.Flag}
		for _, a := range e.Arms {
			s.Arms = append(s.Arms, a.Name)
		}
		st, ok, err := m.o.Store.Experiment(e.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			s.Phase, s.Started, s.Stopped = st.Phase, st.Started, st.Stopped
		}
		out = append(out, s)
	}
	return out, nil
}

// StartAll starts every experiment of the config that never started: an experiment in the config
// file runs from the moment the server first reads it.
func (m *Manager) StartAll() error {
	var errs []error
	for _, e := range m.o.Specs() {
		if _, err := m.Start(e.Name); err != nil && !errors.Is(err, ErrStopped) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrStopped is returned when starting a stopped experiment.
var ErrStopped = errors.New("a stopped experiment stays stopped, so its results stay what they were; copy it under a new name to run it again")

// Start starts an experiment; starting one that runs is a no-op.
func (m *Manager) Start(name string) (store.ExperimentState, error) {
	if _, err := m.spec(name); err != nil {
		return store.ExperimentState{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok, err := m.o.Store.Experiment(name)
	switch {
	case err != nil:
		return st, err
	case ok && st.Phase == store.ExperimentRunning:
		return st, nil
	case ok:
		return st, fmt.Errorf("start experiment %q: it was %s at %s: %w", name, st.Phase, st.Stopped.Format(time.RFC3339), ErrStopped)
	}
	st = store.ExperimentState{Name: name, Phase: store.ExperimentRunning, Started: m.o.Now().UTC()}
	if err := m.o.Store.PutExperiment(st); err != nil {
		return st, err
	}
	m.changed(nil)
	return st, nil
}

// Stop stops a running experiment: units and events after now no longer count.
func (m *Manager) Stop(name string) (store.ExperimentState, error) {
	if _, err := m.spec(name); err != nil {
		return store.ExperimentState{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok, err := m.o.Store.Experiment(name)
	switch {
	case err != nil:
		return st, err
	case !ok:
		return st, fmt.Errorf("stop experiment %q: %w", name, ErrNotStarted)
	case st.Phase != store.ExperimentRunning:
		return st, nil
	}
	st.Phase, st.Stopped = store.ExperimentStopped, m.o.Now().UTC()
	if err := m.o.Store.PutExperiment(st); err != nil {
		return st, err
	}
	m.ended(name)
	return st, nil
}

// ended: an experiment no longer runs; its units go back to the service's or the flag's own
// placement, and its guardrail evidence goes.
func (m *Manager) ended(name string) {
	if m.o.Judge != nil {
		m.evidenceEnded(name)
	}
	m.changed(nil)
}

// ErrCannotConclude is returned when conclude cannot ship the arm it is asked to.
var ErrCannotConclude = errors.New("cannot conclude")

// Conclude ends an experiment by shipping one arm: for arms that are versions, a rollout of that
// version to 100% starts, judged like any other; for variants of a flag, a flag rollout of the
// variant to every user; shipping control starts nothing.
func (m *Manager) Conclude(name, arm string) (store.ExperimentState, error) {
	e, err := m.spec(name)
	if err != nil {
		return store.ExperimentState{}, err
	}
	i := slices.IndexFunc(e.Arms, func(a config.ExperimentArm) bool { return a.Name == arm })
	switch {
	case i < 0:
		return store.ExperimentState{}, fmt.Errorf("%w experiment %q with arm %q: it has no such arm; name one of its arms", ErrCannotConclude, name, arm)
	case e.Service == "" && m.o.ShipFlag == nil:
		return store.ExperimentState{}, fmt.Errorf("%w experiment %q: this server cannot start flag rollouts; ship %q by making it the flag's default (aviary flag set), then stop the experiment", ErrCannotConclude, name, e.Arms[i].Variant)
	case e.Service != "" && m.o.Ship == nil:
		return store.ExperimentState{}, fmt.Errorf("%w experiment %q: this server cannot start rollouts", ErrCannotConclude, name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok, err := m.o.Store.Experiment(name)
	switch {
	case err != nil:
		return st, err
	case !ok:
		return st, fmt.Errorf("conclude experiment %q: %w", name, ErrNotStarted)
	case st.Phase == store.ExperimentConcluded:
		return st, fmt.Errorf("%w experiment %q: it was concluded already, shipping %q", ErrCannotConclude, name, st.Shipped)
	}
	switch {
	case i == 0:
	case e.Service != "":
		if err := m.o.Ship(e.Service, e.Arms[i].Version, "experiment "+name); err != nil {
			return st, fmt.Errorf("conclude experiment %q: start the rollout of %s to version %s: %w", name, e.Service, e.Arms[i].Version, err)
		}
	default:
		if err := m.o.ShipFlag(e.Flag, e.Arms[i].Variant, "experiment "+name); err != nil {
			return st, fmt.Errorf("conclude experiment %q: start the flag rollout of %s to variant %s: %w", name, e.Flag, e.Arms[i].Variant, err)
		}
	}
	if st.Stopped.IsZero() {
		st.Stopped = m.o.Now().UTC()
	}
	st.Phase, st.Shipped = store.ExperimentConcluded, arm
	if err := m.o.Store.PutExperiment(st); err != nil {
		return st, err
	}
	m.ended(name)
	return st, nil
}

func (m *Manager) started(name string) (config.Experiment, store.ExperimentState, error) {
	e, err := m.spec(name)
	if err != nil {
		return e, store.ExperimentState{}, err
	}
	st, ok, err := m.o.Store.Experiment(name)
	if err == nil && !ok {
		err = fmt.Errorf("experiment %q: %w", name, ErrNotStarted)
	}
	return e, st, err
}

// Results computes an experiment's results now, or returns those computed last when the store
// has not changed since, or when they are younger than ResultsMaxAge (see there).
func (m *Manager) Results(name string) (Results, error) {
	e, st, err := m.started(name)
	if err != nil {
		return Results{}, err
	}
	version, err := m.o.Store.Version()
	if err != nil {
		return Results{}, err
	}
	now := m.o.Now().UTC()
	m.cacheMu.Lock()
	c, ok := m.cache[name]
	m.cacheMu.Unlock()
	// Counters read from Prometheus change without the store: such results live ResultsMaxAge.
	fromStore := !slices.ContainsFunc(e.Metrics, func(m config.ExperimentMetric) bool { return m.Prometheus != nil })
	if ok && sameState(c.state, st) && ((fromStore && c.version == version) || now.Sub(c.res.At) < ResultsMaxAge) {
		return c.res, nil
	}
	res, err := Compute(e, st, promSource{Source: m.o.Store, o: m.o.Prometheus}, now)
	if err != nil {
		return res, err
	}
	m.cacheMu.Lock()
	if m.cache == nil {
		m.cache = map[string]cachedResults{}
	}
	m.cache[name] = cachedResults{res: res, version: version, state: st}
	m.cacheMu.Unlock()
	return res, nil
}

// sameState says whether two states of an experiment give the same results from the same data.
func sameState(a, b store.ExperimentState) bool {
	return a.Phase == b.Phase && a.Started.Equal(b.Started) && a.Stopped.Equal(b.Stopped) && a.Shipped == b.Shipped &&
		len(a.StoppedArms) == len(b.StoppedArms)
}

// Units writes an experiment's unit-level CSV to w.
func (m *Manager) Units(name string, w io.Writer) error {
	e, st, err := m.started(name)
	if err != nil {
		return err
	}
	return WriteUnits(w, e, st, m.o.Store)
}

// Limits of POST /api/v1/track.
const (
	MaxTrackBatch = 1000
	maxNameLen    = 256
)

// ErrInvalidBatch marks the errors of a batch of events that Track refused.
var ErrInvalidBatch = errors.New("the batch of events was refused, none stored")

// Track checks a batch of events and stores the new ones. An event without time gets now. It
// returns every bad event's error at once, storing nothing then.
func (m *Manager) Track(es []store.TrackedEvent) (added, dropped int, err error) {
	if len(es) == 0 || len(es) > MaxTrackBatch {
		return 0, 0, fmt.Errorf("%w: %d events: send 1 to %d events per batch", ErrInvalidBatch, len(es), MaxTrackBatch)
	}
	now := m.o.Now().UTC()
	var errs []error
	for i := range es {
		e := &es[i]
		for _, f := range []struct{ name, v string }{{"id", e.ID}, {"unit", e.Unit}, {"event", e.Event}} {
			if f.v == "" || len(f.v) > maxNameLen {
				errs = append(errs, fmt.Errorf("events[%d].%s: %d characters; give 1 to %d (the id makes a retried batch count once)", i, f.name, len(f.v), maxNameLen))
			}
		}
		if err := checkEventName(i, e.Event); err != nil {
			errs = append(errs, err)
		}
		if e.Time.IsZero() {
			e.Time = now
		}
	}
	if len(errs) > 0 {
		return 0, 0, errors.Join(append([]error{ErrInvalidBatch}, errs...)...)
	}
	return m.o.Store.AddTracked(es)
}
