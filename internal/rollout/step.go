package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/redact"
)

// stepDone reports whether the current (waiting) step is over; it may abort or pause the rollout.
func (c *change) stepDone() bool {
	s := c.s
	st := s.Steps[s.StepIndex]
	if st.instant() {
		return true
	}
	if !s.PausedAt.IsZero() {
		// A person paused: nothing moves on, but a failing check still aborts.
		if st.Kind == Analysis || st.Kind == Gate {
			c.judge(st, false)
		}
		return false
	}
	switch st.Kind {
	case Pause:
		return st.Duration > 0 && !c.now.Before(s.StepStartedAt.Add(st.Duration))
	case Analysis, Gate:
		return c.judge(st, true)
	case WaitReady:
		h := c.in.Health[s.Canary]
		if h.Endpoints > 0 && h.Ready == h.Endpoints {
			return true
		}
		c.deadline(fmt.Sprintf("%d of %d endpoints of %s ready", h.Ready, h.Endpoints, s.Canary))
		return false
	case RollStep:
		if c.roll(st) {
			return true
		}
		if s.InFlight() {
			c.deadline(fmt.Sprintf("%d of %d endpoints of %s admitted, %d%% of traffic", s.Admitted, endpointCount(c.in.Service, s.Canary), s.Canary, s.Weight))
		}
		return false
	}
	return true
}

// deadline aborts a step that has waited for readiness without progress for too long.
func (c *change) deadline(where string) {
	st := c.in.Service.Strategy
	if st == nil || st.ProgressDeadline.Duration <= 0 { // defaulted by config: unset only without a release
		return
	}
	limit := st.ProgressDeadline.Duration
	since := c.s.ProgressAt
	if since.IsZero() {
		since = c.s.StepStartedAt // a state stored before ProgressAt existed
	}
	if waited := c.now.Sub(since); waited >= limit {
		c.abort(config.EventAborted, fmt.Sprintf("no progress for %s (progressDeadline): %s", roundFor(waited), where))
	}
}

// judge reads the verdict of the current step's check: a pass ends the step, a failure aborts,
// an inconclusive verdict (or none by the deadline) pauses for a person.
func (c *change) judge(st Step, mayPass bool) bool {
	s := c.s
	i := slices.IndexFunc(s.Checks, func(ch Check) bool { return ch.Step == s.StepIndex && ch.Kind != BackgroundAnalysis })
	if i < 0 {
		return true // its check is gone: a promote ended it
	}
	ch := s.Checks[i]
	v, ok := c.in.Verdicts[ch.ID]
	what := "analysis " + joinNames(ch.Templates)
	if ch.Kind == GateCheck {
		what = "gate " + redact.URL(ch.Gate.URL)
	}
	switch {
	case ok && v.Phase == Fail:
		kind := config.EventAnalysisFailed
		if ch.Kind == GateCheck {
			kind = config.EventGateFailed
		}
		c.abort(kind, what+" failed: "+v.Message)
		return false
	case ok && v.Phase == Pass && mayPass:
		kind := config.EventAnalysisPassed
		if ch.Kind == GateCheck {
			kind = config.EventGatePassed
		}
		s.Checks = slices.Delete(s.Checks, i, i+1)
		c.emit(kind, what+" passed: "+v.Message)
		return true
	case ok && v.Phase == Inconclusive, mayPass && !ch.Deadline.IsZero() && !c.now.Before(ch.Deadline):
		// The deadline does not run while a person pauses (mayPass is false): resume moves it on.
		if hasReason(s.PauseReasons, InconclusiveReason) {
			return false
		}
		why := v.Message
		if why == "" {
			why = "no verdict by the step's deadline"
		}
		s.PauseReasons = append(s.PauseReasons, PauseReason{Kind: InconclusiveReason, Since: c.now})
		c.setPhase()
		c.emit(config.EventAnalysisInconclusive, fmt.Sprintf("%s is inconclusive (%s); promote to go on, or abort", what, why))
	}
	return false
}

// roll admits the new version's endpoints a batch at a time: each admitted endpoint that is ready
// takes its share of traffic and retires its share of the old version's endpoints.
func (c *change) roll(st Step) bool {
	s := c.s
	n, m := endpointCount(c.in.Service, s.Canary), endpointCount(c.in.Service, s.Stable)
	if n == 0 {
		return true
	}
	healthReady := c.in.Health[s.Canary].Ready
	for {
		ready := min(healthReady, s.Admitted)
		weight := (100*ready + n/2) / n
		withdrawn := m * ready / n
		if ready < n {
			withdrawn = min(withdrawn, m-1) // the old version keeps an endpoint until the new one is all ready
		}
		if weight != s.Weight || withdrawn != s.Withdrawn {
			s.Weight, s.Withdrawn, s.ProgressAt = weight, withdrawn, c.now
			c.emit(config.EventRolled, fmt.Sprintf("%d of %d endpoints of %s ready: it takes %d%%, %d of %d endpoints of %s withdrawn",
				ready, n, s.Canary, weight, withdrawn, m, s.Stable))
		}
		if ready < s.Admitted || s.Admitted >= n {
			return ready == n
		}
		s.Admitted = min(n, s.Admitted+st.Weight)
		c.emit(config.EventRolled, fmt.Sprintf("admitting endpoints %d..%d of %s; waiting for them to be ready", ready+1, s.Admitted, s.Canary))
		if healthReady <= ready {
			return false // the newly admitted endpoints are not in the gateway yet: next tick
		}
	}
}

func endpointCount(svc config.Service, version string) int {
	for _, v := range svc.Versions {
		if v.Name == version {
			return len(v.Endpoints)
		}
	}
	return 0
}

func scaleDownDelay(svc config.Service) time.Duration {
	if st := svc.Strategy; st != nil { // defaulted by config
		return st.ScaleDownDelay.Duration
	}
	return 0
}

func hasReason(rs []PauseReason, kind string) bool {
	return slices.ContainsFunc(rs, func(r PauseReason) bool { return r.Kind == kind })
}

func dropReason(rs []PauseReason, kinds ...string) []PauseReason {
	return slices.DeleteFunc(rs, func(r PauseReason) bool { return slices.Contains(kinds, r.Kind) })
}

func keepBackground(cs []Check) []Check {
	return slices.DeleteFunc(cs, func(ch Check) bool { return ch.Kind != BackgroundAnalysis })
}

func joinNames(ns []string) string { return strings.Join(ns, ", ") }

// clone copies the state deeply enough that a change never writes into the caller's slices.
func (s State) clone() State {
	s.Steps = slices.Clone(s.Steps)
	s.PauseReasons = slices.Clone(s.PauseReasons)
	s.Checks = slices.Clone(s.Checks)
	return s
}
