package metrics

import (
	"math"
	"sync/atomic"
	"time"
)

// Layout of the latency histogram. Bucket 0 holds values below histMin, the
// last bucket values at or above the top bound (about 10m11s), and the
// regularBuckets in between each span a factor of 2^(1/16):
//
//	bucket i (1..regularBuckets) = [histMin·2^((i-1)/16), histMin·2^(i/16))
//
// Quantile reports the geometric middle of a bucket, rounded to the
// nanosecond, so for values inside the regular range its relative error is at
// most 2^(1/32)-1 ≈ 2.19%, plus half a nanosecond: 2.20% at worst, at 1µs.
// See TestQuantileAccuracy.
const (
	bucketsPerDoubling = 16
	histMin            = time.Microsecond
	histMax            = 10 * time.Minute
	// regularBuckets = ceil(16·log2(10min/1µs)) = ceil(466.6); checked by a test.
	regularBuckets = 467
	numBuckets     = regularBuckets + 2
	overflowBucket = numBuckets - 1
)

// QuantileRelativeError bounds |Quantile(q)-x|/x, where x is the exact
// nearest-rank quantile within [1µs, ~10m11s), up to half a nanosecond of
// rounding.
var QuantileRelativeError = math.Exp2(1.0/(2*bucketsPerDoubling)) - 1

// bounds[i] is the lower bound in nanoseconds of regular bucket i+1, and
// bounds[regularBuckets] the top of the regular range. Written once at init.
var bounds = func() (b [regularBuckets + 1]float64) {
	for i := range b {
		b[i] = float64(histMin) * math.Exp2(float64(i)/bucketsPerDoubling)
	}
	return b
}()

// midFactor moves a bucket's lower bound to its geometric middle.
var midFactor = math.Exp2(1.0 / (2 * bucketsPerDoubling))

// bucketOf returns the bucket index of d. It allocates nothing.
func bucketOf(d time.Duration) int {
	v := float64(d)
	if v < bounds[0] {
		return 0
	}
	if v >= bounds[regularBuckets] {
		return overflowBucket
	}
	i := int(math.Log2(v/bounds[0]) * bucketsPerDoubling)
	// Log2 may round across a bound; the table is the truth.
	i = min(max(i, 0), regularBuckets-1)
	if v < bounds[i] {
		i--
	} else if v >= bounds[i+1] {
		i++
	}
	return i + 1
}

// Histogram is a latency distribution in fixed log buckets. Its zero value is
// empty and ready to use; all methods are safe for concurrent use, and
// Observe is lock-free and allocation-free. A reader running concurrently with
// writers sees each bucket exactly but may see some in-progress observations
// and not others.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
}

// Observe records one duration; negative durations count as zero.
func (h *Histogram) Observe(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the q-quantile (0 <= q <= 1, clamped) by nearest rank: the
// value of the ceil(q·Count())-th smallest observation (at least the first),
// within QuantileRelativeError. Values below 1µs are reported as 1µs, values
// beyond the top bound as the top bound. It returns 0 when h is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	var c [numBuckets]uint64
	n := h.load(&c)
	if n == 0 {
		return 0
	}
	if !(q > 0) { // also NaN
		q = 0
	}
	rank := uint64(math.Ceil(min(q, 1) * float64(n)))
	rank = min(max(rank, 1), n)
	var cum uint64
	for i, k := range c {
		cum += k
		if cum >= rank {
			return representative(i)
		}
	}
	return representative(overflowBucket) // unreachable: cum reaches n
}

func representative(i int) time.Duration {
	switch i {
	case 0:
		return histMin
	case overflowBucket:
		return time.Duration(math.Ceil(bounds[regularBuckets]))
	}
	return time.Duration(math.Round(bounds[i-1] * midFactor))
}

// CountAbove returns how many observations were slower than d, with d rounded
// up to the upper bound of its bucket: every observation above d·2^(1/16) is
// counted and none at or below d. The same d therefore draws the same line in
// every histogram, which is what comparing two versions needs. (For d below
// 1µs or past the top bound, the line is that of the first or last bucket.)
func (h *Histogram) CountAbove(d time.Duration) uint64 {
	var n uint64
	for i := bucketOf(d) + 1; i < numBuckets; i++ {
		n += h.counts[i].Load()
	}
	return n
}

// Merge adds other's observations to h. other may be nil.
func (h *Histogram) Merge(other *Histogram) {
	if other == nil {
		return
	}
	for i := range other.counts {
		if v := other.counts[i].Load(); v != 0 {
			h.counts[i].Add(v)
		}
	}
}

// Bucket is one bucket of a Histogram: observations d with Lower <= d < Upper.
type Bucket struct {
	Lower, Upper time.Duration
	Count        uint64
}

// Buckets returns every bucket in increasing order, empty ones included, so
// that the buckets of two histograms line up index by index. The first bucket
// starts at 0 (underflow) and the last ends at the largest Duration (overflow).
func (h *Histogram) Buckets() []Bucket {
	out := make([]Bucket, numBuckets)
	for i := range out {
		out[i] = Bucket{Lower: 0, Upper: math.MaxInt64, Count: h.counts[i].Load()}
		if i > 0 {
			out[i].Lower = time.Duration(math.Ceil(bounds[i-1]))
		}
		if i < overflowBucket {
			out[i].Upper = time.Duration(math.Ceil(bounds[i]))
		}
	}
	return out
}

// load copies the counts into c and returns their sum.
func (h *Histogram) load(c *[numBuckets]uint64) uint64 {
	var n uint64
	for i := range c {
		c[i] = h.counts[i].Load()
		n += c[i]
	}
	return n
}

// add adds c to the counts.
func (h *Histogram) add(c *[numBuckets]uint64) {
	for i, v := range c {
		if v != 0 {
			h.counts[i].Add(v)
		}
	}
}

func (h *Histogram) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
}
