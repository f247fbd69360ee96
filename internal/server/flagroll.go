package server

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/rollout"
)

// A flag rollout is a rollout of the controller like a service's: a managed "service" named
// flag:KEY whose versions are the flag's variants (the default variant first, as the stable) and
// whose release is the variant being rolled out. Its plan does not reach the gateway's routing: its
// weight becomes the flag's rollout overlay (the share of users, by their sticky keys, who get the
// variant), and the judge reads the variants' measurements, which the gateway takes under
// flag:KEY/VARIANT for every request of the service the flag is bound to.

// flagSource is what flag rollouts need of the flags served: the set in force, a signal when it
// changes, and a place for the overlays.
type flagSource interface {
	Current() *flags.Set
	Changed() <-chan struct{}
	SetOverlays(map[string]flags.Overlay) error
}

// isFlagRollout says whether a managed name is a flag's rollout.
func isFlagRollout(name string) bool { return strings.HasPrefix(name, flags.RolloutSalt) }

// flagRolloutSpecs are the rollouts that the services' flags with a release ask for, in the form
// the controller takes; errs says what does not fit the flags in force.
func flagRolloutSpecs(services []config.Service, set *flags.Set) (out []config.Service, errs []string) {
	for i, svc := range services {
		for j, sf := range svc.Flags {
			if sf.Release == "" {
				continue
			}
			p := fmt.Sprintf("services[%d].flags[%d]", i, j)
			f, ok := set.Flag(sf.Key)
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("%s.key: flag %q is not defined in any flag source; define it (flags.files, or aviary flag set) before rolling it out", p, sf.Key))
				continue
			case f.DefaultVariant == "":
				errs = append(errs, fmt.Sprintf("%s.key: flag %q has no defaultVariant; a rollout needs one to keep, and to return users to", p, sf.Key))
				continue
			}
			if _, ok := f.Variants[sf.Release]; !ok {
				errs = append(errs, fmt.Sprintf("%s.release: %q is not a variant of flag %q (%s)", p, sf.Release, sf.Key,
					strings.Join(slices.Sorted(maps.Keys(f.Variants)), ", ")))
				continue
			}
			versions := []config.Version{{Name: f.DefaultVariant}}
			if sf.Release != f.DefaultVariant {
				versions = append(versions, config.Version{Name: sf.Release})
			}
			out = append(out, config.Service{Name: flags.RolloutSalt + sf.Key, Versions: versions,
				Release: sf.Release, Strategy: sf.Strategy})
		}
	}
	return out, errs
}

// overlayOf is the flag rollout's share as its plan serves it: the variant other than the flag's
// default that has weight (after a completed rollout, the released variant at 100).
func overlayOf(served config.Service, def string) *flags.Rollout {
	for _, t := range served.Traffic {
		if t.Version != def && t.Weight > 0 {
			return &flags.Rollout{Variant: t.Version, Percent: t.Weight}
		}
	}
	return nil
}

// flagRouter is the controller's router: services go to the gateway, flag rollouts to the flags'
// overlays.
type flagRouter struct {
	gw *gateway.Gateway
	fr *flagRollouts
}

func (r flagRouter) Apply(services []config.Service) {
	var real []config.Service
	rolls := map[string]*flags.Rollout{}
	set := r.fr.src.Current()
	for _, s := range services {
		if !isFlagRollout(s.Name) {
			real = append(real, s)
			continue
		}
		key := strings.TrimPrefix(s.Name, flags.RolloutSalt)
		if f, ok := set.Flag(key); ok {
			rolls[key] = overlayOf(s, f.DefaultVariant)
		}
	}
	r.gw.Apply(real)
	r.fr.setRollouts(real, rolls)
}

// flagHealth answers for flag rollouts (a variant has no endpoints: it is always ready) and asks
// the gateway for services.
type flagHealth struct {
	gw  gatewayHealth
	src flagSource
}

func (h flagHealth) Health(service string) map[string]rollout.Health {
	if !isFlagRollout(service) {
		return h.gw.Health(service)
	}
	f, ok := h.src.Current().Flag(strings.TrimPrefix(service, flags.RolloutSalt))
	if !ok {
		return nil
	}
	out := make(map[string]rollout.Health, len(f.Variants))
	for v := range f.Variants {
		out[v] = rollout.Health{Endpoints: 1, Available: 1, Ready: 1}
	}
	return out
}

// flagRollouts binds the services' flags to the gateway (per-request evaluation and per-variant
// measurement) and the flag rollouts' plans to the flags' overlays.
type flagRollouts struct {
	gw  *gateway.Gateway
	src flagSource
	ev  *flags.Evaluator
	log *slog.Logger

	mu          sync.Mutex
	services    []config.Service             // as served, for the flags they bind
	rollouts    map[string]*flags.Rollout    // by flag key
	experiments map[string]*flags.Experiment // the flag experiments' holds, by flag key
}

// setRollouts takes the controller's served plan: the services (whose flags the gateway evaluates)
// and each flag rollout's share.
func (fr *flagRollouts) setRollouts(services []config.Service, rolls map[string]*flags.Rollout) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.services, fr.rollouts = services, rolls
	fr.overlayLocked()
	fr.bindLocked()
}

// setExperiments takes the flag experiments' holds on their flags.
func (fr *flagRollouts) setExperiments(xs map[string]*flags.Experiment) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.experiments = xs
	fr.overlayLocked()
}

// overlayLocked gives the flags their overlays: the services they are bound to, the flag
// rollouts' shares and the experiments' holds. fr.mu must be held.
func (fr *flagRollouts) overlayLocked() {
	ov := map[string]flags.Overlay{}
	for _, s := range fr.services {
		for _, sf := range s.Flags {
			ov[sf.Key] = flags.Overlay{Service: s.Name, Rollout: fr.rollouts[sf.Key]}
		}
	}
	for key, x := range fr.experiments {
		o := ov[key]
		o.Experiment = x
		ov[key] = o
	}
	if err := fr.src.SetOverlays(ov); err != nil {
		fr.log.Error("apply the flag rollouts' shares and the experiments' holds; the flags keep their last ones", "err", err)
	}
}

// rebind evaluates the services' flags against the set in force (after the flags changed).
func (fr *flagRollouts) rebind() {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.bindLocked()
}

func (fr *flagRollouts) bindLocked() {
	set := fr.src.Current()
	by := map[string][]gateway.RequestFlag{}
	for _, s := range fr.services {
		for _, sf := range s.Flags {
			f, ok := set.Flag(sf.Key)
			if !ok {
				continue // not defined (yet): nothing to evaluate or measure
			}
			by[s.Name] = append(by[s.Name], gateway.RequestFlag{Key: sf.Key, Header: sf.Header, Measured: true,
				Variants: slices.Sorted(maps.Keys(f.Variants)), Variant: fr.variant(sf)})
		}
	}
	fr.gw.SetFlags(by)
}

// variant evaluates a service's flag for a request against the set in force.
func (fr *flagRollouts) variant(sf config.ServiceFlag) func(string, *http.Request) (string, bool) {
	return requestVariant(fr.ev, fr.src.Current, sf)
}

// requestVariant evaluates a flag for a request: the targeting key is the service's sticky key, and
// the flag's context headers add attributes. A flag without context headers that is static, in a
// flag rollout's share or a plain fractional split costs no allocation (flags.EvaluateKey).
func requestVariant(ev *flags.Evaluator, current func() *flags.Set, sf config.ServiceFlag) func(string, *http.Request) (string, bool) {
	key, attrs := sf.Key, sf.Context
	return func(tk string, r *http.Request) (string, bool) {
		var ctx flags.Context
		for attr, h := range attrs {
			if v := r.Header.Get(h); v != "" {
				if ctx == nil {
					ctx = flags.Context{}
				}
				ctx[attr] = v
			}
		}
		res := ev.EvaluateKey(current(), key, tk, ctx)
		return res.Variant, res.Variant != ""
	}
}

// placer gives a flag's targeting $aviary.version and $aviary.track: the version the gateway gives
// the targeting key in the flag's service (the targeting key and the sticky key share one bucket
// space), and its track: canary when it is the canary of the service's rollout in flight, or, for a
// service whose weights are set by hand, any version but its stable (first) one.
type placer struct {
	gw   *gateway.Gateway
	ctrl *rollout.Controller
}

func (p placer) Place(service, key string) (string, flags.Track, bool) {
	v, stable, ok := p.gw.PlaceKey(service, key)
	if !ok {
		return "", "", false
	}
	if st, managed := p.ctrl.State(service); managed {
		stable = !st.InFlight() || st.Canary != v
	}
	if stable {
		return v, flags.TrackStable, true
	}
	return v, flags.TrackCanary, true
}

// followFlags keeps up with the flags in force until the returned stop is called: it evaluates the
// services' flags against the new set, applies the specs again (a flag rollout's variants come from
// its flag), and aborts the rollout of a flag that the kill switch turned off.
func (c *core) followFlags() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		last := definitions(c.flags.Current())
		for {
			select {
			case <-quit:
				return
			case <-c.flags.Changed():
			}
			// A flag rollout's step changes only its share (an overlay), which evaluations read
			// from the set in force: nothing to bind or apply again.
			if d := definitions(c.flags.Current()); d != last {
				last = d
				c.flagRolls.rebind()
				c.live.reapply("flags")
				c.killSwitchAborts()
			}
		}
	}()
	return func() { close(quit); <-done }
}

// killSwitchAborts aborts the rollouts in flight of disabled flags: the kill switch serves the
// callers' defaults at once, and the rollout must not go on to give the variant to everyone.
func (c *core) killSwitchAborts() {
	set := c.flags.Current()
	for _, st := range c.ctrl.States() {
		if !isFlagRollout(st.Service) || !st.InFlight() {
			continue
		}
		key := strings.TrimPrefix(st.Service, flags.RolloutSalt)
		if f, ok := set.Flag(key); !ok || f.State != flags.StateDisabled {
			continue
		}
		by := "kill switch"
		if v, err := c.flags.Get(key); err == nil && v.KillSwitch != nil {
			by = v.KillSwitch.By
		}
		_, err := c.ctrl.Do(st.Service, rollout.Command{Kind: rollout.Abort, By: by,
			Reason: "flag " + key + " was disabled (kill switch)"})
		if err != nil {
			c.flagRolls.log.Warn("abort the rollout of a disabled flag", "flag", key, "err", err)
		}
	}
}

// trackOf is the track of a targeting key in the service of a flag, for its exposure records: ""
// when the flag has no service or the service no stickiness.
func (c *core) trackOf(flag, key string) string {
	f, ok := c.flags.Current().Flag(flag)
	if !ok || f.Service == "" || c.eval.Placer == nil {
		return ""
	}
	if _, track, ok := c.eval.Placer.Place(f.Service, key); ok {
		return string(track)
	}
	return ""
}

// definitions is what the services' flags and the flag rollouts take from the flags in force: each
// flag's key, state, default variant and variants (not targeting, which evaluations read from the
// set in force, nor a rollout's share).
func definitions(set *flags.Set) string {
	var b strings.Builder
	for _, k := range set.Keys() {
		f, _ := set.Flag(k)
		fmt.Fprintf(&b, "%s|%s|%s|%s\n", k, f.State, f.DefaultVariant, strings.Join(slices.Sorted(maps.Keys(f.Variants)), ","))
	}
	return b.String()
}
