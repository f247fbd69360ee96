package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestBucketLayout(t *testing.T) {
	want := int(math.Ceil(bucketsPerDoubling * math.Log2(float64(histMax)/float64(histMin))))
	if regularBuckets != want {
		t.Fatalf("regularBuckets = %d, want ceil(16·log2(10m/1µs)) = %d", regularBuckets, want)
	}
	b := new(Histogram).Buckets()
	if len(b) != numBuckets || b[0].Lower != 0 || b[0].Upper != histMin || b[len(b)-1].Upper != math.MaxInt64 {
		t.Fatalf("bad ends: %d buckets, first %+v, last %+v", len(b), b[0], b[len(b)-1])
	}
	if top := b[len(b)-1].Lower; top < histMax {
		t.Errorf("regular range ends at %v, before %v", top, histMax)
	}
	for i := 1; i < len(b); i++ {
		if b[i].Lower != b[i-1].Upper || b[i].Lower >= b[i].Upper {
			t.Fatalf("buckets %d and %d do not tile: %+v %+v", i-1, i, b[i-1], b[i])
		}
	}
	// Each integer duration lands in the bucket whose bounds hold it.
	for i, bk := range b {
		for _, d := range []time.Duration{bk.Lower, bk.Upper - 1} {
			if got := bucketOf(d); got != i {
				t.Fatalf("bucketOf(%v) = %d, want %d (%+v)", d, got, i, bk)
			}
		}
	}
}

// exactQuantile is the nearest-rank quantile of sorted samples, the
// definition Quantile follows.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

// logUniform draws durations spread evenly in log scale over the regular range.
func logUniform() *rapid.Generator[time.Duration] {
	return rapid.Custom(func(t *rapid.T) time.Duration {
		exp := rapid.Float64Range(0, math.Log2(float64(histMax/histMin))).Draw(t, "log2µs")
		return time.Duration(float64(histMin) * math.Exp2(exp))
	})
}

func TestQuantileAccuracy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		samples := rapid.SliceOfN(logUniform(), 1, 500).Draw(t, "samples")
		q := rapid.Float64Range(0, 1).Draw(t, "q")
		var h Histogram
		for _, d := range samples {
			h.Observe(d)
		}
		slices.Sort(samples)
		exact, got := exactQuantile(samples, q), h.Quantile(q)
		// Half a nanosecond of rounding on top of the bucket width.
		if tol := QuantileRelativeError*float64(exact) + 0.5; math.Abs(float64(got-exact)) > tol {
			t.Fatalf("Quantile(%v) = %v, exact %v: error %.4f%% above bound %.4f%%",
				q, got, exact, 100*math.Abs(float64(got-exact))/float64(exact), 100*QuantileRelativeError)
		}
		if h.Count() != uint64(len(samples)) {
			t.Fatalf("Count() = %d, want %d", h.Count(), len(samples))
		}
	})
}

// TestQuantileAccuracyMeasured reports the worst error seen on a large sample,
// for the figure in the package documentation.
func TestQuantileAccuracyMeasured(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]time.Duration, 200_000)
	var h Histogram
	for i := range samples {
		samples[i] = time.Duration(float64(histMin) * math.Exp2(rng.Float64()*29))
		h.Observe(samples[i])
	}
	slices.Sort(samples)
	worst := 0.0
	for q := 0.0; q <= 1; q += 0.0005 {
		exact, got := exactQuantile(samples, q), h.Quantile(q)
		if tol := QuantileRelativeError*float64(exact) + 0.5; math.Abs(float64(got-exact)) > tol {
			t.Fatalf("Quantile(%v) = %v, exact %v: beyond the bound", q, got, exact)
		}
		worst = max(worst, math.Abs(float64(got-exact))/float64(exact))
	}
	t.Logf("worst relative quantile error over 2001 quantiles of 200k samples: %.4f%% (bound %.4f%%)", 100*worst, 100*QuantileRelativeError)
}

func TestCountAbove(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		samples := rapid.SliceOf(logUniform()).Draw(t, "samples")
		d := logUniform().Draw(t, "d")
		var h Histogram
		for _, x := range samples {
			h.Observe(x)
		}
		upper := h.Buckets()[bucketOf(d)].Upper
		var above, aboveD, aboveGrown uint64
		for _, x := range samples {
			if x >= upper {
				above++
			}
			if x > d {
				aboveD++
			}
			if float64(x) > float64(d)*math.Exp2(1.0/bucketsPerDoubling) {
				aboveGrown++
			}
		}
		got := h.CountAbove(d)
		if got != above {
			t.Fatalf("CountAbove(%v) = %d, want %d samples >= %v", d, got, above, upper)
		}
		if got < aboveGrown || got > aboveD {
			t.Fatalf("CountAbove(%v) = %d, outside [%d above d·2^(1/16), %d above d]", d, got, aboveGrown, aboveD)
		}
	})
}

func TestMergeEqualsUnion(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.SliceOf(rapid.Int64Range(-10, int64(time.Hour)).AsAny()).Draw(t, "a")
		b := rapid.SliceOf(rapid.Int64Range(-10, int64(time.Hour)).AsAny()).Draw(t, "b")
		var ha, hb, hu Histogram
		for _, x := range a {
			ha.Observe(time.Duration(x.(int64)))
			hu.Observe(time.Duration(x.(int64)))
		}
		for _, x := range b {
			hb.Observe(time.Duration(x.(int64)))
			hu.Observe(time.Duration(x.(int64)))
		}
		ha.Merge(&hb)
		ha.Merge(nil)
		if !slices.Equal(ha.Buckets(), hu.Buckets()) {
			t.Fatal("merged buckets differ from the buckets of the union")
		}
	})
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Quantile(0.5) != 0 || h.CountAbove(0) != 0 {
		t.Fatal("empty histogram is not empty")
	}
	h.Observe(-time.Second)     // counts as zero: underflow
	h.Observe(500)              // underflow
	h.Observe(time.Hour)        // overflow
	h.Observe(20 * time.Minute) // overflow
	top := h.Buckets()[overflowBucket].Lower
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, histMin}, {0.5, histMin}, {0.51, top}, {1, top}, {math.NaN(), histMin}, {-1, histMin}, {2, top}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := h.CountAbove(time.Minute); got != 2 {
		t.Errorf("CountAbove(1m) = %d, want 2", got)
	}
	if got := h.CountAbove(time.Hour); got != 0 {
		t.Errorf("CountAbove(1h) = %d, want 0 (overflow has no bucket above)", got)
	}
}
