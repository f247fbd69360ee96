package judge

import (
	"fmt"
	"math"
	"time"
)

// Effect is a regression of a count metric worth detecting: a canary rate above
// max(Ratio × baseline rate, baseline rate + Points). The larger of the two, because a ratio
// alone cannot be ruled out quickly for rare events (at 0.5% errors, "at most 1.5×" needs some
// ten thousand canary requests) and a difference alone says nothing for common ones.
type Effect struct {
	Ratio  float64 // e.g. 2: twice the baseline's rate
	Points float64 // e.g. 0.01: one percentage point above the baseline's rate
}

// Safety is the case for promotion: the data rule out a regression of the detectable effect.
type Safety struct {
	Safe bool
	// CanaryUpper is an upper confidence bound on the canary's rate, BaseLower a lower one on the
	// baseline's, each anytime-valid at alpha/2 (so together at alpha).
	CanaryUpper, BaseLower float64
	Limit                  float64 // max(Ratio × BaseLower, BaseLower + Points): the canary's rate must be below it
}

// RuledOut reports whether the data rule out a regression of effect e with confidence 1−alpha,
// anytime-valid: each version's rate has a time-uniform confidence sequence (Robbins' beta-binomial
// mixture; Howard, Ramdas, McAuliffe & Sekhon 2021, §3), on counts tempered by the dispersion the
// test applies, so that a pass needs as much more traffic as clumped errors are worth less.
func (t *CountTest) RuledOut(e Effect, alpha float64) Safety {
	phi := t.Phi()
	cu := rateBound(float64(t.CanaryEvents)/phi, float64(t.CanaryN-t.CanaryEvents)/phi, alpha/2, true)
	bl := t.baseLower(alpha/2, phi)
	limit := max(e.Ratio*bl, bl+e.Points)
	return Safety{Safe: t.CanaryN > 0 && t.BaseN > 0 && cu < limit, CanaryUpper: cu, BaseLower: bl, Limit: limit}
}

// RuledOutAgainst is RuledOut for a canary counted on its own terms — its requests and its events
// past a boundary of its own (a latency slowdown) — against the test's baseline: safe when the
// canary's rate is shown below the baseline's, both sequences at alpha/2 and tempered by the
// test's dispersion.
func (t *CountTest) RuledOutAgainst(canaryN, canaryEvents int64, alpha float64) Safety {
	phi := t.Phi()
	canaryEvents = min(canaryEvents, canaryN)
	cu := rateBound(float64(canaryEvents)/phi, float64(canaryN-canaryEvents)/phi, alpha/2, true)
	bl := t.baseLower(alpha/2, phi)
	return Safety{Safe: canaryN > 0 && t.BaseN > 0 && cu < bl, CanaryUpper: cu, BaseLower: bl, Limit: bl}
}

// SetBaselineBefore gives the baseline's requests and events before the test began (the stable
// alone, before the canary started). A pass then compares the canary with the lower of the
// baseline's rates, during the test and before it: a stable incident during the rollout makes a
// canary look safe against it, and must not let it pass.
func (t *CountTest) SetBaselineBefore(requests, events int64) {
	t.beforeN, t.beforeEvents = requests, min(events, requests)
}

// baseLower is the baseline's lower confidence bound at alpha: the lower of the bounds during the
// test and before it (each at alpha, a union: their minimum is below the true rate whenever one
// of them is, which happens with probability at most alpha for the rate during the test).
func (t *CountTest) baseLower(alpha, phi float64) float64 {
	bl := rateBound(float64(t.BaseEvents)/phi, float64(t.BaseN-t.BaseEvents)/phi, alpha, false)
	if t.beforeN > 0 {
		bl = min(bl, rateBound(float64(t.beforeEvents)/phi, float64(t.beforeN-t.beforeEvents)/phi, alpha, false))
	}
	return bl
}

// Describe says what was ruled out, in words: "canary ≤ 1.2% (stable ≥ 0.41%): a regression past
// max(2× stable, stable + 1 pp) is ruled out with 99% confidence".
func (s Safety) Describe(e Effect, alpha float64) string {
	return fmt.Sprintf("canary ≤ %s, stable ≥ %s: a regression past %s is %s with %s confidence",
		pct(s.CanaryUpper), pct(s.BaseLower), e, s.verdict(), confidence(alpha))
}

// DescribeSlowdown says what RuledOutAgainst ruled out for a latency slowdown, in words: "canary
// slower than 183ms: ≤ 0.4%, stable slower than 122ms: ≥ 0.7%: p99 more than 50% slower is ruled
// out with 99.75% confidence".
func (s Safety) DescribeSlowdown(canaryBoundary, baseBoundary time.Duration, quantile, slowdown, alpha float64) string {
	return fmt.Sprintf("canary slower than %s: ≤ %s, stable slower than %s: ≥ %s: p%g more than %g%% slower is %s with %s confidence",
		canaryBoundary.Round(time.Microsecond), pct(s.CanaryUpper), baseBoundary.Round(time.Microsecond), pct(s.BaseLower),
		100*quantile, 100*slowdown, s.verdict(), confidence(alpha))
}

func (s Safety) verdict() string {
	if s.Safe {
		return "ruled out"
	}
	return "not yet ruled out"
}

func (e Effect) String() string {
	switch {
	case e.Points <= 0:
		return fmt.Sprintf("%g× stable", e.Ratio)
	case e.Ratio <= 1:
		return fmt.Sprintf("stable + %g pp", 100*e.Points)
	}
	return fmt.Sprintf("max(%g× stable, stable + %g pp)", e.Ratio, 100*e.Points)
}

func confidence(alpha float64) string {
	return fmt.Sprintf("%.4g%%", 100*(1-alpha))
}

// priors of the beta-binomial mixture, mixed with equal weights: Jeffreys' for common events, and
// two that expect rates near 1% and 0.1%, where errors and slow requests usually are, so that a
// rare-event rate's sequence is tight (any fixed prior gives a valid sequence; the prior only
// decides where it is tight).
var priors = [...][2]float64{{0.5, 0.5}, {0.5, 50}, {0.5, 500}}

// rateBound is the upper (or lower) end of the anytime-valid confidence sequence for a rate after
// s successes and f failures (real numbers: tempered counts): the rate p furthest from s/(s+f) on
// that side whose mixture martingale
//
//	M(p) = mean over priors (a, b) of B(a+s, b+f) / (B(a, b) · p^s · (1−p)^f)
//
// is still below 1/alpha. By Ville's inequality the true rate leaves the sequence with probability
// at most alpha, at any time. With no data: 1 (upper) or 0 (lower).
func rateBound(s, f, alpha float64, upper bool) float64 {
	if s+f <= 0 {
		if upper {
			return 1
		}
		return 0
	}
	var mix [len(priors)]float64
	top := math.Inf(-1)
	for i, pr := range priors {
		mix[i] = lbeta(pr[0]+s, pr[1]+f) - lbeta(pr[0], pr[1])
		top = max(top, mix[i])
	}
	sum := 0.0
	for _, m := range mix {
		sum += math.Exp(m - top)
	}
	logMix := top + math.Log(sum/float64(len(priors)))
	level := math.Log(1 / alpha)
	logM := func(p float64) float64 { return logMix - s*math.Log(p) - f*math.Log1p(-p) }
	// The mixture's centre: M is smallest at p̂ = s/(s+f) (a maximum of the likelihood).
	lo, hi := s/(s+f), 1.0
	if !upper {
		lo, hi = 0, s/(s+f)
	}
	inside := func(p float64) bool { return p > 0 && p < 1 && logM(p) < level }
	if upper {
		for range 60 {
			mid := (lo + hi) / 2
			if inside(mid) || mid <= s/(s+f) {
				lo = mid
			} else {
				hi = mid
			}
		}
		return hi
	}
	for range 60 {
		mid := (lo + hi) / 2
		if inside(mid) || mid >= s/(s+f) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo
}

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}
