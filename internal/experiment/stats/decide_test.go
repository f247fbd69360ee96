package stats

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// arm draws n conversions at rate p.
func arm(r *rand.Rand, n int, p float64) Moments {
	var m Moments
	for i := 0; i < n; i++ {
		m.Add(b2f(r.Float64() < p))
	}
	return m
}

func decide(t *testing.T, control Moments, arms map[string]Moments, guard map[string]Moments, srm SRM) Decision {
	t.Helper()
	o := opts()
	var ms []MetricResult
	add := func(name string, goal Goal, guardrail bool, ctl Moments, as map[string]Moments) {
		mr := MetricResult{Metric: name, Goal: goal, Guardrail: guardrail}
		for _, n := range []string{"green", "blue"} {
			a, ok := as[n]
			if !ok {
				continue
			}
			c, err := Compare(ctl, a, o)
			if err != nil {
				t.Fatal(err)
			}
			mr.Arms = append(mr.Arms, ArmResult{Arm: n, Comparison: c})
		}
		ms = append(ms, mr)
	}
	add("conversion", Increase, false, control, arms)
	if guard != nil {
		add("errors", Decrease, true, guard["control"], guard)
	}
	AdjustAll(ms, Holm)
	return Decide(DecisionInput{Control: "control", Metrics: ms, SRM: srm, Alpha: o.Alpha, MDE: o.MDE,
		Units: 2 * control.N, UnitsPerDay: 10000})
}

func TestDecide(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ctl := arm(r, 200000, 0.10)
	green := arm(r, 200000, 0.11)

	d := decide(t, ctl, map[string]Moments{"green": green}, nil, SRM{})
	if d.Verdict != Ship || d.Winner != "green" || !strings.HasPrefix(d.Text, "green beats control on conversion by +") ||
		!strings.Contains(d.Text, "anytime-valid 95%; p = ") || !strings.Contains(d.Text, "); no guardrail moved; ship green") {
		t.Errorf("a 10%% lift on 200k units should ship green: %+v", d)
	}

	d = decide(t, ctl, map[string]Moments{"green": green}, nil, SRM{Mismatch: true, PChiSquare: 1e-5, PSequential: 1e-4})
	if d.Verdict != Blocked || d.Winner != "" || !strings.Contains(d.Text, "sample ratio mismatch") {
		t.Errorf("a mismatch must block the winner: %+v", d)
	}

	errs := map[string]Moments{"control": arm(r, 200000, 0.01), "green": arm(r, 200000, 0.02)}
	d = decide(t, ctl, map[string]Moments{"green": green}, errs, SRM{})
	if d.Verdict == Ship || len(d.Harmed) != 1 || d.Harmed[0] != "green" || !strings.Contains(d.Text, "guardrails moved for green") {
		t.Errorf("an arm that doubles errors cannot win: %+v", d)
	}

	d = decide(t, ctl, map[string]Moments{"green": arm(r, 200000, 0.10)}, errs, SRM{})
	if d.Verdict != StopNoDiff || !strings.Contains(d.Text, "guardrails moved for green; no arm can win over control — stop") {
		t.Errorf("the only arm broke a guardrail: %+v", d)
	}

	same := arm(r, 200000, 0.10)
	big := arm(r, 3000000, 0.5)
	bigB := arm(r, 3000000, 0.5)
	if d := decide(t, big, map[string]Moments{"green": bigB}, nil, SRM{}); d.Verdict != StopNoDiff ||
		!strings.Contains(d.Text, "no difference larger than 2% on conversion") {
		t.Errorf("3M units of A/A at 50%% should rule out 2%%: %+v", d)
	}
	d = decide(t, ctl, map[string]Moments{"green": same}, nil, SRM{})
	if d.Verdict != KeepRunning || !strings.Contains(d.Text, "keep running: about") || d.DaysNeeded == nil {
		t.Errorf("A/A at 200k units, 10%%, should keep running with a time: %+v", d)
	}
}

func TestAdjustProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := rapid.SliceOfN(rapid.Float64Range(0, 1), 1, 20).Draw(t, "p")
		holm, bh := Adjust(p, Holm), Adjust(p, BenjaminiHochberg)
		for i := range p {
			if holm[i] < p[i] || bh[i] < p[i] || holm[i] > 1 || bh[i] > 1 {
				t.Fatalf("adjusted below raw or above 1: p %v holm %v bh %v", p[i], holm[i], bh[i])
			}
			if bh[i] > holm[i]+1e-15 {
				t.Fatalf("BH %v above Holm %v", bh[i], holm[i])
			}
			for j := range p {
				if p[i] < p[j] && (holm[i] > holm[j] || bh[i] > bh[j]) {
					t.Fatalf("adjustment changed the order of %v and %v", p[i], p[j])
				}
			}
		}
	})
}

// The always-valid p-value is the level at which the sequence's edge touches 0.
func TestSequentialPInvertsTheSequence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := rapid.Float64Range(-5, 5).Draw(t, "d")
		se := rapid.Float64Range(0.01, 3).Draw(t, "se")
		n := rapid.Float64Range(10, 1e7).Draw(t, "n")
		b := newBoundary(0.05, rapid.Float64Range(100, 1e7).Draw(t, "planned"))
		p := b.pValue(d, se, n)
		if p < 1e-300 || p >= 1 {
			return
		}
		if hw := b.halfWidth(se, n, p); math.Abs(hw-math.Abs(d)) > 1e-6*math.Max(1, math.Abs(d)) {
			t.Fatalf("half-width at alpha = p(%v) is %v, want |d| = %v", p, hw, math.Abs(d))
		}
	})
}

func TestMomentsMergeIsAdding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ys := rapid.SliceOfN(rapid.Float64Range(-1e3, 1e3), 2, 50).Draw(t, "ys")
		k := rapid.IntRange(0, len(ys)).Draw(t, "k")
		var all, a, b Moments
		for i, y := range ys {
			all.AddWithPre(y, y/2+1)
			if i < k {
				a.AddWithPre(y, y/2+1)
			} else {
				b.AddWithPre(y, y/2+1)
			}
		}
		a.Merge(b)
		if math.Abs(a.Mean()-all.Mean()) > 1e-9 || math.Abs(a.Var()-all.Var()) > 1e-6*math.Max(1, all.Var()) ||
			math.Abs(a.covXY()-all.covXY()) > 1e-6*math.Max(1, math.Abs(all.covXY())) {
			t.Fatalf("merged %+v, added %+v", a, all)
		}
	})
}
