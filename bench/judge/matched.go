package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The matched comparison: what "at an equal or lower false-rollback rate" means when the two
// judges' rates differ. Aviary's alpha is a setting; a threshold judge's false-rollback rate is
// whatever its thresholds give on this traffic. So, for each load and threshold judge, Aviary's
// judge gets the threshold judge's measured A/A rate as its alpha, its own A/A rate at that alpha
// is measured on the same A/A runs to confirm it is not higher, and the speed of the two is
// compared on the same regression runs. Every alpha is read off the same simulated runs: the
// evidence does not depend on alpha, only the level it must reach (evidencePath).

// matchAlpha picks Aviary's alpha against a threshold judge that rolled back judgeK of n A/A runs.
// Above the shipped alpha, Aviary starts at the judge's rate (at most maxAlpha); at or below it,
// at the shipped alpha. It then steps down alphaLadder until Aviary's own A/A rollbacks at that
// alpha, aviaryK(a) of the same n runs, are no more than the judge's. ok is false when not even
// minAlpha gets there (a is then minAlpha).
func matchAlpha(judgeK, n int, aviaryK func(a float64) int) (a float64, ok bool) {
	start := alpha
	if rate := float64(judgeK) / float64(n); rate > alpha {
		start = min(rate, maxAlpha)
	}
	candidates := []float64{start}
	for _, l := range alphaLadder {
		if l < start {
			candidates = append(candidates, l)
		}
	}
	for _, a := range candidates {
		if aviaryK(a) <= judgeK {
			return a, true
		}
	}
	return candidates[len(candidates)-1], false
}

// matchedPair is Aviary's judge at a threshold judge's false-rollback rate, at one load.
type matchedPair struct {
	load         float64
	judge        int
	n            int // A/A runs
	judgeK, aviK int // A/A rollbacks of the threshold judge and of Aviary at alpha
	alpha        float64
	ok           bool // aviK ≤ judgeK
	stepped      bool // alpha was lowered below the starting point to get there
	regs         []matchedRegression
}

// matchedRegression is one regression of a matched pair.
type matchedRegression struct {
	sc               scenario
	judgeDet, aviDet float64 // detection rates
	judgeMed         float64
	aviMed, aviP95   float64
	oracleMed        float64 // the oracle at the same alpha
	speedup          float64 // judge's median over Aviary's
	met              bool
	needed           float64 // the median Aviary needs for the target: the judge's over speedTarget
	feasible         bool    // the oracle at the same alpha reaches it
}

func (r report) matchedPairs() []matchedPair {
	var out []matchedPair
	for _, load := range r.c.loads {
		aa, _ := r.cell(load, idAA)
		for j, js := range judgeSpecs {
			if !js.threshold {
				continue
			}
			p := matchedPair{load: load, judge: j, n: len(aa.runs), judgeK: aa.count(j)}
			p.alpha, p.ok = matchAlpha(p.judgeK, p.n, func(a float64) int { return rolledBack(aa.aviaryAt(a)) })
			p.stepped = p.alpha < min(max(alpha, float64(p.judgeK)/float64(p.n)), maxAlpha)
			p.aviK = rolledBack(aa.aviaryAt(p.alpha))
			for _, sc := range r.regressions() {
				c, _ := r.cell(load, sc.id)
				avi := c.aviaryAt(p.alpha)
				x := matchedRegression{sc: sc, judgeDet: c.rate(j), aviDet: float64(rolledBack(avi)) / float64(len(c.runs)),
					judgeMed: c.quantile(j, 0.5), aviMed: quantileOf(avi, 0.5), aviP95: quantileOf(avi, 0.95),
					oracleMed: quantileOf(c.oracleAt(p.alpha), 0.5)}
				x.speedup = x.judgeMed / x.aviMed // +Inf when only Aviary's median is within the rollout; NaN when neither is
				x.met = p.ok && !math.IsInf(x.aviMed, 1) && x.speedup >= speedTarget
				x.needed = x.judgeMed / speedTarget
				x.feasible = x.oracleMed <= x.needed
				p.regs = append(p.regs, x)
			}
			out = append(out, p)
		}
	}
	return out
}

// targetMatched renders target 3 on the matched comparison.
func (r report) targetMatched(b *strings.Builder) {
	ps := r.matchedPairs()
	metN, all := 0, 0
	for _, p := range ps {
		for _, x := range p.regs {
			all++
			if x.met {
				metN++
			}
		}
	}
	fmt.Fprintf(b, "**3. At least %g× faster than the threshold judges at an equal or lower false-rollback rate: %s; met in %d of %d comparisons** "+
		"(load × threshold judge × regression).\n\n", speedTarget, metCount(metN, all), metN, all)
	fmt.Fprintf(b, "Aviary's α is a setting; a threshold judge's false-rollback rate is whatever its thresholds give on this traffic. "+
		"So each threshold judge is compared with Aviary's judge set to the judge's own A/A false-rollback rate: α = that rate "+
		"when it is above %g (at most %g), else α = %g; then, if Aviary's A/A rate at that α is higher than the judge's, lowered "+
		"step by step (%s) until it is not. "+
		"Aviary's false rollbacks at that α are counted on the same %d A/A runs (the same traffic the threshold judge saw) and must "+
		"not exceed the judge's; detection and times come from the same %d runs per regression. Every α is read off the same "+
		"simulated runs: Aviary's evidence does not depend on α, only the level it must reach (2/α), so each run records when its "+
		"evidence first reached each level. *Oracle* is the oracle SPRT (below) at the same α: about the fastest any test with that "+
		"guarantee can be. *Met* needs Aviary's median within the rollout and at least %g× shorter than the judge's.",
		alpha, maxAlpha, alpha, ladderText(), r.c.runsAA, r.c.runs, speedTarget)
	if slices.ContainsFunc(ps, func(p matchedPair) bool { return p.stepped }) {
		fmt.Fprintf(b, " Where α was lowered step by step, it was chosen on those same A/A runs, so the confirmation there holds by "+
			"construction; the Wilson intervals show how loosely %d runs pin down rates of a few per mille.", r.c.runsAA)
	}
	b.WriteString("\n\n")
	b.WriteString("| load (req/s) | threshold judge | its false rollbacks | Aviary's α | Aviary's false rollbacks at that α | regression | " +
		"its detected, median s | Aviary: detected, median s, p95 s | oracle median s | speed-up | met? |\n")
	b.WriteString("|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|\n")
	for _, p := range ps {
		for i, x := range p.regs {
			head := fmt.Sprintf("| %g | %s | %s | %s | %s |", p.load, judgeSpecs[p.judge].name,
				rateCI(p.judgeK, p.n), alphaText(p.alpha), r.confirmed(p))
			if i > 0 {
				head = "| | | | | |"
			}
			fmt.Fprintf(b, "%s %s | %s, %s | %s, %s, %s | %s | %s | %s |\n", head, x.sc.name,
				pct(x.judgeDet, 1), r.secs(x.judgeMed), pct(x.aviDet, 1), r.secs(x.aviMed), r.secs(x.aviP95),
				r.secs(x.oracleMed), r.speedup(x.judgeMed, x.aviMed), r.matchedVerdict(p, x))
		}
	}
	b.WriteString("\n")
}

func (r report) confirmed(p matchedPair) string {
	s := rateCI(p.aviK, p.n)
	if !p.ok {
		return s + " (higher: not matched)"
	}
	return s
}

func (r report) matchedVerdict(p matchedPair, x matchedRegression) string {
	switch {
	case x.met:
		return "met"
	case !p.ok:
		return "no: Aviary's rate is higher even at α " + alphaText(minAlpha)
	case math.IsInf(x.aviMed, 1):
		return "**not met**: Aviary's median is beyond the rollout"
	case !x.feasible:
		return fmt.Sprintf("**not met**: %g× needs ≤ %s s; not even the oracle", speedTarget, r.secs(x.needed))
	}
	return fmt.Sprintf("**not met**: %g× needs ≤ %s s", speedTarget, r.secs(x.needed))
}

// metCount is the verdict on a target of several comparisons, for a place already in bold: met
// only when met in all of them.
func metCount(met, all int) string {
	if met == all {
		return "met"
	}
	return "not met"
}

// alphaText writes 0.5, 0.3935, 0.002, 5e-7.
func alphaText(a float64) string {
	if a >= 0.001 {
		return fmt.Sprintf("%.4g", a)
	}
	return strings.Replace(fmt.Sprintf("%.4g", a), "e-0", "e-", 1)
}

// ladderText describes alphaLadder: "the 1-2-5 series from 0.5 to 1e-8: …, 0.02, 0.01, 0.005, …".
func ladderText() string {
	i := slices.Index(alphaLadder, alpha)
	near := alphaLadder[max(0, i-1):min(len(alphaLadder), i+3)]
	s := make([]string, len(near))
	for j, a := range near {
		s[j] = alphaText(a)
	}
	return fmt.Sprintf("down the 1-2-5 series from %s to %s: …, %s, …", alphaText(alphaLadder[0]),
		alphaText(alphaLadder[len(alphaLadder)-1]), strings.Join(s, ", "))
}
