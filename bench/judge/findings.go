package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The analysis: which targets the run meets, which it does not and why, and what would help.
// Every number is computed from the run; sentences whose truth depends on the figures are written
// only when the figures make them true.

// analysis writes the summary of the targets and the reasons behind the misses.
func (r report) analysis(b *strings.Builder) {
	b.WriteString("## Analysis\n\n")
	r.analysisShipped(b)
	ps := r.matchedPairs()
	r.analysisMatched(b, ps)
	r.analysisWhy(b, ps)
}

// analysisShipped covers targets 1 and 2, judged on Aviary as it ships.
func (r report) analysisShipped(b *strings.Builder) {
	var parts []string
	allMet := true
	maxHi, maxHiLoad, worst, worstLoad := -1.0, 0.0, -1.0, 0.0
	for _, load := range r.c.loads {
		c, _ := r.cell(load, idAA)
		k, n := c.count(aviaryIdx), len(c.runs)
		_, hi := wilson(k, n)
		parts = append(parts, fmt.Sprintf("%s at %g req/s", pct(float64(k)/float64(n), 2), load))
		allMet = allMet && c.rate(aviaryIdx) <= alpha
		if hi > maxHi {
			maxHi, maxHiLoad = hi, load
		}
		if rate := c.rate(aviaryIdx); rate > worst {
			worst, worstLoad = rate, load
		}
	}
	fmt.Fprintf(b, "**Targets 1 and 2 (Aviary as shipped).** Aviary rolled back %s of A/A canaries. ", strings.Join(parts, ", "))
	switch {
	case allMet && maxHi <= alpha:
		just := ""
		if maxHi > 0.8*alpha {
			just = ", only just"
		}
		fmt.Fprintf(b, "Target 1 is met: every rate is at or under α %g, and so is every 95%% interval (the highest upper bound, %s at %g req/s%s). ",
			alpha, pct(maxHi, 2), maxHiLoad, just)
	case allMet:
		fmt.Fprintf(b, "Target 1 is met on the point estimates, but the 95%% interval at %g req/s reaches %s, above α %g: "+
			"more runs would be needed to call that cell met with confidence. ", maxHiLoad, pct(maxHi, 2), alpha)
	default:
		fmt.Fprintf(b, "Target 1 is **not met**: the rate exceeds α %g at %g req/s. ", alpha, worstLoad)
	}
	if c, _ := r.cell(worstLoad, idAA); c.count(aviaryIdx) > 0 {
		s := aaSplit(c)
		fmt.Fprintf(b, "At %g req/s, %d of the %d were runs whose healthy canary endpoint was truly beyond a margin "+
			"(error rate more than %g× the baseline's, or share of slow requests more than %g×): the test rejected a null "+
			"hypothesis that was false (see \"Why Aviary rolls back A/A canaries\"). ",
			worstLoad, s.rolledBeyond, s.rolled, r.m.errMargin, r.m.latMargin)
	}
	if c, ok := r.cell(100, idErrTwo); ok {
		med := c.quantile(aviaryIdx, 0.5)
		fmt.Fprintf(b, "Target 2 is %s: +2 pp at 100 req/s was rolled back in a median of %s s (p95 %s s).",
			metWord(med <= 60), r.secs(med), r.secs(c.quantile(aviaryIdx, 0.95)))
	}
	b.WriteString("\n\n")
}

// analysisMatched sorts the matched comparisons into met, out of anyone's reach, and Aviary's own
// misses.
func (r report) analysisMatched(b *strings.Builder, ps []matchedPair) {
	var met, infeasible, own, unmatched []string
	all := 0
	for _, p := range ps {
		for _, x := range p.regs {
			all++
			label := fmt.Sprintf("%g req/s %s against %s", p.load, x.sc.name, judgeSpecs[p.judge].name)
			switch {
			case x.met && math.IsInf(x.judgeMed, 1):
				met = append(met, fmt.Sprintf("%s (Aviary's median %s s, the judge's beyond the rollout)", label, r.secs(x.aviMed)))
			case x.met:
				met = append(met, fmt.Sprintf("%s (%s)", label, r.speedup(x.judgeMed, x.aviMed)))
			case !p.ok:
				unmatched = append(unmatched, label)
			case !x.feasible:
				infeasible = append(infeasible, fmt.Sprintf("%g req/s %s", p.load, x.sc.name))
			default:
				own = append(own, fmt.Sprintf("%s (Aviary %s s, oracle %s s, needed ≤ %s s)", label,
					r.secs(x.aviMed), r.secs(x.oracleMed), r.secs(x.needed)))
			}
		}
	}
	fmt.Fprintf(b, "**Target 3 (matched comparison): %s; met in %d of %d comparisons.**", metCount(len(met), all), len(met), all)
	if len(met) > 0 {
		fmt.Fprintf(b, " Met: %s.", strings.Join(met, "; "))
	}
	misses := all - len(met)
	if misses == 0 {
		b.WriteString("\n\n")
		return
	}
	fmt.Fprintf(b, " Of the %d misses:\n\n", misses)
	if len(infeasible) > 0 {
		fmt.Fprintf(b, "- %d %s out of reach of any sequential test with a guarantee at that α on this traffic: the oracle, at the same α "+
			"and knowing the true effect, is no faster than a fifth of the threshold judge's median either (%s).\n",
			len(infeasible), isAre(len(infeasible)), countedList(infeasible, "judge", "judges"))
	}
	if len(own) > 0 {
		fmt.Fprintf(b, "- %d %s Aviary's own: the oracle reaches %g× but Aviary does not: %s.\n", len(own), isAre(len(own)),
			speedTarget, strings.Join(own, "; "))
	}
	if len(unmatched) > 0 {
		fmt.Fprintf(b, "- %d could not be matched: Aviary's A/A rate stays above the judge's even at α %s (%s).\n",
			len(unmatched), alphaText(minAlpha), strings.Join(unmatched, "; "))
	}
	b.WriteString("\n")
	r.fragileMatches(b, ps)
}

// fragileMatches flags the matches that took α far below the shipped one: the rollbacks left there
// are canaries truly beyond a margin, which a smaller α only delays, and the match rests on a
// handful of runs.
func (r report) fragileMatches(b *strings.Builder, ps []matchedPair) {
	for _, p := range ps {
		if !p.ok || p.alpha >= alpha/10 {
			continue
		}
		aa, _ := r.cell(p.load, idAA)
		beyond := 0
		for i, t := range aa.aviaryAt(p.alpha) {
			if t >= 0 && aa.runs[i].truth != 0 {
				beyond++
			}
		}
		var met []string
		for _, x := range p.regs {
			if x.met {
				met = append(met, x.sc.name)
			}
		}
		fmt.Fprintf(b, "Caution on %g req/s against %s: the match took α = %s. At that α Aviary still rolled back %d of %d A/A canaries "+
			"(the judge: %d), %d of them runs whose canary endpoint was truly beyond a margin, which a smaller α only delays: "+
			"whether Aviary can match this judge at all rests on a few runs, and only more A/A runs (`-runs-aa`) can tell.",
			p.load, judgeSpecs[p.judge].name, alphaText(p.alpha), p.aviK, p.n, p.judgeK, beyond)
		if len(met) > 0 {
			fmt.Fprintf(b, " The comparisons met there (%s) are as fragile.", strings.Join(met, ", "))
		}
		b.WriteString("\n\n")
	}
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// countedList collapses repeated labels, in order of first appearance: "10 req/s errors +2 pp
// (3 judges), 100 req/s latency +20% (1 judge)".
func countedList(labels []string, one, many string) string {
	var order []string
	n := map[string]int{}
	for _, l := range labels {
		if n[l] == 0 {
			order = append(order, l)
		}
		n[l]++
	}
	out := make([]string, len(order))
	for i, l := range order {
		noun := many
		if n[l] == 1 {
			noun = one
		}
		out[i] = fmt.Sprintf("%s: %d %s", l, n[l], noun)
	}
	return strings.Join(out, ", ")
}

// analysisWhy explains the misses: traffic too low for the target, the latency margin, and the
// gap between Aviary and the oracle.
func (r report) analysisWhy(b *strings.Builder, ps []matchedPair) {
	b.WriteString("Why:\n\n")
	r.whyLowLoad(b, ps)
	r.whyRegressions(b, ps)
	r.whyOracleGap(b, ps)
	b.WriteString("\n")
}

// whyLowLoad: at the lowest load the threshold judges roll back healthy canaries at their first
// looks, and the target asks for a median shorter than the canary's first few errors.
func (r report) whyLowLoad(b *strings.Builder, ps []matchedPair) {
	load := slices.Min(r.c.loads)
	aa, _ := r.cell(load, idAA)
	two, _ := r.cell(load, idErrTwo)
	var judgeFR, aviFR, alphas, aviMed []float64
	fastest, fastestMed := -1, math.Inf(1)
	metAny := false
	for _, p := range ps {
		if p.load != load {
			continue
		}
		judgeFR = append(judgeFR, float64(p.judgeK)/float64(p.n))
		aviFR = append(aviFR, float64(p.aviK)/float64(p.n))
		alphas = append(alphas, p.alpha)
		for _, x := range p.regs {
			metAny = metAny || x.met
			if x.sc.id == idErrTwo {
				aviMed = append(aviMed, x.aviMed)
			}
		}
		if m := two.quantile(p.judge, 0.5); m < fastestMed {
			fastest, fastestMed = p.judge, m
		}
	}
	if metAny || fastest < 0 || len(judgeFR) == 0 || slices.Min(judgeFR) <= alpha {
		return // the story below is about a load where the threshold judges are noisy and nothing is met
	}
	needed := fastestMed / speedTarget
	canaryReqs := load * r.m.share * needed
	noError := math.Exp(-canaryReqs * (r.m.errRate + 0.02)) // Poisson: canary errors by then at +2 pp
	fmt.Fprintf(b, "- **At %g req/s nothing is met.** The threshold judges roll back %s of healthy canaries. The fastest on +2 pp, "+
		"%s, rolls back %s of A/A canaries (median %s s) and +2 pp canaries at a median of %s s. Given their rates as α (%s, capped "+
		"at %g), Aviary rolls back only %s of A/A canaries (its guarantee is an upper bound, and at this traffic a 10-minute "+
		"rollout leaves the evidence far from it) and detects +2 pp at a median of %s s. %g× against %s s means %s s; by then "+
		"the canary has served about %.0f requests, and at +2 pp %s of runs have not yet shown a single canary error. Only a judge "+
		"that rolls back without evidence, as one with a false-rollback rate near 100%% does, can be that fast: against such a "+
		"judge the target measures noise, not speed.\n",
		load, spanPct(judgeFR), judgeSpecs[fastest].name, pct(aa.rate(fastest), 1), r.secs(aa.quantile(fastest, 0.5)), r.secs(fastestMed),
		spanAlpha(alphas), maxAlpha, spanPct(aviFR), r.spanSecs(aviMed),
		speedTarget, r.secs(fastestMed), r.secs(needed), canaryReqs, pct(noError, 0))
}

// whyRegressions summarises each regression over loads and judges, and the latency margin.
func (r report) whyRegressions(b *strings.Builder, ps []matchedPair) {
	for _, sc := range r.regressions() {
		metN, n, feasible := 0, 0, 0
		var finite []float64
		for _, p := range ps {
			for _, x := range p.regs {
				if x.sc.id != sc.id {
					continue
				}
				n++
				if x.met {
					metN++
				}
				if x.feasible {
					feasible++
				}
				if !math.IsInf(x.aviMed, 1) && !math.IsInf(x.judgeMed, 1) {
					finite = append(finite, x.judgeMed/x.aviMed)
				}
			}
		}
		fmt.Fprintf(b, "- **%s**: met in %d of %d; the oracle at the same α would meet %d of them", sc.name, metN, n, feasible)
		if len(finite) > 0 {
			fmt.Fprintf(b, "; Aviary's speed-ups, where both medians are within the rollout, run from %.1f× to %.1f×",
				slices.Min(finite), slices.Max(finite))
		}
		b.WriteString(". ")
		switch {
		case sc.addErr > 0 && sc.addErr < 0.01:
			r.whySmallErrors(b, sc)
		case sc.latFactor != 1:
			r.whyLatency(b, sc)
		case sc.addErr > 0:
			b.WriteString("A large regression is where sequential looks pay: the threshold judges cannot decide before their first " +
				"measurement at 60 s, and failureLimit 3 and Flagger not before their 4th and 5th failed minute.")
		}
		b.WriteString("\n")
	}
}

func (r report) whySmallErrors(b *strings.Builder, sc scenario) {
	ratio := (r.m.errRate + sc.addErr) / r.m.errRate
	var parts []string
	for _, load := range r.c.loads {
		c, _ := r.cell(load, sc.id)
		parts = append(parts, fmt.Sprintf("%s s at %g req/s", r.secs(c.quantile(oracleIdx, 0.5)), load))
	}
	fmt.Fprintf(b, "It takes the error rate to %.0f× the baseline's, only %.2f× the margin of %g: a small effect for a test of "+
		"counts, which even the oracle at the shipped α needs a median of %s to establish. The threshold judges are slow on it too: "+
		"they see it only in minutes whose errors cross 1%%.", ratio, ratio/r.m.errMargin, r.m.errMargin, strings.Join(parts, ", "))
}

func (r report) whyLatency(b *strings.Builder, sc scenario) {
	var parts []string
	for _, load := range r.c.loads {
		c, _ := r.cell(load, sc.id)
		parts = append(parts, fmt.Sprintf("%s (%g req/s)", pct(beyondShare(c), 0), load))
	}
	shift := r.slowRatio(sc.latFactor - 1)
	fmt.Fprintf(b, "The shipped latency margin, %g on the share of requests above the baseline's p99, tolerates a slowdown of about "+
		"%.0f%%. +20%% multiplies that share by %.2f on average, only %.2f× the margin: a small effect, like +0.5 pp on errors. "+
		"And endpoints differ (latency-scale sigma %g%% each): the canary was truly beyond the margin in only %s of runs; "+
		"the rest are, by Aviary's settings, acceptable canaries, which neither Aviary nor the oracle rolls back. "+
		"A tighter margin would detect more of them and roll back more healthy canaries whose endpoints merely differ "+
		"(`-margin-latency 1.2` shows that side of the trade-off).",
		r.m.latMargin, 100*r.toleratedShift(), shift, shift/r.m.latMargin, 100*r.m.scaleSD, strings.Join(parts, ", "))
}

// whyOracleGap: where the oracle meets the target and Aviary does not, how far behind Aviary is.
func (r report) whyOracleGap(b *strings.Builder, ps []matchedPair) {
	var gaps []float64
	for _, p := range ps {
		for _, x := range p.regs {
			if !math.IsInf(x.aviMed, 1) && !math.IsInf(x.oracleMed, 1) && x.oracleMed > 0 {
				gaps = append(gaps, x.aviMed/x.oracleMed)
			}
		}
	}
	if len(gaps) == 0 {
		return
	}
	slices.Sort(gaps)
	fmt.Fprintf(b, "- **Aviary against the oracle**: where both medians are within the rollout, Aviary's is %.2f× to %.2f× the "+
		"oracle's at the same α (median %.2f×): the price of not knowing the effect (a mixture over a grid of effect sizes) and "+
		"of splitting α between two metrics.", gaps[0], gaps[len(gaps)-1], gaps[len(gaps)/2])
	if gaps[0] < 1 {
		b.WriteString(" Below 1×, Aviary's rollbacks of canaries within the margin (noise, at a large α) count as detections; " +
			"the oracle tests only canaries beyond it.")
	}
	b.WriteString("\n")
}

// toleratedShift is the latency-scale shift that raises the share of requests above the baseline's
// p99 by the latency margin.
func (r report) toleratedShift() float64 {
	return math.Exp(r.m.sigma*(zUpper(0.01)-zUpper(0.01*r.m.latMargin))) - 1
}

// slowRatio is how much a latency-scale shift s (0.1 = 10% slower) multiplies the share of requests
// above the baseline's p99.
func (r report) slowRatio(s float64) float64 {
	return normalSF(zUpper(0.01)-math.Log(1+s)/r.m.sigma) / 0.01
}

func spanPct(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if pct(lo, 1) == pct(hi, 1) {
		return pct(lo, 1)
	}
	return pct(lo, 1) + "–" + pct(hi, 1)
}

func spanAlpha(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return alphaText(lo)
	}
	return alphaText(lo) + "–" + alphaText(hi)
}

func (r report) spanSecs(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return r.secs(lo)
	}
	return r.secs(lo) + "–" + r.secs(hi)
}

// fixes says what would help where the targets are missed, with the run's numbers.
func (r report) fixes(b *strings.Builder, ps []matchedPair) {
	fmt.Fprintf(b, "## What would help\n\n")
	r.fixFalseRollbacks(b, ps)
	fmt.Fprintf(b, "- **The latency margin as a slowdown.** The margin is on the share of requests above the baseline's p99: %g "+
		"tolerates a latency-scale shift of about %.0f%% (lognormal, sigma %g). Stating the margin as the slowdown users accept "+
		"and translating it would make the trade-off visible: 10%% at p99 is a margin of %.2f on the slow-request share, 15%% is "+
		"%.2f, and the +20%% regression is %.2f.\n",
		r.m.latMargin, 100*r.toleratedShift(), r.m.sigma, r.slowRatio(0.10), r.slowRatio(0.15), r.slowRatio(0.20))
	fmt.Fprintf(b, "- **Endpoints differ; the test assumes they do not.** It treats each version as one rate. Whatever the margin, "+
		"more traffic makes it see smaller true differences, including those between healthy instances (here error CV %g%%, "+
		"latency-scale sigma %g%%). A lasting fix is to estimate that spread from the baseline's own endpoints, which Aviary's "+
		"gateway measures separately, and test the canary against it: a margin set from the baseline endpoints' observed "+
		"dispersion, or an overdispersed (beta-binomial or random-effects) likelihood. It would let the latency margin come "+
		"down again without the false rollbacks, and detect more of the +20%% canaries.\n", 100*r.m.errCV, 100*r.m.scaleSD)
	fmt.Fprintf(b, "- **Where even the oracle misses 5×**, no grid, margin or look interval gets there with this false-rollback "+
		"rate on this traffic; only more evidence per second would (a larger canary share, or fewer metrics sharing α). "+
		"Against a judge that decides at its first measurement, 5× means a median of %g s whatever the traffic. "+
		"Looks every second cost nothing in validity; looking less often would only slow detection.\n", interval/speedTarget)
	fmt.Fprintf(b, "- **The threshold judges' low false-rollback rates at high load** come from thresholds far from normal (1%% errors is "+
		"%.0f× the baseline's rate; p99 + 20%% is a %.1f× share of slow requests), which also makes them slow or blind to the +0.5 pp "+
		"regression; at %g req/s the same thresholds meet one or two errors a minute and roll back healthy canaries.\n\n",
		0.01/r.m.errRate, r.slowRatio(0.20), slices.Min(r.c.loads))
}

func (r report) fixFalseRollbacks(b *strings.Builder, ps []matchedPair) {
	worst, worstLoad := -1.0, 0.0
	var within, withinN int
	for _, load := range r.c.loads {
		c, _ := r.cell(load, idAA)
		s := aaSplit(c)
		within += s.rolled - s.rolledBeyond
		withinN += len(c.runs) - s.beyond
		if rate := c.rate(aviaryIdx); rate > worst {
			worst, worstLoad = rate, load
		}
	}
	guarantee := "holds"
	if float64(within)/float64(max(1, withinN)) > alpha {
		guarantee = "**does not hold**"
	}
	fmt.Fprintf(b, "- **The test's own guarantee %s.** In A/A runs whose canary endpoint was within the margins on both metrics, "+
		"Aviary rolled back %s (all loads); with no spread between endpoints, see the spread table.\n", guarantee, rateCI(within, withinN))
	c, _ := r.cell(worstLoad, idAA)
	s := aaSplit(c)
	if s.rolled == 0 {
		return
	}
	fmt.Fprintf(b, "- **The false rollbacks left come from endpoints that differ.** At %g req/s Aviary rolled back %d of %d A/A "+
		"canaries, %d by the latency test and %d by the errors test, %d of them in runs whose canary endpoint was truly beyond "+
		"a margin: with this much traffic the test sees real differences between healthy instances. ",
		worstLoad, s.rolled, len(c.runs), s.byLatency, s.byErrors, s.rolledBeyond)
	// How much α it took, in the matched comparison, to bring that rate down to a threshold judge's.
	lowest := -1
	for i, p := range ps {
		if p.load == worstLoad && p.ok && (lowest < 0 || p.alpha < ps[lowest].alpha) {
			lowest = i
		}
	}
	if lowest >= 0 && ps[lowest].alpha < alpha {
		p := ps[lowest]
		half, _ := r.cell(worstLoad, idErrHalf)
		fmt.Fprintf(b, "Lowering α is a poor tool against them: matching %s's %s took α = %s, and Aviary's median on +0.5 pp "+
			"went from %s s at α %g to %s s.", judgeSpecs[p.judge].name, pct(float64(p.judgeK)/float64(p.n), 2), alphaText(p.alpha),
			r.secs(half.quantile(aviaryIdx, 0.5)), alpha, r.secs(quantileOf(half.aviaryAt(p.alpha), 0.5)))
	}
	b.WriteString("\n")
}
