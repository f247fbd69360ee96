package main

import (
	"fmt"
	"math"
	"strings"
)

// The analysis below the table: which of issue 4's targets the run meets, and why not where it
// does not. Every sentence with a number computes it from the run.

const speedTarget = 5.0 // Aviary must detect this many times faster than a threshold judge

// comparison is Aviary against one threshold judge in one cell.
type comparison struct {
	load             float64
	sc               scenario
	judge            int
	aviFR, judgeFR   float64
	aviMed, judgeMed float64
	comparable, met  bool
	speedup          float64
}

func (r report) comparisons() []comparison {
	var out []comparison
	for _, load := range r.c.loads {
		aa, _ := r.cell(load, idAA)
		for _, sc := range r.regressions() {
			c, _ := r.cell(load, sc.id)
			for j, js := range judgeSpecs {
				if !js.threshold {
					continue
				}
				x := comparison{load: load, sc: sc, judge: j, aviFR: aa.rate(aviaryIdx), judgeFR: aa.rate(j),
					aviMed: c.quantile(aviaryIdx, 0.5), judgeMed: c.quantile(j, 0.5)}
				x.comparable = x.aviFR <= x.judgeFR
				x.speedup = x.judgeMed / x.aviMed // +Inf when only Aviary detects; NaN when neither does
				x.met = x.comparable && !math.IsInf(x.aviMed, 1) && x.speedup >= speedTarget
				out = append(out, x)
			}
		}
	}
	return out
}

func (r report) targets(b *strings.Builder) {
	fmt.Fprintf(b, "## Targets\n\n")
	fmt.Fprintf(b, "Targets 1 and 2 are judged on Aviary as it ships (α %g, margins %g on errors and %g on slow requests); "+
		"target 3 on the matched comparison.\n\n", alpha, r.m.errMargin, r.m.latMargin)
	r.targetFalseRollbacks(b)
	r.targetTwoPoints(b)
	r.targetMatched(b)
	r.shippedSpeed(b)
}

func (r report) targetFalseRollbacks(b *strings.Builder) {
	met := true
	var lines []string
	for _, load := range r.c.loads {
		c, _ := r.cell(load, idAA)
		pure, _ := r.cell(load, idNoSpread)
		ok := c.rate(aviaryIdx) <= alpha
		met = met && ok
		lines = append(lines, fmt.Sprintf("- %g req/s: %s — %s (with no spread between endpoints: %s)",
			load, rateCI(c.count(aviaryIdx), len(c.runs)), metWord(ok), rateCI(pure.count(aviaryIdx), len(pure.runs))))
	}
	fmt.Fprintf(b, "**1. Aviary's false rollbacks at or under α = %g in every cell, 10 req/s included: %s.**\n\n%s\n\n",
		alpha, metPlain(met), strings.Join(lines, "\n"))
}

func (r report) targetTwoPoints(b *strings.Builder) {
	c, ok := r.cell(100, idErrTwo)
	if !ok {
		fmt.Fprintf(b, "**2. +2 pp at 100 req/s detected with median ≤ 60 s: not measured** (100 is not among -loads).\n\n")
		return
	}
	med := c.quantile(aviaryIdx, 0.5)
	fmt.Fprintf(b, "**2. +2 pp at 100 req/s detected with median ≤ 60 s: %s.** Aviary detected %s of runs, median %s s, p95 %s s.\n\n",
		metPlain(med <= 60), pct(c.rate(aviaryIdx), 1), r.secs(med), r.secs(c.quantile(aviaryIdx, 0.95)))
}

// shippedSpeed sets Aviary at the shipped alpha beside each threshold judge, rates unmatched.
// Where Aviary's rate is the lower one and it is 5× faster all the same, the target is met a
// fortiori; everywhere else this table does not decide target 3 (the matched one does).
func (r report) shippedSpeed(b *strings.Builder) {
	cs := r.comparisons()
	metN, compN := 0, 0
	for _, x := range cs {
		if x.met {
			metN++
		}
		if x.comparable {
			compN++
		}
	}
	fmt.Fprintf(b, "### Speed at the shipped α %g, rates not matched\n\n", alpha)
	fmt.Fprintf(b, "Aviary as it ships beside each threshold judge. In %d of %d comparisons Aviary's A/A false-rollback rate is "+
		"equal or lower, and in %d of those it is also at least %g× faster, which meets the target whatever the other judge's rate. "+
		"Where Aviary's rate is much lower than the judge's, a slower Aviary says nothing about the target: it has "+
		"false-rollback budget left to spend on speed, which is what the matched comparison above gives it. Speed-up is the judge's median time to detect over Aviary's.\n\n", compN, len(cs), metN, speedTarget)
	b.WriteString("| load (req/s) | regression | threshold judge | false rollbacks: Aviary / judge | median s: Aviary / judge | speed-up | 5× at an equal or lower rate? |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|---|\n")
	for _, x := range cs {
		verdict := "no"
		switch {
		case x.met:
			verdict = "yes"
		case !x.comparable:
			verdict = "not comparable: Aviary's rate is higher"
		case math.IsInf(x.aviMed, 1):
			verdict = "no: Aviary's median is beyond the rollout"
		}
		fmt.Fprintf(b, "| %g | %s | %s | %s / %s | %s / %s | %s | %s |\n", x.load, x.sc.name, judgeSpecs[x.judge].name,
			pct(x.aviFR, 2), pct(x.judgeFR, 2), r.secs(x.aviMed), r.secs(x.judgeMed), r.speedup(x.judgeMed, x.aviMed), verdict)
	}
	b.WriteString("\n")
}

// speedup writes the judge's median over Aviary's: "< 0.8×" when only the judge's is within the
// rollout (Aviary's is then beyond it), "∞" when only Aviary's is, "n/a" when neither is.
func (r report) speedup(judgeMed, aviMed float64) string {
	ji, ai := math.IsInf(judgeMed, 1), math.IsInf(aviMed, 1)
	switch {
	case ji && ai:
		return "n/a"
	case ji:
		return "∞"
	case ai:
		return fmt.Sprintf("< %.1f×", judgeMed/float64(r.m.seconds))
	}
	return fmt.Sprintf("%.1f×", judgeMed/aviMed)
}

// metPlain is metWord for a place already in bold.
func metPlain(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// beyondShare is the share of c's runs whose canary is, in truth, beyond Aviary's margin on the
// metric the scenario regresses: the runs the count test (and the oracle) is meant to detect. A
// canary within the margin is, by Aviary's settings, an acceptable one.
func beyondShare(c cell) float64 {
	bit := uint8(causeErrors)
	if c.sc.latFactor != 1 {
		bit = causeLatency
	}
	n := 0
	for _, run := range c.runs {
		if run.truth&bit != 0 {
			n++
		}
	}
	return float64(n) / float64(len(c.runs))
}

// oracleTable sets Aviary at the shipped alpha beside the oracle SPRT: how much faster any test
// with the same false-alarm guarantee could be on the same data.
func (r report) oracleTable(b *strings.Builder) {
	fmt.Fprintf(b, "## How far from the fastest possible\n\n")
	fmt.Fprintf(b, "The oracle is a sequential probability ratio test of the regressed metric alone that knows the canary's true ratio, "+
		"at α/2 = %g (one metric's share of Aviary's α %g): roughly the fastest any test holding that false-rollback guarantee can "+
		"detect on the same data. Here both are at the shipped α; the matched table above has both at the matched α. The oracle tests "+
		"only runs whose canary is truly beyond the margin on the regressed metric (*beyond the margin*): a canary within it is, by "+
		"Aviary's settings, acceptable, so that column bounds what a judge with Aviary's margins should detect.\n\n", alpha/2, alpha)
	b.WriteString("| load (req/s) | regression | runs beyond the margin | Aviary: detected, median s | oracle: detected, median s | Aviary's median / oracle's |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|\n")
	for _, load := range r.c.loads {
		for _, sc := range r.regressions() {
			c, _ := r.cell(load, sc.id)
			am, om := c.quantile(aviaryIdx, 0.5), c.quantile(oracleIdx, 0.5)
			rel := "n/a"
			if !math.IsInf(am, 1) && !math.IsInf(om, 1) {
				rel = fmt.Sprintf("%.2f", am/om)
			}
			fmt.Fprintf(b, "| %g | %s | %s | %s, %s | %s, %s | %s |\n", load, sc.name, pct(beyondShare(c), 1),
				pct(c.rate(aviaryIdx), 1), r.secs(am), pct(c.rate(oracleIdx), 1), r.secs(om), rel)
		}
	}
	b.WriteString("\n")
}

// whyAA splits Aviary's A/A rollbacks by cause and by whether the run's canary endpoint was, in
// truth, beyond the margin: there, "ratio ≤ 1.2" is false and the test is right to reject.
func (r report) whyAA(b *strings.Builder) {
	fmt.Fprintf(b, "## Why Aviary rolls back A/A canaries\n\n")
	fmt.Fprintf(b, "In an A/A run the canary runs the baseline's version, but on its own endpoint, whose error rate and latency scale "+
		"are drawn like any other endpoint's. Its true ratio to the baseline can then exceed the margin (%g on errors, %g on slow requests): "+
		"Aviary's null hypothesis is false in that run and a rejection is what the test promises, though it is a false rollback here. "+
		"The last column is the rate the test's guarantee bounds by α.\n\n", r.m.errMargin, r.m.latMargin)
	fmt.Fprintf(b, "| load (req/s) | A/A rollbacks | by the errors test | by the latency test | runs with canary error ratio > %g | "+
		"runs with canary slow-request ratio > %g | rollbacks in runs beyond the margin | rollbacks in runs within the margin |\n",
		r.m.errMargin, r.m.latMargin)
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, load := range r.c.loads {
		c, _ := r.cell(load, idAA)
		s := aaSplit(c)
		fmt.Fprintf(b, "| %g | %d of %d | %d | %d | %s | %s | %d of %d | %s |\n", load, s.rolled, len(c.runs),
			s.byErrors, s.byLatency, pct(float64(s.errBeyond)/float64(len(c.runs)), 1),
			pct(float64(s.slowBeyond)/float64(len(c.runs)), 1),
			s.rolledBeyond, s.beyond, rateCI(s.rolled-s.rolledBeyond, len(c.runs)-s.beyond))
	}
	b.WriteString("\n")
}

type split struct {
	rolled, byErrors, byLatency, errBeyond, slowBeyond, beyond, rolledBeyond int
}

func aaSplit(c cell) split {
	var s split
	for _, run := range c.runs {
		rolled := run.times[aviaryIdx] >= 0
		if rolled {
			s.rolled++
		}
		if run.cause&causeErrors != 0 {
			s.byErrors++
		}
		if run.cause&causeLatency != 0 {
			s.byLatency++
		}
		if run.truth&causeErrors != 0 {
			s.errBeyond++
		}
		if run.truth&causeLatency != 0 {
			s.slowBeyond++
		}
		if run.truth != 0 {
			s.beyond++
			if rolled {
				s.rolledBeyond++
			}
		}
	}
	return s
}
