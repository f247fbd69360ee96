package server

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/rollout"
)

// experimentPlacer places the units of the experiments that run: an experiment over a service's
// versions through the gateway (gateway.SetExperiments), one over a flag's variants through the
// flag's overlay (flags.Experiment). It places anew when the manager says something changed (an
// experiment started, stopped or concluded, an arm stopped), and each second, which catches a
// reload that changed an experiment's spec; a placement equal to the last is not applied again.
// Each second it also asks the judge about the guardrails (experiment.Manager.Guard).
type experimentPlacer struct {
	exps  *experiment.Manager
	gw    *gateway.Gateway
	flags *flagRollouts
	log   *slog.Logger
	// reqs sums the units' requests for the builtin metrics, flushed to the store every
	// recordEvery; reg gives control's latency boundaries.
	reqs        *experiment.RequestRecorder
	reg         *metrics.Registry
	flagService func(flag string) string

	mu   sync.Mutex
	last *placement
}

type placement struct {
	gw    []gateway.Experiment
	flags map[string]*flags.Experiment
}

// place applies the placement of the experiments that run now.
func (p *experimentPlacer) place() {
	running, err := p.exps.Running()
	if err != nil {
		p.log.Error("read the experiments that run; their units keep their last placement", "err", err)
		return
	}
	next := &placement{flags: map[string]*flags.Experiment{}}
	for _, r := range running {
		e := r.Spec
		if e.Service != "" {
			x := gateway.Experiment{Name: e.Name, Service: e.Service, Traffic: e.Traffic}
			for _, a := range e.Arms {
				_, stopped := r.State.ArmStopped(a.Name)
				x.Arms = append(x.Arms, gateway.ExperimentArm{Version: a.Version, Weight: a.Weight, Stopped: stopped})
			}
			next.gw = append(next.gw, x)
			continue
		}
		if _, taken := next.flags[e.Flag]; taken {
			continue // one experiment holds a flag: the first in the config
		}
		x := &flags.Experiment{Name: e.Name, Traffic: e.Traffic, Control: e.Arms[0].Variant}
		for _, a := range e.Arms[1:] {
			if _, stopped := r.State.ArmStopped(a.Name); stopped {
				x.Stopped = append(x.Stopped, a.Variant)
			}
		}
		next.flags[e.Flag] = x
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != nil && reflect.DeepEqual(p.last, next) {
		return
	}
	p.last = next
	p.gw.SetExperiments(next.gw)
	p.flags.setExperiments(next.flags)
	for _, r := range running {
		var stopped []string
		for _, a := range r.State.StoppedArms {
			stopped = append(stopped, a.Arm)
		}
		p.log.Info("experiment placing its units", "experiment", r.Spec.Name, "service", r.Spec.Service, "flag", r.Spec.Flag,
			"traffic", r.Spec.Traffic, "stoppedArms", stopped)
	}
}

// recordEvery is how often the units' requests are flushed to the store as events: each flush
// writes three or four events per unit that had requests.
const recordEvery = 5

// run guards and places every interval, and records the units' requests every recordEvery
// intervals, until ctx ends (flushing what is left).
func (p *experimentPlacer) run(ctx context.Context, every time.Duration) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for i := 0; ; i++ {
		if err := p.exps.Guard(); err != nil {
			p.log.Error("judge the experiments' guardrails", "err", err)
		}
		p.place()
		if i%recordEvery == 0 {
			p.record(time.Now())
		}
		select {
		case <-ctx.Done():
			p.record(time.Now())
			return
		case <-tk.C:
		}
	}
}

// record stores the units' requests since the last call and sets what to record next.
func (p *experimentPlacer) record(now time.Time) {
	if err := p.exps.AddRecords(p.reqs.Flush()); err != nil {
		p.log.Error("the units' requests since the last flush are lost to the experiments' builtin metrics", "err", err)
	}
	running, err := p.exps.Running()
	if err != nil {
		p.log.Error("read the experiments that run; their builtin metrics are recorded as before", "err", err)
		return
	}
	p.reqs.Watch(running, p.flagService, func(target, control string, q float64) time.Duration {
		h := p.reg.Window(target, control, metrics.Primary, now.Add(-5*time.Minute), now).Latency
		if h.Count() < boundarySamples {
			return 0
		}
		return h.Quantile(q)
	})
}

// boundarySamples is how many of control's requests a latency boundary needs (as the judge's).
const boundarySamples = 500

// experimentsChanged is the manager's OnChange: publish the events, place the units anew.
func (c *core) experimentsChanged(publish func([]rollout.Event)) func([]rollout.Event) {
	return func(evs []rollout.Event) {
		if len(evs) > 0 {
			publish(evs)
		}
		if c.expPlace != nil {
			c.expPlace.place()
		}
	}
}
