package main

import (
	"math"
	"math/rand/v2"
)

// The samplers here are exact (up to floating point): the benchmark measures error rates of the
// order of alpha, and an approximate sampler could move them by more than the sampling noise.

// poisson draws a Poisson count: inversion of the CDF below a mean of 10, Hörmann's transformed
// rejection with squeeze (PTRS, "The transformed rejection method for generating Poisson random
// variables", 1993; the form numpy uses) above.
func poisson(r *rand.Rand, mean float64) int64 {
	switch {
	case mean <= 0:
		return 0
	case mean < 10:
		return poissonInversion(r, mean)
	}
	return poissonPTRS(r, mean)
}

func poissonInversion(r *rand.Rand, mean float64) int64 {
	p := math.Exp(-mean)
	u := r.Float64()
	k := int64(0)
	for u > p && k < 1000 { // k < 1000: only round-off can take it that far
		u -= p
		k++
		p *= mean / float64(k)
	}
	return k
}

func poissonPTRS(r *rand.Rand, mean float64) int64 {
	slam, loglam := math.Sqrt(mean), math.Log(mean)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invalpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := r.Float64() - 0.5
		v := r.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + mean + 0.43)
		if us >= 0.07 && v <= vr {
			return int64(k)
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invalpha)-math.Log(a/(us*us)+b) <= -mean+k*loglam-lg {
			return int64(k)
		}
	}
}

// binomial draws the number of successes in n trials of probability p, by inversion of the CDF:
// O(n·p) work, which is a few steps for every draw this benchmark makes (at most a few events per
// endpoint per second). Above a mean of 500 it falls back to a normal approximation, which none of
// the benchmark's settings reach.
func binomial(r *rand.Rand, n int64, p float64) int64 {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - binomial(r, n, 1-p)
	}
	mean := float64(n) * p
	if mean > 500 {
		x := math.Round(mean + math.Sqrt(mean*(1-p))*r.NormFloat64())
		return int64(min(max(x, 0), float64(n)))
	}
	f := math.Exp(float64(n) * math.Log1p(-p)) // P(0)
	odds := p / (1 - p)
	u := r.Float64()
	k := int64(0)
	for u > f && k < n {
		u -= f
		k++
		f *= odds * float64(n-k+1) / float64(k)
	}
	return k
}

// gamma draws from a Gamma distribution with the given shape and scale 1 (Marsaglia & Tsang,
// "A simple method for generating gamma variables", 2000).
func gamma(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		return gamma(r, shape+1) * math.Pow(r.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// beta draws from a Beta(a, b) distribution.
func beta(r *rand.Rand, a, b float64) float64 {
	x := gamma(r, a)
	return x / (x + gamma(r, b))
}

// gammaMultiplier draws a multiplier with mean 1 and coefficient of variation cv (1 when cv is 0).
func gammaMultiplier(r *rand.Rand, cv float64) float64 {
	if cv <= 0 {
		return 1
	}
	shape := 1 / (cv * cv)
	return gamma(r, shape) / shape
}

// normalSF is the upper tail of the standard normal distribution, P(Z > z).
func normalSF(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// kth returns the k-th smallest (0-based) of xs, reordering xs (Hoare's selection).
func kth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		pivot := median3(xs[lo], xs[(lo+hi)/2], xs[hi])
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

func median3(a, b, c float64) float64 {
	return max(min(a, b), min(max(a, b), c))
}
