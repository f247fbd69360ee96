package stats

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func opts() Options {
	return Options{Alpha: 0.05, PlannedUnits: 20000, Power: 0.8, MDE: 0.02, MinUnits: 2}
}

func moments(ys ...float64) Moments {
	var m Moments
	for _, y := range ys {
		m.Add(y)
	}
	return m
}

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.7g, want %.7g ± %g", name, got, want, tol)
	}
}

// The textbook value: Student's sleep data, as R's t.test(extra ~ group, data = sleep) reports
// it (Welch): t = −1.8608, df = 17.776, p = 0.07939, 95% CI −3.3654832 to 0.2054832.
func TestWelchMatchesTextbook(t *testing.T) {
	g1 := moments(0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0)
	g2 := moments(1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4)
	c, err := Compare(g2, g1, opts())
	if err != nil {
		t.Fatal(err)
	}
	near(t, "difference", c.Absolute.Estimate, -1.58, 1e-12)
	near(t, "t", c.Absolute.Estimate/c.StdErr, -1.8608, 5e-5)
	near(t, "df", c.DF, 17.776, 5e-4)
	near(t, "p", c.PFixed, 0.07939, 5e-6)
	near(t, "lo", c.Absolute.Fixed.Lo, -3.3654832, 1e-6)
	near(t, "hi", c.Absolute.Fixed.Hi, 0.2054832, 1e-6)
	if w, f := c.Absolute.Sequential, c.Absolute.Fixed; w.Lo > f.Lo || w.Hi < f.Hi {
		t.Errorf("the confidence sequence %v should be wider than the fixed interval %v", w, f)
	}
}

// R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") and "BH".
func TestAdjustMatchesR(t *testing.T) {
	p := []float64{0.01, 0.04, 0.03, 0.005}
	for _, tc := range []struct {
		a    Adjustment
		want []float64
	}{
		{Holm, []float64{0.03, 0.06, 0.06, 0.02}},
		{BenjaminiHochberg, []float64{0.02, 0.04, 0.04, 0.02}},
	} {
		got := Adjust(p, tc.a)
		for i := range got {
			near(t, string(tc.a), got[i], tc.want[i], 1e-12)
		}
	}
	if _, err := ParseAdjustment("bonferroni"); err == nil || !strings.Contains(err.Error(), "holm") {
		t.Errorf("an unknown adjustment should name the ones there are, got %v", err)
	}
}

// A metric whose pre-experiment value has correlation 0.5 with it: CUPED removes ρ² = 25% of the
// variance.
func TestCUPEDReducesVarianceByRhoSquared(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var c, a Moments
	const rho = 0.5
	for i := 0; i < 40000; i++ {
		x := r.NormFloat64()
		y := 10 + rho*x + math.Sqrt(1-rho*rho)*r.NormFloat64()
		if i%2 == 0 {
			c.AddWithPre(y, x)
		} else {
			a.AddWithPre(y+0.05, x)
		}
	}
	cmp, err := Compare(c, a, opts())
	if err != nil {
		t.Fatal(err)
	}
	if cmp.CUPED == nil {
		t.Fatal("CUPED was not applied though every unit has a pre-experiment value")
	}
	near(t, "variance reduction", cmp.CUPED.VarianceReduction, 0.25, 0.02)
	near(t, "theta", cmp.CUPED.Theta, 0.5, 0.02)
	near(t, "narrowing", cmp.CUPED.Narrowing, 1-math.Sqrt(0.75), 0.015)
	near(t, "effect", cmp.Absolute.Estimate, 0.05, 3*cmp.StdErr)

	// One unit without a pre-experiment value: no CUPED, said by a nil report.
	a.Add(10)
	if cmp, _ := Compare(c, a, opts()); cmp.CUPED != nil {
		t.Error("CUPED applied although a unit has no pre-experiment value")
	}
}

func TestSampleRatioChiSquareMatchesClosedForm(t *testing.T) {
	s, err := SampleRatio([]float64{1000, 900}, []float64{1, 1}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	chi := 2 * 50.0 * 50 / 950
	near(t, "chi²", s.ChiSquare, chi, 1e-9)
	// One degree of freedom: P(χ²₁ > x) = erfc(√(x/2)).
	near(t, "p", s.PChiSquare, math.Erfc(math.Sqrt(chi/2)), 1e-9)
	if s.Mismatch {
		t.Errorf("p = %.3g should not be a mismatch at 0.001", s.PChiSquare)
	}
	if s, _ := SampleRatio([]float64{10000, 9000}, []float64{1, 1}, 10000); !s.Mismatch {
		t.Errorf("10000 against 9000 should be a mismatch: %+v", s)
	}
	if _, err := SampleRatio([]float64{1, 2}, []float64{1, 0}, 1); err == nil {
		t.Error("a zero weight should be refused")
	}
}

// For two arms the Dirichlet-multinomial Bayes factor is a beta-binomial one; check it against a
// numerical integral of the likelihood ratio over the Beta prior.
func TestSequentialSRMMatchesIntegral(t *testing.T) {
	n1, n2, c, p0 := 30.0, 10.0, 4.0, 0.5
	s, err := SampleRatio([]float64{n1, n2}, []float64{1, 1}, c)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c*p0, c*(1-p0)
	lb, _ := math.Lgamma(a)
	lb2, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	const steps = 200000
	var bf float64
	for i := 0; i < steps; i++ {
		p := (float64(i) + 0.5) / steps
		logPrior := (a-1)*math.Log(p) + (b-1)*math.Log(1-p) + lab - lb - lb2
		logLR := n1*math.Log(p/p0) + n2*math.Log((1-p)/(1-p0))
		bf += math.Exp(logPrior+logLR) / steps
	}
	near(t, "sequential p", s.PSequential, 1/bf, 1e-4/bf)
}

func TestUnitsNeededAgainstFixedHorizon(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var c, a Moments
	for i := 0; i < 2000; i++ {
		c.Add(b2f(r.Float64() < 0.1))
		a.Add(b2f(r.Float64() < 0.1))
	}
	o := opts()
	cmp, err := Compare(c, a, o)
	if err != nil {
		t.Fatal(err)
	}
	// The textbook fixed-horizon size, both arms: 2·(z_{.975}+z_{.8})²·2σ²/δ².
	p := c.Mean()
	delta := o.MDE * p
	fixed := 2 * math.Pow(1.959964+0.841621, 2) * 2 * p * (1 - p) / (delta * delta)
	if cmp.UnitsNeeded < fixed || cmp.UnitsNeeded > 4*fixed {
		t.Errorf("units needed %.0f: want between the fixed-horizon %.0f and 4× it", cmp.UnitsNeeded, fixed)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestTooFewUnitsAndBadOptions(t *testing.T) {
	if _, err := Compare(moments(1), moments(1, 2), opts()); err != ErrTooFewUnits {
		t.Errorf("got %v, want ErrTooFewUnits", err)
	}
	o := opts()
	o.MinUnits = 100
	if _, err := Compare(moments(make([]float64, 99)...), moments(make([]float64, 100)...), o); err != ErrTooFewUnits {
		t.Errorf("99 units against a minimum of 100: got %v, want ErrTooFewUnits", err)
	}
	err := Options{Alpha: 2}.Validate()
	for _, w := range []string{"alpha", "planned units", "power", "minimum detectable effect", "minimum units"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("validation should name %q, got %v", w, err)
		}
	}
}

func TestPValuesAreCompares(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	c, a := arm(r, 500, 0.2), arm(r, 500, 0.25)
	cmp, err := Compare(c, a, opts())
	if err != nil {
		t.Fatal(err)
	}
	seq, fixed, err := PValues(c, a, opts())
	if err != nil || seq != cmp.PSequential || fixed != cmp.PFixed {
		t.Errorf("PValues %v %v %v, Compare %v %v", seq, fixed, err, cmp.PSequential, cmp.PFixed)
	}
}

func BenchmarkCompare(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 9))
	c, a := arm(r, 5000, 0.2), arm(r, 5000, 0.21)
	for b.Loop() {
		_, _ = Compare(c, a, opts())
	}
}

func BenchmarkPValues(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 9))
	c, a := arm(r, 5000, 0.2), arm(r, 5000, 0.21)
	for b.Loop() {
		_, _, _ = PValues(c, a, opts())
	}
}
