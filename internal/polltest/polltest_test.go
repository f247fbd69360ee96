package polltest

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	if !Until(time.Minute, time.Millisecond, func() bool { return calls.Add(1) >= 3 }) {
		t.Fatal("Until gave up on a condition that holds at the third call")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
}

func TestUntilGivesUpAtTheDeadline(t *testing.T) {
	var calls atomic.Int32
	if Until(20*time.Millisecond, time.Millisecond, func() bool { calls.Add(1); return false }) {
		t.Fatal("Until reported a condition that never holds")
	}
	if calls.Load() < 2 {
		t.Errorf("cond called %d times, want at least at once and at the deadline", calls.Load())
	}
}

func TestWaitFailsTheTestSayingWhat(t *testing.T) {
	ft := &fakeT{}
	done := make(chan struct{})
	go func() { // Fatalf ends the goroutine, as it does a test's
		defer close(done)
		Wait(ft, time.Millisecond, "the sky to fall", func() bool { return false })
	}()
	<-done
	if want := "waited 1ms for the sky to fall; it did not happen"; ft.msg != want {
		t.Errorf("failure %q, want %q", ft.msg, want)
	}
}

// fakeT is a testing.TB that records a fatal failure (a fake: a real T's failure would fail this
// test).
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
