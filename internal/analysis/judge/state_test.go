package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// A test saved mid-way (through JSON, as the store keeps it) and restored decides exactly as the
// one that never stopped: the same evidence, bit for bit, at every later look, so a restart of the
// process neither spends alpha afresh nor loses or invents evidence.
func TestARestoredCountTestDecidesBitForBitAsTheOriginal(t *testing.T) {
	for _, margin := range []float64{1, 1.2} {
		r := rand.New(rand.NewPCG(7, uint64(margin*10)))
		orig := NewCountTest(margin, 0.005)
		if margin > 1 {
			orig.SetPrior(Moderate) // the prior is part of the state
		}
		orig.Dispersion = &Dispersion{}
		orig.SetBaselineBefore(30000, 150)
		look := func(ct *CountTest, s int, nc, ce, nb, be int64) {
			ct.Observe(int64(s)/10, nc, ce, nb, be)
			if s%10 == 0 {
				ct.Dispersion.ObserveBatch(nb*10, be*10+int64(s%3))
				ct.Dispersion.SetUnits([]int64{nb, nb + 3, nb + 7}, []int64{be, be + 1, 0})
			}
		}
		type obs struct{ nc, ce, nb, be int64 }
		var later []obs
		for s := 1; s <= 600; s++ {
			nc := binomial(r, 100, 0.1)
			o := obs{nc, binomial(r, nc, 0.012), 100 - nc, binomial(r, 100-nc, 0.005)}
			if s <= 257 { // mid-batch: the open batch is saved as it stands
				look(orig, s, o.nc, o.ce, o.nb, o.be)
				continue
			}
			later = append(later, o)
		}
		data, err := json.Marshal(orig.State())
		if err != nil {
			t.Fatal(err)
		}
		var st CountState
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		restored, err := RestoreCountTest(st)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if math.Float64bits(restored.Evidence()) != math.Float64bits(orig.Evidence()) {
			t.Fatalf("margin %g: evidence %v restored, %v saved", margin, restored.Evidence(), orig.Evidence())
		}
		for i, o := range later {
			s := 258 + i
			look(orig, s, o.nc, o.ce, o.nb, o.be)
			look(restored, s, o.nc, o.ce, o.nb, o.be)
			if math.Float64bits(restored.Evidence()) != math.Float64bits(orig.Evidence()) || restored.Rejected() != orig.Rejected() {
				t.Fatalf("margin %g, second %d: evidence %v restored, %v original", margin, s, restored.Evidence(), orig.Evidence())
			}
			so, sr := orig.RuledOut(Effect{Ratio: 2, Points: 0.015}, orig.Alpha), restored.RuledOut(Effect{Ratio: 2, Points: 0.015}, restored.Alpha)
			if so != sr {
				t.Fatalf("margin %g, second %d: safety %+v restored, %+v original", margin, s, sr, so)
			}
		}
		if orig.closed < 50 || len(orig.comps) < 5 {
			t.Fatalf("the test saw too little to mean anything: %d batches, %d components", orig.closed, len(orig.comps))
		}
	}
}

// A state that no test could have written is refused with what is wrong, never half restored.
func TestACountStateThatCannotBeATestIsRefused(t *testing.T) {
	good := func() CountState {
		ct := NewCountTest(1.2, 0.01)
		ct.Observe(1, 10, 1, 90, 0)
		ct.Observe(2, 10, 1, 90, 0)
		return ct.State()
	}
	for name, spoil := range map[string]func(*CountState){
		"alpha":            func(s *CountState) { s.Alpha = 0 },
		"grid":             func(s *CountState) { s.Open = s.Open[1:] },
		"component grid":   func(s *CountState) { s.Comps[0].LogLR = nil },
		"weights":          func(s *CountState) { s.Comps = append(s.Comps, s.Comps[0]) },
		"infinite":         func(s *CountState) { s.Comps[0].LogLR[2] = math.Inf(1) },
		"events>requests":  func(s *CountState) { s.CanaryEvents = s.CanaryN + 1 },
		"dispersion below": func(s *CountState) { s.Phi = 0.5 },
		"prior":            func(s *CountState) { s.Prior = 7 },
	} {
		s := good()
		spoil(&s)
		if _, err := RestoreCountTest(s); err == nil || !strings.Contains(err.Error(), "count test state") {
			t.Errorf("%s: err = %v, want a refusal", name, err)
		}
	}
	if _, err := RestoreCountTest(good()); err != nil {
		t.Fatalf("a good state: %v", err)
	}
}
