package main

import (
	"math"
	"math/rand/v2"
)

// model holds what the issue fixes about the traffic and the judges, plus the overdispersion the
// benchmark chooses and the margins one may vary to try a fix (flags).
type model struct {
	share     float64 // canary's share of requests
	baseEPs   int     // endpoints serving the baseline (the canary has one)
	errRate   float64 // errors per request, before the per-endpoint multiplier
	errCV     float64 // coefficient of variation of an endpoint's Gamma error-rate multiplier
	medianMs  float64 // latency median, ms
	sigma     float64 // sigma of log latency
	scaleSD   float64 // sigma of the log of an endpoint's latency-scale multiplier
	warmup    int     // seconds of baseline-only traffic before the canary starts
	seconds   int     // length of the rollout, from the canary's first request
	boundaryQ float64 // quantile of the warm-up sample used as Aviary's latency boundary
	errMargin float64 // Aviary: canary error rate tolerated, as a multiple of the baseline's
	latMargin float64 // Aviary: canary share of requests above its boundary tolerated, likewise (1 with a slowdown)
	slowdown  float64 // Aviary: the canary's boundary is (1 + slowdown) × the baseline's (config.DefaultSlowdown)
}

// scenario is one column group of the report: what the canary does differently.
type scenario struct {
	id        uint64 // part of every run's seed: never reuse or renumber
	name      string
	addErr    float64 // added to the canary's error rate (absolute)
	latFactor float64 // multiplies every canary latency
	aa        bool    // no regression: a rollback is a false rollback
	// Sensitivity scenarios replace the model's overdispersion with their own.
	ownSpread    bool
	errCV, latSD float64
}

// endpoint is one instance serving traffic, with the rates drawn for this run.
type endpoint struct {
	rate    float64 // requests per second
	errP    float64 // probability a request fails
	mu      float64 // log of the latency median, ms
	slowP   float64 // probability a request is slower than Aviary's p99 boundary (the canary's: shifted by the slowdown)
	slow90P float64 // likewise for the p90 boundary
}

// world is one run's draw of the endpoints and of the boundaries the judges use.
type world struct {
	base     []endpoint
	canary   endpoint
	sigma    float64
	logBound float64 // Aviary's latency boundary (log ms): the warm-up sample's p99
	logB90   float64 // and its p90
	shift    float64 // log(1 + slowdown): how much higher the canary's boundaries are
	logMaxMs float64 // threshold judges' latency limit (log ms): 1.2 × the baseline's true p99
	warmupN  int64   // requests in the warm-up sample
}

// newWorld draws a run's endpoints and its warm-up sample.
func newWorld(r *rand.Rand, m model, load float64, sc scenario) *world {
	errCV, scaleSD := m.errCV, m.scaleSD
	if sc.ownSpread {
		errCV, scaleSD = sc.errCV, sc.latSD
	}
	draw := func(rate float64) endpoint {
		return endpoint{
			rate: rate,
			errP: m.errRate * gammaMultiplier(r, errCV),
			mu:   math.Log(m.medianMs) + scaleSD*r.NormFloat64(),
		}
	}
	w := &world{sigma: m.sigma, base: make([]endpoint, m.baseEPs)}
	for i := range w.base {
		w.base[i] = draw(load * (1 - m.share) / float64(m.baseEPs))
	}
	w.canary = draw(load * m.share)
	w.canary.errP = min(1, w.canary.errP+sc.addErr)
	w.canary.mu += math.Log(sc.latFactor)

	// Before the canary starts, every request goes to the baseline for m.warmup seconds. Given
	// their number n, the sample's nearest-rank quantile is the k-th order statistic of n draws
	// from the baseline's mixture, k = ceil(q·n): F⁻¹(U) with U ~ Beta(k, n−k+1). That is exact,
	// and costs the same at 3,000 samples as at 300,000.
	w.warmupN = poisson(r, load*float64(m.warmup))
	sampleQuantile := func(q float64) float64 {
		if n := w.warmupN; n > 0 {
			k := math.Ceil(q * float64(n))
			return w.baseQuantile(beta(r, k, float64(n)-k+1))
		}
		return w.baseQuantile(q) // no warm-up traffic at all: not reached at ≥ 1 req/s
	}
	w.logBound, w.logB90 = sampleQuantile(m.boundaryQ), sampleQuantile(0.9)
	w.shift = math.Log(1 + m.slowdown)
	w.canary.slowP = normalSF((w.logBound + w.shift - w.canary.mu) / w.sigma)
	w.canary.slow90P = normalSF((w.logB90 + w.shift - w.canary.mu) / w.sigma)
	for i := range w.base {
		w.base[i].slowP = normalSF((w.logBound - w.base[i].mu) / w.sigma)
		w.base[i].slow90P = normalSF((w.logB90 - w.base[i].mu) / w.sigma)
	}
	w.logMaxMs = math.Log(1.2) + w.baseQuantile(0.99)
	return w
}

// baseQuantile inverts the CDF of the baseline's latency (log ms), a mixture of its endpoints'
// lognormals weighted by their traffic (equal), by bisection.
func (w *world) baseQuantile(q float64) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, e := range w.base {
		lo, hi = min(lo, e.mu-12*w.sigma), max(hi, e.mu+12*w.sigma)
	}
	for range 100 {
		mid := (lo + hi) / 2
		below := 0.0
		for _, e := range w.base {
			below += 1 - normalSF((mid-e.mu)/w.sigma)
		}
		if below/float64(len(w.base)) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// ratios returns the canary's true error rate and slow-request rate as multiples of the
// baseline's: what the count tests' null hypothesis (ratio ≤ margin) is about.
func (w *world) ratios() (errs, slow float64) {
	var be, bs float64
	for _, e := range w.base {
		be += e.errP
		bs += e.slowP
	}
	n := float64(len(w.base))
	return w.canary.errP / (be / n), w.canary.slowP / (bs / n)
}

// tick is one second of traffic.
type tick struct {
	second                         int32 // from the canary's start: 1 is its first second
	canaryN, canaryErr, canarySlow int64
	baseN, baseErr, baseSlow       int64
	canarySlow90, baseSlow90       int64
	lat                            []float64 // the canary's latencies (log ms), when wanted
}

// draw simulates one second. Arrivals are Poisson; each request goes to the canary with
// probability share, and baseline requests spread evenly over its endpoints, so each endpoint's
// count is an independent Poisson. Errors and latency are independent of each other. Baseline
// errors and slow requests are binomial counts per endpoint; the canary's requests are drawn one
// by one when perRequest (the threshold judges need the quantile of their latencies), as counts
// otherwise.
func (w *world) draw(r *rand.Rand, k *tick, perRequest bool) {
	*k = tick{lat: k.lat[:0]}
	for _, e := range w.base {
		n := poisson(r, e.rate)
		k.baseN += n
		k.baseErr += binomial(r, n, e.errP)
		k.baseSlow += binomial(r, n, e.slowP)
		k.baseSlow90 += binomial(r, n, e.slow90P)
	}
	c := &w.canary
	k.canaryN = poisson(r, c.rate)
	if !perRequest {
		k.canaryErr = binomial(r, k.canaryN, c.errP)
		k.canarySlow = binomial(r, k.canaryN, c.slowP)
		k.canarySlow90 = binomial(r, k.canaryN, c.slow90P)
		return
	}
	for range k.canaryN {
		x := c.mu + w.sigma*r.NormFloat64()
		if x > w.logBound+w.shift {
			k.canarySlow++
		}
		if x > w.logB90+w.shift {
			k.canarySlow90++
		}
		if r.Float64() < c.errP {
			k.canaryErr++
		}
		k.lat = append(k.lat, x)
	}
}
