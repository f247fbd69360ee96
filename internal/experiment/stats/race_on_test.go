//go:build race

package stats

// raceEnabled skips the long simulations under the race detector, which slows them tenfold and
// finds nothing in single-goroutine arithmetic.
const raceEnabled = true
