package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/config"
)

// Options configures a Controller. Store, Router and Health are required.
type Options struct {
	Store  Store
	Router Router
	Health HealthSource
	// Analysis judges analysis and background checks; nil leaves them Running until a step's
	// deadline (then Inconclusive) — never a pass.
	Analysis Judge
	// Gates judges gate checks; nil leaves them Running.
	Gates Judge
	// OnEvents receives every committed batch of events (webhooks, the event stream). It must not
	// block.
	OnEvents func([]Event)
	Now      func() time.Time
	Logger   *slog.Logger
}

// Controller runs the rollouts of every managed service: the loop around the pure core. Each
// transition is committed to the store before its plan reaches the router.
type Controller struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	specs  []config.Service // effective specs, managed or not, in the config's order
	states map[string]State
	checks *Checks
}

// NewController restores every stored state. Call SetSpecs before serving.
func NewController(o Options) (*Controller, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	states, err := o.Store.States()
	if err != nil {
		return nil, fmt.Errorf("restore rollout states: %w", err)
	}
	return &Controller{o: o, log: log, states: states, checks: &Checks{Analysis: o.Analysis, Gates: o.Gates}}, nil
}

// Validate reports spec changes that would pull a version out from under live traffic: the stable
// version, or the canary of a rollout in flight, must stay among the service's versions.
func (c *Controller) Validate(services []config.Service) config.Errors {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs config.Errors
	for i, svc := range services {
		st, ok := c.states[svc.Name]
		if !ok || svc.Release == "" {
			continue
		}
		has := func(v string) bool {
			return slices.ContainsFunc(svc.Versions, func(x config.Version) bool { return x.Name == v })
		}
		p := fmt.Sprintf("services[%d].versions", i)
		if !has(st.Stable) {
			errs = append(errs, config.FieldError{Path: p, Msg: fmt.Sprintf(
				"%s is the stable version of %s and serves its traffic; keep it until a rollout has replaced it", st.Stable, svc.Name)})
		}
		if st.InFlight() && st.Canary != svc.Release && !has(st.Canary) {
			errs = append(errs, config.FieldError{Path: p, Msg: fmt.Sprintf(
				"%s is being rolled out to %s; keep it, or abort the rollout first (`aviary rollout abort %s`)", st.Canary, svc.Name, svc.Name)})
		}
	}
	return errs
}

// SetSpecs makes services the effective specs (from the config file and the API), starts, moves
// or cancels rollouts whose release changed, and applies the resulting plans.
func (c *Controller) SetSpecs(services []config.Service) error {
	return c.SetSpecsBy(services, "config")
}

// SetSpecsBy is SetSpecs on behalf of by (the API caller who applied a spec), which the events
// of the rollouts it starts or cancels name.
func (c *Controller) SetSpecsBy(services []config.Service, by string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.specs = slices.Clone(services)
	var errs []error
	for _, svc := range c.specs {
		if svc.Release == "" {
			continue
		}
		if _, ok := c.states[svc.Name]; !ok {
			if err := c.commit(svc.Name, Initial(svc, c.o.Now()), nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	c.checks.Keep(func(svc string) bool { // checks of services no longer managed are over
		return slices.ContainsFunc(c.specs, func(s config.Service) bool { return s.Name == svc && s.Release != "" })
	})
	_, err := c.tickLocked(by)
	c.apply()
	return errors.Join(append(errs, err)...)
}

// Tick moves every managed service's rollout on by what is observed now.
func (c *Controller) Tick() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed, err := c.tickLocked("")
	if changed {
		c.apply()
	}
	return err
}

// tickLocked ticks every managed service and reports whether any state changed; by, when set,
// names who changed the specs.
func (c *Controller) tickLocked(by string) (changed bool, err error) {
	var errs []error
	for _, svc := range c.specs {
		st, ok := c.states[svc.Name]
		if !ok || svc.Release == "" {
			continue
		}
		in := c.input(svc, st)
		in.By = by
		next, events := Tick(st, in)
		if next.Generation == st.Generation {
			continue
		}
		if err := c.commit(svc.Name, next, events); err != nil {
			errs = append(errs, err)
			continue
		}
		changed = true
	}
	return changed, errors.Join(errs...)
}

// Do runs a command on a service's rollout and returns its status after.
func (c *Controller) Do(service string, cmd Command) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	svc, st, err := c.managed(service)
	if err != nil {
		return Status{}, err
	}
	next, events, err := Do(st, cmd, c.input(svc, st))
	if err != nil {
		return Status{}, err
	}
	if err := c.commit(service, next, events); err != nil {
		return Status{}, err
	}
	c.apply()
	return StatusOf(c.withLive(next), svc.Release, c.o.Now()), nil
}

// NotFoundError is a service that is not there, or not managed.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

func (c *Controller) managed(service string) (config.Service, State, error) {
	i := slices.IndexFunc(c.specs, func(s config.Service) bool { return s.Name == service })
	if i < 0 {
		return config.Service{}, State{}, &NotFoundError{Msg: fmt.Sprintf("no service named %s; `aviary get services` lists them", service)}
	}
	st, ok := c.states[service]
	if !ok || c.specs[i].Release == "" {
		return config.Service{}, State{}, &NotFoundError{Msg: fmt.Sprintf(
			"%s has no release, so no rollouts: its weights are the config's; set release (or `aviary rollout start %s --version V`) to manage it", service, service)}
	}
	return c.specs[i], st, nil
}

// Status of one managed service's rollout.
func (c *Controller) Status(service string) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	svc, st, err := c.managed(service)
	if err != nil {
		return Status{}, err
	}
	return StatusOf(c.withLive(st), svc.Release, c.o.Now()), nil
}

// State of one service, as stored (false when it has none).
func (c *Controller) State(service string) (State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.states[service]
	return st, ok
}

// States returns the state of every managed service, in the order of the specs.
func (c *Controller) States() []State {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []State
	for _, svc := range c.specs {
		if st, ok := c.states[svc.Name]; ok && svc.Release != "" {
			out = append(out, st)
		}
	}
	return out
}

// Spec returns a service's effective spec.
func (c *Controller) Spec(service string) (config.Service, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.specs, func(s config.Service) bool { return s.Name == service })
	if i < 0 {
		return config.Service{}, false
	}
	return c.specs[i], true
}

// input gathers what the core needs to know about a service now.
func (c *Controller) input(svc config.Service, st State) Input {
	return Input{Now: c.o.Now(), Service: svc, Health: c.o.Health.Health(svc.Name), Verdicts: c.checks.Verdicts(svc.Name, st)}
}

// withLive shows running checks with their latest verdicts.
func (c *Controller) withLive(st State) State { return c.checks.Live(st) }

// commit writes a transition durably, then makes it the state in force. A failed write leaves the
// old state in force (and serving): nothing is served that is not on disk.
func (c *Controller) commit(service string, next State, events []Event) error {
	events, err := c.o.Store.Commit(service, next, events)
	if err != nil {
		c.log.Error("rollout state not saved; the previous state stays in force", "service", service, "err", err)
		return fmt.Errorf("save rollout state of %s: %w", service, err)
	}
	c.states[service] = next
	c.checks.Settle(service, next)
	for _, e := range events {
		c.log.Info("rollout", "service", e.Service, "event", e.Kind, "phase", e.Phase, "stable", e.Stable,
			"canary", e.Canary, "weight", e.Weight, "step", e.Step, "by", e.By, "reason", e.Reason)
	}
	if len(events) > 0 && c.o.OnEvents != nil {
		c.o.OnEvents(events)
	}
	return nil
}

// apply sends every service's plan to the router.
func (c *Controller) apply() {
	c.o.Router.Apply(c.servedLocked())
}

// Served returns the services as the router serves them now.
func (c *Controller) Served() []config.Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servedLocked()
}

func (c *Controller) servedLocked() []config.Service {
	out := make([]config.Service, 0, len(c.specs))
	for _, svc := range c.specs {
		if svc.Release != "" {
			st, ok := c.states[svc.Name]
			if !ok { // not on disk yet (its first write failed): serve the first version only
				st = Initial(svc, c.o.Now())
			}
			svc = PlanOf(st).Service(svc)
		}
		out = append(out, svc)
	}
	return out
}

// Run ticks every interval until ctx is done.
func (c *Controller) Run(ctx context.Context, interval time.Duration) {
	(&ticker{c: c, interval: interval}).run(ctx)
}

// ticker is the controller's loop; a named type for readable stack traces.
type ticker struct {
	c        *Controller
	interval time.Duration
}

func (t *ticker) run(ctx context.Context) {
	tk := time.NewTicker(t.interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if err := t.c.Tick(); err != nil {
				t.c.log.Error("rollout tick", "err", err)
			}
		}
	}
}
