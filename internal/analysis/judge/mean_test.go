package judge

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// source is splitmix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
// OOPSLA 2014), drawn from a local copy of its state: a value from math/rand/v2 costs some 70 ns
// under -race, and the A/A simulations below draw a hundred million.
type source uint64

func newSource(seed, stream uint64) *source {
	s := source(mix(stream ^ mix(seed)))
	return &s
}

// mix is splitmix64's output function.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// next advances a splitmix64 state and returns it with a uniform value in (0, 1).
func next(x uint64) (uint64, float64) {
	x += 0x9e3779b97f4a7c15
	return x, (float64(mix(x)>>11) + 0.5) / (1 << 53)
}

// normal draws a standard normal value (Box-Muller).
func normal(x uint64) (uint64, float64) {
	x, u1 := next(x)
	x, u2 := next(x)
	return x, math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// poisson draws a Poisson count (Knuth for small means, the normal approximation above 50).
func (s *source) poisson(mean float64) int64 {
	x := uint64(*s)
	defer func() { *s = source(x) }()
	if mean <= 0 {
		return 0
	}
	if mean > 50 {
		var z float64
		x, z = normal(x)
		return max(0, int64(math.Round(mean+math.Sqrt(mean)*z)))
	}
	l, k, p := math.Exp(-mean), int64(0), 1.0
	for {
		var u float64
		x, u = next(x)
		if p *= u; p <= l {
			return k
		}
		k++
	}
}

// dist is a distribution of per-request values: heavy-ish tails for tokens and cost, a
// left-skewed one in [0, 1] for quality scores.
type dist struct {
	kind  int
	a     float64 // scoreKind: Beta(a, 1), that is U^(1/a), mean a/(a+1)
	scale float64 // a factor on every value
}

const (
	lognormalKind   = iota // exp(N(0, 1)): sd 1.3× the mean, skewness 6
	exponentialKind        // sd 1× the mean, skewness 2
	scoreKind
	twoPointKind // 1 with probability a, else 0: the most skewed a score in [0, 1] can be
)

var (
	lognormal   = dist{kind: lognormalKind, scale: 1}
	exponential = dist{kind: exponentialKind, scale: 1}
)

// score has mean `mean` in [0, 1], the values piled up near 1 like a grader's scores.
func score(mean float64) dist { return dist{kind: scoreKind, a: mean / (1 - mean), scale: 1} }

// twoPoint is 1 with probability p, else 0 (a thumbs-up, a pass of a grader's check).
func twoPoint(p float64) dist { return dist{kind: twoPointKind, a: p, scale: 1} }

// times multiplies the values (and so the mean) by k.
func (d dist) times(k float64) dist { d.scale *= k; return d }

// draw returns the sum and sum of squares of n values, each multiplied by level. Everything
// stays in registers (math.Log and math.Exp are assembly): under -race a memory read per value
// would cost more than the value.
func (d dist) draw(s *source, n int64, level float64) (sum, sumSq float64) {
	x := uint64(*s)
	spare, haveSpare := 0.0, false
	for range n {
		var v, u float64
		switch d.kind {
		case lognormalKind:
			if haveSpare {
				v, haveSpare = spare, false
			} else {
				// Marsaglia's polar method: two normal values per accepted pair.
				for {
					var u1, u2 float64
					x, u1 = next(x)
					x, u2 = next(x)
					u1, u2 = 2*u1-1, 2*u2-1
					if q := u1*u1 + u2*u2; q < 1 && q > 0 {
						f := math.Sqrt(-2 * math.Log(q) / q)
						v, spare, haveSpare = u1*f, u2*f, true
						break
					}
				}
			}
			v = math.Exp(v)
		case exponentialKind:
			x, u = next(x)
			v = -math.Log(u)
		case twoPointKind:
			x, u = next(x)
			v = 0
			if u < d.a {
				v = 1
			}
		default:
			x, u = next(x)
			v = math.Exp(math.Log(u) / d.a)
		}
		v *= d.scale * level
		sum += v
		sumSq += v * v
	}
	*s = source(x)
	return sum, sumSq
}

// rollout is a simulated canary: every second, Poisson many values at rate (both versions
// together), a share of them the canary's, then a look.
type rollout struct {
	rate, share  float64
	seconds      int
	base, canary dist
	// Optional, by second: the canary's share, and a factor on every value of both versions.
	shareAt, levelAt func(second int) float64
}

// run feeds one rollout to the tests look by look and returns, for each test and each evidence
// level, the first second at which its evidence reached the level (-1: never).
func (o rollout) run(s *source, levels []float64, tests ...meanTest) [][]int {
	at := make([][]int, len(tests))
	for i := range at {
		at[i] = slices.Repeat([]int{-1}, len(levels))
	}
	top := slices.Max(levels)
	done := make([]bool, len(tests))
	for sec := 1; sec <= o.seconds && slices.Contains(done, false); sec++ {
		share, level := o.share, 1.0
		if o.shareAt != nil {
			share = o.shareAt(sec)
		}
		if o.levelAt != nil {
			level = o.levelAt(sec)
		}
		nc, nb := s.poisson(o.rate*share), s.poisson(o.rate*(1-share))
		cs, cq := o.canary.draw(s, nc, level)
		bs, bq := o.base.draw(s, nb, level)
		for i, t := range tests {
			if done[i] {
				continue
			}
			t.Observe(nc, cs, cq, nb, bs, bq)
			e := t.Evidence()
			for j, l := range levels {
				if at[i][j] < 0 && e >= l {
					at[i][j] = sec
				}
			}
			done[i] = e >= top
		}
	}
	return at
}

// meanTest is MeanTest or BoundedMeanTest.
type meanTest interface {
	Observe(canaryN int64, canarySum, canarySumSq float64, baseN int64, baseSum, baseSumSq float64)
	Evidence() float64
}

// simulate runs `runs` rollouts on all CPUs, run i with its own stream (seed, i), and returns
// their results in run order, so they do not depend on scheduling.
func simulate(runs int, seed uint64, f func(s *source) [][]int) [][][]int {
	out := make([][][]int, runs)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = f(newSource(seed, uint64(i)))
			}
		}()
	}
	for i := range runs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

// reached returns the seconds at which test i's evidence reached level j, over the runs where it
// did.
func reached(results [][][]int, i, j int) []int {
	var seconds []int
	for _, at := range results {
		if at[i][j] >= 0 {
			seconds = append(seconds, at[i][j])
		}
	}
	return seconds
}

func median(xs []int) int {
	if len(xs) == 0 {
		return -1
	}
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// slack is three standard errors of a rate p estimated from n runs.
func slack(p float64, n int) float64 { return 3 * math.Sqrt(p*(1-p)/float64(n)) }

func TestMeanTestHoldsAlphaUnderRepeatedLooks(t *testing.T) {
	// A/A at the edge of H0 (margin 1, equal means), in both directions on the same data, looked
	// at every second for ten minutes, canary share 10%. Evidence levels 20 and 100 are the
	// rejections at alpha 5% and 1%.
	levels := []float64{20, 100}
	for k, d := range []struct {
		name string
		f    dist
	}{{"lognormal", lognormal}, {"exponential", exponential}} {
		for _, c := range []struct {
			rate float64
			runs int
		}{{1, 1000}, {10, 1000}, {100, 1000}} {
			o := rollout{rate: c.rate, share: 0.1, seconds: 600, base: d.f, canary: d.f}
			res := simulate(c.runs, uint64(1000*k)+uint64(c.rate), func(s *source) [][]int {
				return o.run(s, levels, NewMeanTest(Higher, 1, 0.05), NewMeanTest(Lower, 1, 0.05))
			})
			for i, dir := range []Direction{Higher, Lower} {
				var rates []float64
				for j, l := range levels {
					alpha := 1 / l
					rate := float64(len(reached(res, i, j))) / float64(c.runs)
					rates = append(rates, 100*rate)
					if rate > alpha+slack(alpha, c.runs) {
						t.Errorf("%s %g values/s, %s is worse: false rejections %.2f%% > alpha %g%%",
							d.name, c.rate, dir, 100*rate, 100*alpha)
					}
				}
				t.Logf("A/A %-11s %3g values/s, %-6s worse: false rejections %.2f%% (alpha 5%%), %.2f%% (alpha 1%%) in %d runs",
					d.name, c.rate, dir, rates[0], rates[1], c.runs)
			}
		}
	}
}

func TestMeanTestDetectsAHigherMean(t *testing.T) {
	// +20% tokens with a 5% margin, 10 canary values per second (100 in all, share 10%).
	const runs = 200
	for _, d := range []struct {
		name string
		f    dist
	}{{"lognormal", lognormal}, {"exponential", exponential}} {
		o := rollout{rate: 100, share: 0.1, seconds: 600, base: d.f, canary: d.f.times(1.2)}
		res := simulate(runs, 11, func(s *source) [][]int {
			return o.run(s, []float64{100}, NewMeanTest(Higher, 1.05, 0.01))
		})
		secs := reached(res, 0, 0)
		t.Logf("%s +20%%, margin 1.05, alpha 1%%, 10 canary values/s: detected in %d of %d runs, median %ds",
			d.name, len(secs), runs, median(secs))
		if len(secs) < runs*95/100 {
			t.Errorf("%s +20%%: detected in %d of %d runs within ten minutes", d.name, len(secs), runs)
		}
		if m := median(secs); m > 300 {
			t.Errorf("%s +20%%: median detection %ds, over five minutes", d.name, m)
		}
	}
}

func TestMeanTestDetectsALowerScore(t *testing.T) {
	// Quality scores in [0, 1]: 0.7 against 0.85 with 0.95 tolerated, 1 canary value per second.
	const runs = 200
	o := rollout{rate: 10, share: 0.1, seconds: 600, base: score(0.85), canary: score(0.7)}
	res := simulate(runs, 13, func(s *source) [][]int {
		return o.run(s, []float64{100}, NewMeanTest(Lower, 0.95, 0.01))
	})
	secs := reached(res, 0, 0)
	t.Logf("score 0.7 vs 0.85, margin 0.95, alpha 1%%, 1 canary value/s: detected in %d of %d runs, median %ds",
		len(secs), runs, median(secs))
	if len(secs) < runs*95/100 {
		t.Errorf("score 0.7 vs 0.85: detected in %d of %d runs within ten minutes", len(secs), runs)
	}
	// The same scores, the other way round, are no regression.
	res = simulate(runs, 14, func(s *source) [][]int {
		o := rollout{rate: 10, share: 0.1, seconds: 600, base: score(0.7), canary: score(0.85)}
		return o.run(s, []float64{100}, NewMeanTest(Lower, 0.95, 0.01))
	})
	if n := len(reached(res, 0, 0)); n > 0 {
		t.Errorf("a better canary was rejected in %d of %d runs", n, runs)
	}
}

func TestMeanTestTrafficDriftCancels(t *testing.T) {
	// Halfway through, the canary's share goes from 5% to 50% and, at the same moment, every
	// request's tokens rise by 20% (a new client, say). Pooled over the run, the canary's mean is
	// about 10% above the baseline's, past the 5% margin; compared within blocks, it is equal.
	const runs = 200
	o := rollout{rate: 100, seconds: 600, base: lognormal, canary: lognormal,
		shareAt: func(s int) float64 { return map[bool]float64{true: 0.05, false: 0.5}[s <= 300] },
		levelAt: func(s int) float64 { return map[bool]float64{true: 1, false: 1.2}[s <= 300] }}
	var mu sync.Mutex
	var effects []float64
	res := simulate(runs, 17, func(s *source) [][]int {
		test := NewMeanTest(Higher, 1.05, 0.01)
		at := o.run(s, []float64{100}, test)
		mu.Lock()
		effects = append(effects, test.Effect())
		mu.Unlock()
		return at
	})
	slices.Sort(effects)
	if e := effects[len(effects)/2]; e < 1.07 {
		t.Fatalf("the drift is no trap: median pooled effect %.3f", e)
	}
	if n := len(reached(res, 0, 0)); n > runs/50 {
		t.Errorf("drift read as a regression in %d of %d runs", n, runs)
	}
}

func TestMeanTestWithoutDataHasNoEvidence(t *testing.T) {
	check := func(name string, m *MeanTest, want float64) {
		t.Helper()
		e := m.Evidence()
		if math.IsNaN(e) || (want > 0 && e != want) {
			t.Errorf("%s: evidence %v, want %v", name, e, want)
		}
		if want > 0 && m.Rejected() {
			t.Errorf("%s: rejected", name)
		}
	}
	m := NewMeanTest(Higher, 1.05, 0.01)
	check("no data", m, 1)
	if c, b := m.Means(); !math.IsNaN(c) || !math.IsNaN(b) || !math.IsNaN(m.Effect()) {
		t.Errorf("no data: means %v, %v, effect %v", c, b, m.Effect())
	}
	m.Observe(0, 0, 0, 1000, 400_000, 2e8) // baseline only
	m.Observe(-3, 5, 5, 0, 0, 0)           // nonsense counts
	check("baseline only", m, 1)
	m.Observe(29, 29*900, 29*900*900, 0, 0, 0) // a far worse canary, one value short of the burn-in
	check("29 canary values", m, 1)
	m.Observe(1, math.NaN(), 1, 1, math.Inf(1), 1) // impossible sums are dropped
	m.Observe(1, 5, -1, 0, 0, 0)
	check("impossible sums", m, 1)
	if c, _ := m.Means(); c != 900 {
		t.Errorf("canary mean %v after dropped looks, want 900", c)
	}

	// All values equal, on both sides: no variance, no NaN.
	for _, dir := range []Direction{Higher, Lower} {
		for _, v := range []float64{0, 1, 400} {
			m := NewMeanTest(dir, 1, 0.01)
			for range 10 {
				m.Observe(10, 10*v, 10*v*v, 90, 90*v, 90*v*v)
			}
			check("constant", m, 0)
			if m.Rejected() {
				t.Errorf("%s worse, all values %g: rejected", dir, v)
			}
		}
	}
	// All-equal values, the canary's higher: overwhelming, and still a finite number.
	m = NewMeanTest(Higher, 1.05, 0.01)
	for range 10 {
		m.Observe(10, 10*2, 10*4, 90, 90, 90)
	}
	if e := m.Evidence(); !m.Rejected() || math.IsInf(e, 0) {
		t.Errorf("constant 2 vs 1: evidence %v", e)
	}
}

func TestMeanTestMargin(t *testing.T) {
	for _, c := range []struct {
		dir          Direction
		margin, want float64
	}{{Higher, 1.05, 1.05}, {Higher, 1 / 1.05, 1.05}, {Lower, 0.95, 0.95}, {Lower, 1.25, 0.8}, {Higher, 0, 1}, {Lower, math.NaN(), 1}} {
		if got := NewMeanTest(c.dir, c.margin, 0.01).Margin; math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s worse, margin %g: %g, want %g", c.dir, c.margin, got, c.want)
		}
	}
}

func TestMeanTestDescribe(t *testing.T) {
	m := NewMeanTest(Higher, 1.05, 0.01)
	m.Unit = "tokens"
	if got, want := m.Describe(), "canary n/a vs baseline n/a tokens/request over 0 / 0 requests; evidence 1 < 100 needed"; got != want {
		t.Errorf("describe without data:\n got %s\nwant %s", got, want)
	}
	src := newSource(5, 6)
	for range 20 {
		cs, cq := exponential.times(412).draw(src, 91, 1)
		bs, bq := exponential.times(380).draw(src, 820, 1)
		m.Observe(91, cs, cq, 820, bs, bq)
	}
	got := m.Describe()
	for _, part := range []string{"canary 4", "vs baseline 3", " tokens/request over 1,820 / 16,400 requests; evidence ", " needed"} {
		if !strings.Contains(got, part) {
			t.Errorf("describe: %q lacks %q", got, part)
		}
	}
	if (m.Rejected() && !strings.Contains(got, "≥ 100 needed")) || (!m.Rejected() && !strings.Contains(got, "< 100 needed")) {
		t.Errorf("describe: %q disagrees with Rejected %v", got, m.Rejected())
	}
	t.Log(got)

	q := NewMeanTest(Lower, 0.95, 0.01)
	q.Observe(40, 40*0.7, 40*0.5, 400, 400*0.85, 400*0.73)
	if got := q.Describe(); !strings.HasPrefix(got, "canary 0.7 vs baseline 0.85 per request over 40 / 400 requests; evidence ") {
		t.Errorf("describe scores: %s", got)
	}
	if e := q.Effect(); math.Abs(e-0.7/0.85) > 1e-12 {
		t.Errorf("effect %v", e)
	}
	for v, want := range map[float64]string{412.4: "412", 16400.2: "16,400", 0.0123: "0.0123", 0.85: "0.85", 2.5: "2.5", math.NaN(): "n/a"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %s, want %s", v, got, want)
		}
	}
}
