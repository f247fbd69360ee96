package stats

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Options are the settings of a comparison; internal/config fills them from an experiment's spec.
type Options struct {
	// Alpha is the error rate of the intervals and tests (0.05: 95% intervals).
	Alpha float64
	// PlannedUnits, t*, is the number of units (both arms) near which the confidence sequence is
	// tightest. It tunes, never invalidates: the sequence is valid at every size.
	PlannedUnits float64
	// Power is the probability of detecting the minimum detectable effect that UnitsNeeded aims at.
	Power float64
	// MDE is the minimum detectable effect, relative to control's mean (0.02: 2%).
	MDE float64
	// MinUnits is the fewest units an arm must have before it is compared. The confidence
	// sequence is asymptotic: on a handful of units the plug-in variance can be near 0 and the
	// sequence far too narrow (bench/experiment measured false winners from the first reads).
	MinUnits int
}

// Validate reports every bad setting at once.
func (o Options) Validate() error {
	var errs []error
	if !(o.Alpha > 0 && o.Alpha < 1) {
		errs = append(errs, fmt.Errorf("alpha %v: must be between 0 and 1 (0.05 is usual)", o.Alpha))
	}
	if !(o.PlannedUnits >= 2) {
		errs = append(errs, fmt.Errorf("planned units %v: must be at least 2 (the units you expect in all arms)", o.PlannedUnits))
	}
	if !(o.Power > 0 && o.Power < 1) {
		errs = append(errs, fmt.Errorf("power %v: must be between 0 and 1 (0.8 is usual)", o.Power))
	}
	if !(o.MDE > 0) {
		errs = append(errs, fmt.Errorf("minimum detectable effect %v: must be above 0 (0.02 for 2%%)", o.MDE))
	}
	if o.MinUnits < 2 {
		errs = append(errs, fmt.Errorf("minimum units %d: must be at least 2 per arm (100 is safe for the confidence sequence)", o.MinUnits))
	}
	return errors.Join(errs...)
}

// Interval is a two-sided interval [Lo, Hi].
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Excludes says whether v is outside the interval.
func (i Interval) Excludes(v float64) bool { return v < i.Lo || v > i.Hi }

// Effect is one estimate with both kinds of interval.
type Effect struct {
	Estimate float64 `json:"estimate"`
	// Sequential is the anytime-valid confidence sequence at the current size.
	Sequential Interval `json:"sequential"`
	// Fixed is the fixed-horizon Welch interval, valid only if read once at a planned horizon.
	Fixed Interval `json:"fixed"`
}

// CUPED reports what the pre-experiment covariate did.
type CUPED struct {
	Theta float64 `json:"theta"`
	// VarianceReduction is 1 − Var(Δ̂ adjusted)/Var(Δ̂ raw).
	VarianceReduction float64 `json:"varianceReduction"`
	// Narrowing is 1 − width adjusted/width raw of the intervals.
	Narrowing float64 `json:"narrowing"`
	// UnadjustedEffect is the difference of means without CUPED.
	UnadjustedEffect float64 `json:"unadjustedEffect"`
}

// Comparison is one arm against control on one metric.
type Comparison struct {
	ControlUnits float64 `json:"controlUnits"`
	ArmUnits     float64 `json:"armUnits"`
	ControlMean  float64 `json:"controlMean"` // CUPED-adjusted when CUPED applies
	ArmMean      float64 `json:"armMean"`
	Absolute     Effect  `json:"absolute"`
	Relative     *Effect `json:"relative,omitempty"` // nil when control's mean is 0
	StdErr       float64 `json:"stdErr"`             // of the absolute difference
	DF           float64 `json:"df"`                 // Welch–Satterthwaite
	// PSequential and PFixed are two-sided and unadjusted; Adjust fills the adjusted ones.
	PSequential float64 `json:"pSequential"`
	PFixed      float64 `json:"pFixed"`
	CUPED       *CUPED  `json:"cuped,omitempty"`
	// UnitsNeeded is the total units (both arms) at which the MDE would be detected with the
	// requested power, at today's variances; 0 when unknown (control's mean is 0, or never).
	UnitsNeeded float64 `json:"unitsNeeded,omitempty"`
}

// ErrTooFewUnits is returned when an arm has fewer than Options.MinUnits units.
var ErrTooFewUnits = errors.New("too few units in an arm for the intervals to hold: wait for more exposures")

// Compare compares one arm with control. See CompareAll for several arms.
func Compare(control, arm Moments, o Options) (Comparison, error) {
	cs, err := CompareAll(control, []Moments{arm}, o)
	if err != nil {
		return Comparison{}, err
	}
	return cs[0], nil
}

// CompareAll compares every arm with control; CUPED's θ is pooled over control and all arms, so
// every arm is adjusted alike.
func CompareAll(control Moments, arms []Moments, o Options) ([]Comparison, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	all := append([]Moments{control}, arms...)
	for _, m := range all {
		if m.N < float64(o.MinUnits) {
			return nil, ErrTooFewUnits
		}
	}
	theta, xbar, ok := pooledTheta(all)
	out := make([]Comparison, len(arms))
	for i, a := range arms {
		raw := summarise(control, a, 0, 0, false)
		if !ok {
			out[i] = finish(raw, o, nil)
			continue
		}
		adj := summarise(control, a, theta, xbar, true)
		c := &CUPED{Theta: theta, UnadjustedEffect: raw.ya - raw.yc}
		if rv := raw.se2(); rv > 0 {
			c.VarianceReduction = 1 - adj.se2()/rv
			c.Narrowing = 1 - math.Sqrt(adj.se2()/rv)
		}
		out[i] = finish(adj, o, c)
	}
	return out, nil
}

// pooledTheta is θ = Σ(n_k−1)Cov_k / Σ(n_k−1)Var_k(X) and the grand mean of X; ok is false when
// some unit has no pre-experiment value or X does not vary.
func pooledTheta(all []Moments) (theta, xbar float64, ok bool) {
	var cov, vx, sx, nx float64
	for _, m := range all {
		if !m.hasPre() {
			return 0, 0, false
		}
		cov += (m.NX - 1) * m.covXY()
		vx += (m.NX - 1) * m.varX()
		sx += m.SumX
		nx += m.NX
	}
	if vx <= 0 {
		return 0, 0, false
	}
	return cov / vx, sx / nx, true
}

// pair is two arms' means, variances and sizes, after CUPED if any.
type pair struct {
	yc, ya, vc, va, nc, na float64
}

func (p pair) se2() float64 { return p.va/p.na + p.vc/p.nc }

func summarise(c, a Moments, theta, xbar float64, cuped bool) pair {
	p := pair{yc: c.Mean(), ya: a.Mean(), vc: c.Var(), va: a.Var(), nc: c.N, na: a.N}
	if cuped {
		p.yc -= theta * (c.meanX() - xbar)
		p.ya -= theta * (a.meanX() - xbar)
		p.vc = math.Max(0, p.vc+theta*theta*c.varX()-2*theta*c.covXY())
		p.va = math.Max(0, p.va+theta*theta*a.varX()-2*theta*a.covXY())
	}
	return p
}

func finish(p pair, o Options, cuped *CUPED) Comparison {
	se2 := p.se2()
	se := math.Sqrt(se2)
	df := welchDF(p)
	t := p.na + p.nc
	b := newBoundary(o.Alpha, o.PlannedUnits)
	c := Comparison{
		ControlUnits: p.nc, ArmUnits: p.na, ControlMean: p.yc, ArmMean: p.ya,
		StdErr: se, DF: df, CUPED: cuped,
	}
	d := p.ya - p.yc
	qs, qf := b.multiplier(t, o.Alpha), distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1-o.Alpha/2)
	c.Absolute = Effect{Estimate: d, Sequential: Interval{d - qs*se, d + qs*se}, Fixed: Interval{d - qf*se, d + qf*se}}
	c.PSequential = b.pValue(d, se, t)
	c.PFixed = welchP(d, se, df)
	if p.yc != 0 {
		seq, okS := fieller(p, qs)
		fixed, okF := fieller(p, qf)
		if okS && okF {
			c.Relative = &Effect{Estimate: p.ya/p.yc - 1, Sequential: seq, Fixed: fixed}
		}
		if n := b.unitsNeeded(o.MDE*math.Abs(p.yc), se*math.Sqrt(t), o.Power); !math.IsInf(n, 1) {
			c.UnitsNeeded = n
		}
	}
	return c
}

// fieller is the interval of the relative effect R − 1, R = μ_a/μ_c, that inverts the same test
// as the absolute interval (Fieller, J. R. Statist. Soc. B 1954): every R at which
// (Ȳ_a − R·Ȳ_c)² ≤ q²(s²_a/n_a + R²·s²_c/n_c). At R = 1 that is the test of the difference, so the
// relative interval excludes 0 exactly when the absolute one does, whichever q (the sequence's or
// Student's). ok is false when the set is unbounded: control's mean is not yet told from 0 at this
// level (Ȳ_c² ≤ q²s²_c/n_c), and a relative effect means nothing.
func fieller(p pair, q float64) (Interval, bool) {
	q2 := q * q
	a := p.yc*p.yc - q2*p.vc/p.nc
	if !(a > 0) {
		return Interval{}, false
	}
	// The roots of a·R² − 2b·R + c, c = Ȳ_a² − q²s²_a/n_a; b² − ac = q²(Ȳ_a²s²_c/n_c + a·s²_a/n_a) ≥ 0 when a > 0; written so it cannot round below 0.
	root := math.Sqrt(q2 * (p.ya*p.ya*p.vc/p.nc + a*p.va/p.na))
	b := p.ya * p.yc
	lo, hi := (b-root)/a, (b+root)/a
	return Interval{lo - 1, hi - 1}, true
}

func welchDF(p pair) float64 {
	a, c := p.va/p.na, p.vc/p.nc
	den := a*a/(p.na-1) + c*c/(p.nc-1)
	if den == 0 {
		return p.na + p.nc - 2
	}
	return (a + c) * (a + c) / den
}

func welchP(d, se, df float64) float64 {
	if se == 0 {
		return degenerateP(d)
	}
	return 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(math.Abs(d)/se)
}

func degenerateP(d float64) float64 {
	if d == 0 {
		return 1
	}
	return 0
}

// PValues are Compare's two unadjusted p-values alone, without CUPED, intervals or sizes: what a
// simulation that reads an experiment every minute needs, at a fraction of the cost.
func PValues(control, arm Moments, o Options) (sequential, fixed float64, err error) {
	if err := o.Validate(); err != nil {
		return 0, 0, err
	}
	if control.N < float64(o.MinUnits) || arm.N < float64(o.MinUnits) {
		return 0, 0, ErrTooFewUnits
	}
	p := summarise(control, arm, 0, 0, false)
	se := math.Sqrt(p.se2())
	d := p.ya - p.yc
	return newBoundary(o.Alpha, o.PlannedUnits).pValue(d, se, p.na+p.nc), welchP(d, se, welchDF(p)), nil
}
