package fakellm

import (
	"context"
	"time"
)

// Clock is the time the server paces answers by: real time unless a test gives its own, so that a
// test can check the pace the server keeps rather than the pace at which a loaded machine lets a
// client read.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, and reports false if ctx ended first.
	Sleep(ctx context.Context, d time.Duration) bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
