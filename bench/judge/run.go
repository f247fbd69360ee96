package main

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// runResult is what one simulated rollout shows.
type runResult struct {
	times []int32 // per judge: second of the rollback (from the canary's start), -1 for none; Aviary and the oracle at alpha
	cause uint8   // Aviary at alpha: which tests had rejected when it rolled back (causeErrors, causeLatency)
	truth uint8   // the run's true ratios above the margin (causeErrors, causeLatency bits)
	// The evidence paths of Aviary's judge and of the oracle, to read their rollback at any alpha
	// from maxAlpha to minAlpha (see evidencePath).
	aviary, oracle []step
}

// runOnce simulates one rollout, feeding every judge the same traffic, until every judge is done
// (a threshold judge has rolled back; Aviary's judge and the oracle have reached the level of
// minAlpha) or the rollout is over.
func runOnce(m model, load float64, sc scenario, seed [2]uint64) runResult {
	r := rand.New(rand.NewPCG(seed[0], seed[1]))
	w := newWorld(r, m, load, sc)
	res := runResult{times: make([]int32, len(judgeSpecs))}
	errs, slow := w.ratios()
	if errs > m.errMargin {
		res.truth |= causeErrors
	}
	if slow > m.latMargin {
		res.truth |= causeLatency
	}

	judges := make([]judge, len(judgeSpecs))
	undecided, thresholdLeft := len(judges), 0
	for i, s := range judgeSpecs {
		judges[i] = s.build(m, w, sc)
		res.times[i] = -1
		if s.threshold {
			thresholdLeft++
		}
	}

	var k tick
	var win window
	for t := 1; t <= m.seconds && undecided > 0; t++ {
		w.draw(r, &k, thresholdLeft > 0)
		k.second = int32(t)
		var meas *measurement
		if thresholdLeft > 0 {
			win.add(&k)
			if t%interval == 0 {
				mm := win.measure()
				meas = &mm
			}
		}
		for i, j := range judges {
			if res.times[i] >= 0 || !j.observe(&k, meas) {
				continue
			}
			res.times[i] = int32(t)
			undecided--
			if judgeSpecs[i].threshold {
				thresholdLeft--
			}
		}
	}
	a, o := judges[aviaryIdx].(*aviary), judges[oracleIdx].(*oracle)
	res.aviary, res.oracle = a.path.steps, o.path.steps
	res.times[aviaryIdx], res.times[oracleIdx] = first(res.aviary, aviaryLevel(alpha)), first(res.oracle, oracleLevel(alpha))
	if res.times[aviaryIdx] >= 0 {
		res.cause = a.cause
	}
	return res
}

// runCell simulates runs rollouts of one scenario at one load on workers goroutines. Run i has
// its own seed, so the results do not depend on which goroutine ran it.
func runCell(m model, load float64, sc scenario, runs, workers int, seed uint64) []runResult {
	return parallel(runs, workers, func(i int64) runResult { return runOnce(m, load, sc, runSeed(seed, load, sc, i)) })
}

// parallel computes run(i) for i in [0, runs) on workers goroutines, each result in its place.
func parallel[T any](runs, workers int, run func(i int64) T) []T {
	out := make([]T, runs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(runs) {
					return
				}
				out[i] = run(i)
			}
		})
	}
	wg.Wait()
	return out
}

// runSeed derives a PCG seed from the benchmark's seed, the load, the scenario and the run.
func runSeed(seed uint64, load float64, sc scenario, run int64) [2]uint64 {
	h := splitmix(seed ^ splitmix(math.Float64bits(load)))
	h = splitmix(h ^ splitmix(sc.id))
	return [2]uint64{seed, splitmix(h ^ uint64(run))}
}

// splitmix is SplitMix64's finaliser: a bijective mix of 64 bits.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
