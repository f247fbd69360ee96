//go:build e2e

// Package crash_test is the crash test of issue #3: it runs the real aviary binary under load
// while rollouts start, move, get promoted, aborted, retried and undone, kills it with SIGKILL at
// random moments, restarts it, and checks after every kill that the store kept every committed
// transition (no step skipped or applied twice, a timed pause neither restarted nor lost) and
// that the restarted aviary serves exactly what its store holds.
//
// It needs the e2e build tag: scripts/test-e2e.sh, or go test -tags e2e ./test/crash.
// AVIARY_CRASH_SECONDS (default 60) and AVIARY_CRASH_KILLS (default 25) bound the run, whichever
// comes first; AVIARY_CRASH_SEED repeats a run's random choices (not its timing).
package crash_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

func TestCrashRecovery(t *testing.T) {
	b := budgetFromEnv(t)
	t.Logf("budget: %d kills or %s, whichever comes first; seed %d (AVIARY_CRASH_SEED)", b.kills, b.time, b.seed)

	dir := t.TempDir()
	aviaryBin, upstreamBin := buildBinaries(t, dir)
	upstreams := map[string]string{}
	for _, v := range versions {
		upstreams[v] = startUpstream(t, upstreamBin, dir, v)
	}
	av := newAviary(t, aviaryBin, dir, upstreams)
	if err := av.start(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := &observer{}
	traffic := startLoad(ctx, av.gateway, 200)
	drv := startDriver(ctx, av.api, b.seed, seen)
	r := &run{t: t, av: av, drv: drv, seen: seen, hist: newStoreHistory(), rng: rand.New(rand.NewPCG(b.seed, 2))}

	began := time.Now()
	for r.n.kills < b.kills && time.Since(began) < b.time && !t.Failed() {
		r.crashAndRecover()
	}
	cancel()
	<-drv.done
	elapsed := time.Since(began)

	av.proc.stop()
	final := r.finalCheck()
	r.summarize(elapsed, final, traffic)
}

// run is one crash test run: the aviary under test, what drives it, and what was checked.
type run struct {
	t    *testing.T
	av   *aviaryProc
	drv  *driver
	seen *observer
	hist *storeHistory
	rng  *rand.Rand
	n    tally
	// failedAt is the kill after which a check first failed (0: none has).
	failedAt int
}

// failf reports a failed check of the current kill; the run stops after it.
func (r *run) failf(format string, args ...any) {
	r.t.Helper()
	if r.failedAt == 0 {
		r.failedAt = r.n.kills
	}
	r.t.Errorf("kill %d: "+format, append([]any{r.n.kills}, args...)...)
}

// crashAndRecover lets rollouts run for a random moment, kills aviary, checks its store, restarts
// it and checks what it serves. Now and then it kills the restarting aviary too, or leaves it
// down until a timed pause has run out.
func (r *run) crashAndRecover() {
	time.Sleep(time.Duration(50+r.rng.IntN(1450)) * time.Millisecond)
	killed := r.av.proc
	r.av.kill()
	r.n.kills++
	release := r.drv.hold() // from here until the checks are done, only the controller moves
	defer release()
	view, ok := r.checkStore(killed, "before the kill")
	if !ok {
		return
	}
	if r.rng.IntN(100) < 15 {
		if view, ok = r.crashWhileStarting(); !ok {
			return
		}
	}
	r.stayDown(view.state)
	if err := r.av.start(); err != nil {
		r.failf("%v", err)
		return
	}
	r.n.restarts++
	rc := &restartCheck{api: r.av.api, view: view, tally: &r.n, seen: r.seen, ready: r.av.readyAt}
	if bad := rc.run(); len(bad) > 0 {
		r.failf("what aviary serves after the restart does not match its store:\n- %s\n%s\n%s",
			strings.Join(bad, "\n- "), killed.logTail(), r.av.proc.logTail())
		return
	}
	r.t.Logf("kill %2d: stored %s; restarted in agreement", r.n.kills, stateLine(view.state))
}

// crashWhileStarting kills aviary again before, during or just after its startup.
func (r *run) crashWhileStarting() (storeView, bool) {
	r.av.spawn()
	time.Sleep(time.Duration(r.rng.IntN(150)) * time.Millisecond)
	killed := r.av.proc
	r.av.kill()
	r.n.kills++
	r.n.startupKills++
	view, ok := r.checkStore(killed, "before the kill")
	if ok {
		r.t.Logf("kill %2d: killed again while starting; stored %s", r.n.kills, stateLine(view.state))
	}
	return view, ok
}

// stayDown sometimes keeps aviary down for a while: often until the timed pause it was in has run
// out, so that nobody was there to end it.
func (r *run) stayDown(s rollout.State) {
	p := r.rng.IntN(100)
	if s.InFlight() && s.PausedAt.IsZero() && s.StepIndex < len(s.Steps) && p < 40 {
		if step := s.Steps[s.StepIndex]; step.Kind == rollout.Pause && step.Duration > 0 {
			wait := time.Until(s.StepStartedAt.Add(step.Duration)) + time.Duration(r.rng.IntN(300))*time.Millisecond
			if wait > 0 && wait < 4*time.Second {
				r.n.longOutages++
				time.Sleep(wait)
				return
			}
		}
	}
	if p >= 85 {
		r.n.longOutages++
		time.Sleep(time.Duration(500+r.rng.IntN(2500)) * time.Millisecond)
	}
}

// checkStore reads the store of a dead aviary and checks it; false when the run cannot go on.
func (r *run) checkStore(killed *proc, when string) (storeView, bool) {
	view, err := readStore(r.av.store)
	if err != nil {
		r.failf("read the store after the kill: %v\n%s", err, killed.logTail())
		return view, false
	}
	r.n.storeChecks++
	r.n.eventsChecked += len(view.events)
	last, anySeen := r.seen.newest()
	bad := append(r.hist.check(view, last, anySeen, when), checkEventLog(view.events)...)
	if len(bad) > 0 {
		r.failf("the store is not what aviary committed before it died:\n- %s\n%s",
			strings.Join(bad, "\n- "), killed.logTail())
		return view, false
	}
	return view, true
}

// outcome is what the whole run did to the rollouts, from the final store.
type outcome struct {
	started, completed, aborted, undone int
}

// finalCheck reads the store of the stopped aviary once more and counts what happened.
func (r *run) finalCheck() outcome {
	view, err := readStore(r.av.store)
	if err != nil {
		r.t.Errorf("read the store at the end: %v", err)
		return outcome{}
	}
	last, anySeen := r.seen.newest()
	if bad := append(r.hist.check(view, last, anySeen, "before the stop"), checkEventLog(view.events)...); len(bad) > 0 {
		r.t.Errorf("at the end, the store is not what aviary committed:\n- %s", strings.Join(bad, "\n- "))
	}
	var o outcome
	for _, e := range view.events {
		switch {
		case attemptStarts[e.Kind] && (e.Phase == rollout.Progressing || e.Phase == rollout.Paused):
			o.started++
		case e.Kind == "Completed":
			o.completed++
		case e.Kind == "Aborted":
			o.aborted++
		}
		if e.Kind == "Undone" {
			o.undone++
		}
	}
	if len(r.drv.odd) > 0 {
		r.t.Errorf("the API gave answers no rollout command should get:\n- %s", strings.Join(r.drv.odd, "\n- "))
	}
	return o
}

func (r *run) summarize(elapsed time.Duration, o outcome, traffic *load) {
	n := r.n
	survived := n.kills
	if r.failedAt > 0 {
		survived = r.failedAt - 1
	}
	lines := []string{
		fmt.Sprintf("crash test: survived %d of %d SIGKILLs (%d while starting up) in %s; %d restarts (%d after a long outage)",
			survived, n.kills, n.startupKills, elapsed.Round(100*time.Millisecond), n.restarts, n.longOutages),
		fmt.Sprintf("rollouts: %d attempts started, %d completed, %d aborted, %d undone", o.started, o.completed, o.aborted, o.undone),
		fmt.Sprintf("checks: %d store reads (%d event records checked), %d restarts at the stored generation, %d moved on by the controller during the restart, %d timed pauses resumed or ended on time, %d gateway weight checks (%d skipped: the rollout moved while read)",
			n.storeChecks, n.eventsChecked, n.sameGeneration, n.movedOn, n.pauseChecks, n.weightChecks, n.weightMiss),
		"api calls: " + counts(r.drv.outcomes),
		"load: " + traffic.summary(),
	}
	for _, l := range lines {
		r.t.Log(l)
		fmt.Println(l)
	}
}

// budget bounds a run.
type budget struct {
	kills int
	time  time.Duration
	seed  uint64
}

func budgetFromEnv(t *testing.T) budget {
	b := budget{kills: 25, time: 60 * time.Second, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv("AVIARY_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("AVIARY_CRASH_KILLS=%q: want a whole number of kills, at least 1", v)
		}
		b.kills = n
	}
	if v := os.Getenv("AVIARY_CRASH_SECONDS"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s <= 0 {
			t.Fatalf("AVIARY_CRASH_SECONDS=%q: want a number of seconds above 0", v)
		}
		b.time = time.Duration(s * float64(time.Second))
	}
	if v := os.Getenv("AVIARY_CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("AVIARY_CRASH_SEED=%q: want a non-negative whole number", v)
		}
		b.seed = s
	}
	return b
}
