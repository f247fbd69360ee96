// Package polltest waits, in tests, for a condition: polled until a deadline, so that a test on a
// busy machine waits as long as the thing it waits for takes, and never sleeps for a guessed time.
// The deadline is a bound for a loaded machine, not a pace: a test must not assert that something
// happened quickly through it.
package polltest

import (
	"testing"
	"time"
)

// Every is how often Wait polls.
const Every = 10 * time.Millisecond

// Until calls cond at once, then every every, until it holds, and reports whether it held before
// within had passed (it is called once more at the deadline).
func Until(within, every time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
			if cond() {
				return true
			}
		}
	}
}

// Wait polls cond every Every until it holds; when it has not within, it fails t, saying what it
// waited for. Call it from the test's goroutine.
func Wait(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(within, Every, cond) {
		t.Fatalf("waited %s for %s; it did not happen", within, what)
	}
}
