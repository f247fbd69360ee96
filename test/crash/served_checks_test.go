//go:build e2e

package crash_test

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// pauseTolerance is how far the remaining time of a timed pause after a restart may be from what
// the stored step start says; a restarted pause would be off by the time already waited.
const pauseTolerance = 500 * time.Millisecond

// lateTolerance is how long after its due time a timed pause may end while aviary is up: a tick
// (250 ms) and some scheduling slack.
const lateTolerance = 750 * time.Millisecond

// tally counts what the test did and checked.
type tally struct {
	kills, startupKills, restarts         int
	longOutages                           int
	storeChecks, eventsChecked            int
	sameGeneration, movedOn               int
	pauseChecks, weightChecks, weightMiss int
}

// restartCheck compares what a restarted aviary serves with what its store held.
type restartCheck struct {
	api   *client
	ready time.Time // when the restarted aviary first said it was ready
	seen  *observer // every status read is one aviary committed
	view  storeView
	tally *tally
	bad   []string
}

func (c *restartCheck) badf(format string, args ...any) {
	c.bad = append(c.bad, fmt.Sprintf(format, args...))
}

// run checks the rollout status, the timed pause and the gateway's weights.
func (c *restartCheck) run() []string {
	before := time.Now()
	st, err := c.api.status()
	after := time.Now()
	if err != nil {
		c.badf("read the rollout status after the restart: %v", err)
		return c.bad
	}
	c.seen.see(st)
	stored := c.view.state
	if st.Release != c.view.release {
		c.badf("after the restart the release is %s, but the store says %s (the spec applied through the API was lost or overridden)", st.Release, c.view.release)
	}
	switch {
	case st.Generation < stored.Generation:
		c.badf("after the restart the status has generation %d, older than the stored %d: aviary went back in time\nserved: %s\nstored: %s",
			st.Generation, stored.Generation, statusLine(st), stateLine(stored))
	case st.Generation == stored.Generation:
		c.tally.sameGeneration++
		if msg := compareStatus("after the restart, the status", st, stored); msg != "" {
			c.bad = append(c.bad, msg)
		}
		c.checkPause(st, before, after)
		c.checkPlan(st)
	default:
		c.tally.movedOn++
		c.checkMovedOn()
	}
	c.checkGateway()
	return c.bad
}

// checkPause: a timed pause resumes with the time it had left, measured from its stored start.
func (c *restartCheck) checkPause(st rollout.Status, before, after time.Time) {
	s := c.view.state
	if !s.InFlight() || s.StepIndex >= len(s.Steps) {
		return
	}
	step := s.Steps[s.StepIndex]
	if step.Kind != rollout.Pause || step.Duration <= 0 {
		return
	}
	c.tally.pauseChecks++
	left := func(now time.Time) time.Duration {
		if !s.PausedAt.IsZero() {
			now = s.PausedAt // paused by a person: the clock stands still
		}
		return max(0, s.StepStartedAt.Add(step.Duration).Sub(now))
	}
	if st.StepRemaining == nil {
		c.badf("after the restart, step %d (%s) shows no remaining time; stored: %s", s.StepIndex, step.Text, stateLine(s))
		return
	}
	got := time.Duration(*st.StepRemaining * float64(time.Second))
	lo, hi := left(after)-pauseTolerance, left(before)+pauseTolerance
	if got < lo || got > hi {
		c.badf("after the restart, the %s pause of step %d has %s left; from its stored start (%s) it should have %s..%s (±%s): the pause restarted or lost time",
			step.Duration, s.StepIndex, got.Round(time.Millisecond), s.StepStartedAt.Format("15:04:05.000"),
			left(after).Round(time.Millisecond), left(before).Round(time.Millisecond), pauseTolerance)
	}
}

// checkPlan: the segment route and mirror are the stored ones.
func (c *restartCheck) checkPlan(st rollout.Status) {
	s := c.view.state
	if jsonOf(st.Route) != jsonOf(s.Route) || math.Abs(st.MirrorPercent-s.Mirror) > 1e-9 {
		c.badf("after the restart, the route %s and mirror %.0f%% differ from the stored route %s and mirror %.0f%%",
			jsonOf(st.Route), st.MirrorPercent, jsonOf(s.Route), s.Mirror)
	}
}

// checkMovedOn: when the rollout moved on during the restart, only the controller moved it, from
// where the store left it (or, when the kill fell between storing a new release and acting on it,
// the spec that was stored).
func (c *restartCheck) checkMovedOn() {
	evs, err := c.api.eventsAfter(c.view.lastSeq())
	if err != nil {
		c.badf("read the events after the restart: %v", err)
		return
	}
	specMoved := c.view.release != c.view.state.SpecRelease
	for _, e := range evs {
		if e.By == "controller" || specMoved { // a stored release not yet acted on is acted on now
			continue
		}
		c.badf("after the restart, event %d %s by %q (%s): nobody but the controller should have moved the rollout; stored: %s",
			e.Seq, e.Kind, e.By, e.Reason, stateLine(c.view.state))
	}
	c.checkPauseEnd(evs)
	all := append(append([]rollout.Event{}, c.view.events...), evs...)
	for _, msg := range checkEventLog(all) {
		c.badf("after the restart: %s", msg)
	}
}

// checkPauseEnd: a timed pause that ran out while aviary was down ends as soon as aviary is back,
// and one that runs out later ends on time: it neither starts over nor waits for the downtime.
func (c *restartCheck) checkPauseEnd(evs []rollout.Event) {
	s := c.view.state
	if !s.InFlight() || !s.PausedAt.IsZero() || s.StepIndex >= len(s.Steps) {
		return
	}
	step := s.Steps[s.StepIndex]
	if step.Kind != rollout.Pause || step.Duration <= 0 {
		return
	}
	deadline := s.StepStartedAt.Add(step.Duration)
	for _, e := range evs {
		if attemptStarts[e.Kind] || e.Kind == "Promoted" || attemptEnds[e.Kind] && e.Kind != "Completed" {
			return // a person or an abort ended the pause, not the clock
		}
		if e.Kind != "StepStarted" && e.Kind != "Completed" {
			continue
		}
		c.tally.pauseChecks++
		if latest := later(deadline, c.ready).Add(lateTolerance); e.Time.After(latest) {
			c.badf("after the restart, the %s pause of step %d (due %s, aviary ready at %s) ended only at %s: it started over or waited out the downtime",
				step.Duration, s.StepIndex, deadline.Format("15:04:05.000"), c.ready.Format("15:04:05.000"), e.Time.Format("15:04:05.000"))
		}
		return
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkGateway: the gateway serves the weights of the status in force. Status, gateway, status:
// when both statuses have the same generation, the gateway's view in between belongs to it.
func (c *restartCheck) checkGateway() {
	for try := 0; try < 5; try++ {
		s1, err1 := c.api.status()
		svc, err2 := c.api.served()
		s2, err3 := c.api.status()
		if err := firstErr(err1, err2, err3); err != nil {
			c.badf("read the gateway's view after the restart: %v", err)
			return
		}
		c.seen.see(s2)
		if s1.Generation != s2.Generation {
			continue
		}
		c.tally.weightChecks++
		if msg := compareGateway(s1, svc); msg != "" {
			c.bad = append(c.bad, msg)
		}
		return
	}
	c.tally.weightMiss++
}

// compareGateway checks the gateway's weights, segment route and mirror against a status.
func compareGateway(st rollout.Status, svc servedService) string {
	want := map[string]int{st.StableVersion: 100 - st.CanaryWeight}
	if st.CanaryVersion != "" {
		want[st.CanaryVersion] = st.CanaryWeight
	}
	got := map[string]int{}
	for _, v := range svc.Versions {
		got[v.Name] = v.Weight
	}
	ok := svc.Stable == st.StableVersion
	for v, w := range want {
		if g, has := got[v]; !has || g != w {
			ok = false
		}
	}
	for v, w := range got {
		if _, has := want[v]; !has && w != 0 {
			ok = false
		}
	}
	// The config has no routes or mirror of its own: all there is comes from the rollout.
	if wantRoute := st.Route != nil && st.CanaryVersion != ""; wantRoute != hasRoute(svc, st) || len(svc.Routes) > 1 {
		ok = false
	}
	if wantMirror := st.MirrorPercent > 0 && st.CanaryVersion != ""; wantMirror != (svc.Mirror != nil) ||
		wantMirror && (svc.Mirror.Version != st.CanaryVersion || svc.Mirror.Percent != st.MirrorPercent) {
		ok = false
	}
	if ok {
		return ""
	}
	return fmt.Sprintf("the gateway serves stable %s with weights %v, routes %s, mirror %s; the rollout status (%s, route %s, mirror %.0f%%) asks for weights %v",
		svc.Stable, got, jsonOf(svc.Routes), jsonOf(svc.Mirror), statusLine(st), jsonOf(st.Route), st.MirrorPercent, want)
}

func hasRoute(svc servedService, st rollout.Status) bool {
	for _, r := range svc.Routes {
		if st.Route != nil && r.Version == st.CanaryVersion && jsonOf(r.Match) == jsonOf(st.Route) {
			return true
		}
	}
	return false
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
