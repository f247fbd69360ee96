package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// meanJudge is what the two mean tests have in common, for the tests of their states.
type meanJudge interface {
	Observe(canaryN int64, canarySum, canarySumSq float64, baseN int64, baseSum, baseSumSq float64)
	Evidence() float64
	Rejected() bool
}

// roundTrip encodes v as the store does and decodes it into out.
func roundTrip(t *testing.T, v, out any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
}

// A mean test saved mid-way (mid-block, through JSON) and restored decides exactly as the one that
// never stopped: the same evidence, bit for bit, at every later look. Both kinds: the asymptotic
// test of tokens per request, the betting test of a score in 0..1 (a canary that gets worse
// half-way, so that the later looks move the evidence).
func TestARestoredMeanTestDecidesBitForBitAsTheOriginal(t *testing.T) {
	type look struct {
		nc, nb         int64
		cs, cq, bs, bq float64
	}
	draw := func(r *rand.Rand, s int, value func(canary bool, s int) float64) look {
		var l look
		l.nc, l.nb = int64(r.IntN(3)), int64(5+r.IntN(10))
		for range l.nc {
			v := value(true, s)
			l.cs, l.cq = l.cs+v, l.cq+v*v
		}
		for range l.nb {
			v := value(false, s)
			l.bs, l.bq = l.bs+v, l.bq+v*v
		}
		return l
	}
	cases := []struct {
		name    string
		orig    meanJudge
		restore func(t *testing.T, j meanJudge) meanJudge
		value   func(r *rand.Rand) func(canary bool, s int) float64
	}{
		{"tokens", NewMeanTest(Higher, 1.1, 0.01), func(t *testing.T, j meanJudge) meanJudge {
			var s MeanState
			roundTrip(t, j.(*MeanTest).State(), &s)
			m, err := RestoreMeanTest(s)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			return m
		}, func(r *rand.Rand) func(bool, int) float64 {
			return func(canary bool, s int) float64 {
				v := math.Exp(5 + r.NormFloat64()) // lognormal tokens
				if canary && s > 300 {
					v *= 1.6
				}
				return math.Round(v)
			}
		}},
		{"score", NewBoundedMeanTest(Lower, 0.95, 0.01, 0, 1), func(t *testing.T, j meanJudge) meanJudge {
			var s BoundedMeanState
			roundTrip(t, j.(*BoundedMeanTest).State(), &s)
			m, err := RestoreBoundedMeanTest(s)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			return m
		}, func(r *rand.Rand) func(bool, int) float64 {
			return func(canary bool, s int) float64 {
				p := 0.9
				if canary && s > 300 {
					p = 0.7
				}
				if r.Float64() < p {
					return 1
				}
				return 0
			}
		}},
	}
	for _, c := range cases {
		r := rand.New(rand.NewPCG(11, 12))
		value := c.value(r)
		var restored meanJudge
		for s := 1; s <= 900; s++ {
			l := draw(r, s, value)
			if s == 257 {
				restored = c.restore(t, c.orig)
				if math.Float64bits(restored.Evidence()) != math.Float64bits(c.orig.Evidence()) {
					t.Fatalf("%s: evidence %v restored, %v saved", c.name, restored.Evidence(), c.orig.Evidence())
				}
			}
			c.orig.Observe(l.nc, l.cs, l.cq, l.nb, l.bs, l.bq)
			if restored == nil {
				continue
			}
			restored.Observe(l.nc, l.cs, l.cq, l.nb, l.bs, l.bq)
			if math.Float64bits(restored.Evidence()) != math.Float64bits(c.orig.Evidence()) || restored.Rejected() != c.orig.Rejected() {
				t.Fatalf("%s, look %d: evidence %v restored, %v original", c.name, s, restored.Evidence(), c.orig.Evidence())
			}
		}
		if !c.orig.Rejected() {
			t.Fatalf("%s: the regression after look 300 was never shown (evidence %v): the later looks tested too little", c.name, c.orig.Evidence())
		}
	}
}

// A mean state that no test could have written is refused with what is wrong, never half restored.
func TestAMeanStateThatCannotBeATestIsRefused(t *testing.T) {
	m := NewMeanTest(Higher, 1.1, 0.01)
	b := NewBoundedMeanTest(Lower, 0.95, 0.01, 0, 1)
	for i := range 40 {
		m.Observe(2, 800, 330000, 10, 3900, 1600000)
		b.Observe(1, float64(i%2), float64(i%2), 9, 8, 8)
	}
	for _, c := range []struct {
		name, want string
		edit       func(*MeanState)
	}{
		{"direction", "direction", func(s *MeanState) { s.Worse = 7 }},
		{"margin against direction", "margin", func(s *MeanState) { s.Margin = 0.9 }},
		{"alpha", "alpha", func(s *MeanState) { s.Alpha = 1 }},
		{"negative count", "count", func(s *MeanState) { s.Canary.N = -1 }},
		{"NaN mean", "mean", func(s *MeanState) { s.Base.Mean = math.NaN() }},
		{"open block larger than all", "open block", func(s *MeanState) { s.Open[0].N = s.Canary.N + 1; s.Open[0].Mean = 1 }},
		{"infinite sum", "closed blocks", func(s *MeanState) { s.SumWD = math.Inf(1) }},
		{"negative weights", "closed blocks", func(s *MeanState) { s.SumW = -1 }},
	} {
		s := m.State()
		c.edit(&s)
		if _, err := RestoreMeanTest(s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mean, %s: got %v, want an error about %s", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name, want string
		edit       func(*BoundedMeanState)
	}{
		{"bounds", "not a range", func(s *BoundedMeanState) { s.Lo, s.Hi = 1, 1 }},
		{"infinite bound", "not a range", func(s *BoundedMeanState) { s.Hi = math.Inf(1) }},
		{"bettors", "bettors", func(s *BoundedMeanState) { s.LogK = s.LogK[1:] }},
		{"capital", "capitals", func(s *BoundedMeanState) { s.LogK[2] = math.NaN() }},
		{"blocks", "blocks", func(s *BoundedMeanState) { s.Blocks = -3 }},
		{"squared deviations", "squared deviations", func(s *BoundedMeanState) { s.Canary.M2 = -1 }},
	} {
		s := b.State()
		c.edit(&s)
		if _, err := RestoreBoundedMeanTest(s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bounded, %s: got %v, want an error about %s", c.name, err, c.want)
		}
	}
	if _, err := RestoreMeanTest(m.State()); err != nil {
		t.Fatalf("a state as saved is refused: %v", err)
	}
	if _, err := RestoreBoundedMeanTest(b.State()); err != nil {
		t.Fatalf("a state as saved is refused: %v", err)
	}
}
