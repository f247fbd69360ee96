package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// The stream's events, not the clock, move the watch on: each event is sent once the status
// before it was read, and the watch's clock would wait a minute.
func TestWatchRendersOnEveryEventUntilNoRolloutIsInFlight(t *testing.T) {
	api := newFakeAPI(t)
	api.statuses = []rollout.Status{progressingShop(), pausedShop(), healthyShop()}
	evs := shopEvents(2)
	api.stream = func(ctx context.Context, write func(string)) {
		write(": ping\n\n")
		for i, e := range evs {
			if !waitForReads(ctx, api.readCh, i+1) {
				return
			}
			write(sseEvent(e))
		}
		// and the stream ends
	}

	start := time.Now()
	out, err := run(t, "--server", api.url, "rollout", "status", "shop", "--watch")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the watch took %v: it waited for its clock, not the events", d)
	}
	blocks := strings.Split(out, "\n\nService:")
	if len(blocks) != 3 {
		t.Fatalf("the watch printed %d status blocks, want 3 (one per change):\n%s", len(blocks), out)
	}
	for i, want := range []string{"Phase:    Progressing", "Phase:    Paused", "Phase:    Healthy — v2 is stable"} {
		if !strings.Contains(blocks[i], want) {
			t.Errorf("block %d lacks %q:\n%s", i+1, want, blocks[i])
		}
	}
}

// waitForReads waits until the fake has answered n status reads.
func waitForReads(ctx context.Context, reads <-chan int, n int) bool {
	for {
		select {
		case got := <-reads:
			if got >= n {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

// Without a stream (an old server, a proxy that buffers) the watch reads the status on its clock.
func TestWatchWithoutAStreamReadsOnItsClock(t *testing.T) {
	api := newFakeAPI(t)
	api.statuses = []rollout.Status{progressingShop(), progressingShop(), pausedShop(), healthyShop()}
	out, _, err := aviary(t, 5*time.Millisecond, "", "--server", api.url, "rollout", "status", "shop", "-w")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "Service:"); n != 3 {
		t.Errorf("the watch printed %d blocks, want 3 (an unchanged status is not printed again):\n%s", n, out)
	}
}

func TestWatchJSONPrintsOneLinePerChange(t *testing.T) {
	api := newFakeAPI(t)
	later := pausedShop()
	left := 60.0
	later.StepRemaining = &left // only time passed: no change
	api.statuses = []rollout.Status{pausedShop(), later, progressingShop(), healthyShop()}
	out, _, err := aviary(t, 5*time.Millisecond, "", "--server", api.url, "rollout", "status", "shop", "-w", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var phases []string
	for _, l := range lines {
		var st rollout.Status
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Fatalf("line %q is not a status: %v", l, err)
		}
		phases = append(phases, string(st.Phase))
	}
	if got := strings.Join(phases, " "); got != "Paused Progressing Healthy" {
		t.Errorf("the watch printed phases %q, want one line per change: Paused Progressing Healthy", got)
	}
}

func TestWatchStopsAtOnceWhenNoRolloutIsInFlight(t *testing.T) {
	api := newFakeAPI(t)
	api.statuses = []rollout.Status{{Service: "shop", Managed: false, StableVersion: "v1"}}
	out, err := run(t, "--server", api.url, "rollout", "status", "shop", "--watch")
	if err != nil || !strings.Contains(out, "not managed") {
		t.Errorf("watch of an unmanaged service = %v\n%s", err, out)
	}
}
