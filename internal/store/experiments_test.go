package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func tracked(id, unit, event string, v float64, sec int) TrackedEvent {
	return TrackedEvent{ID: id, Unit: unit, Event: event, Value: v, Time: t0.Add(time.Duration(sec) * time.Second)}
}

func TestTrackedEventsAreIdempotentByID(t *testing.T) {
	s := open(t, "", Options{MaxEvents: 10})
	added, _, err := s.AddTracked([]TrackedEvent{
		tracked("e1", "u1", "purchase", 10, 1), tracked("e2", "u1", "purchase", 5, 2),
		tracked("e3", "u2", "purchase", 7, 3), tracked("", "u3", "purchase", 1, 3),
	})
	if err != nil || added != 3 {
		t.Fatalf("added %d, %v; want 3 (an event without id is not stored)", added, err)
	}
	// The same ids again, even with another unit or name: nothing new.
	added, _, err = s.AddTracked([]TrackedEvent{tracked("e1", "u9", "click", 1, 4), tracked("e2", "u1", "purchase", 5, 2)})
	if err != nil || added != 0 {
		t.Fatalf("a repeated batch added %d, %v", added, err)
	}
	var got []TrackedEvent
	if err := s.EachTracked("purchase", func(e TrackedEvent) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Unit != "u1" || got[0].Value != 10 || !got[0].Time.Equal(t0.Add(time.Second)) || got[2].Unit != "u2" {
		t.Errorf("events read back %+v", got)
	}
}

func TestExperimentStateRoundTrip(t *testing.T) {
	s := open(t, "", Options{MaxEvents: 10})
	if _, ok, err := s.Experiment("x"); ok || err != nil {
		t.Fatalf("an unknown experiment: ok %v, %v", ok, err)
	}
	st := ExperimentState{Name: "x", Phase: ExperimentRunning, Started: t0}
	if err := s.PutExperiment(st); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Experiment("x")
	if !ok || err != nil || got.Phase != ExperimentRunning || !got.Started.Equal(t0) {
		t.Errorf("read back %+v %v %v", got, ok, err)
	}
}

const trackChildEnv = "AVIARY_STORE_TRACK_CHILD"

// TestHelperTracker is not a test: it is the child of TestKilledTrackerLosesNothing. It stores
// batches of 10 events and prints "committed N" after each batch returns.
func TestHelperTracker(t *testing.T) {
	path := os.Getenv(trackChildEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKilledTrackerLosesNothing")
	}
	s, err := Open(path, Options{MaxEvents: 50})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	deadline := time.Now().Add(20 * time.Second)
	for n := int64(1); time.Now().Before(deadline); n++ {
		batch := make([]TrackedEvent, 10)
		for i := range batch {
			batch[i] = tracked(fmt.Sprintf("%d-%d", n, i), fmt.Sprintf("u%d", i), "purchase", 1, int(n))
		}
		if _, _, err := s.AddTracked(batch); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("committed", n)
	}
	os.Exit(0)
}

// TestKilledTrackerLosesNothing: kill -9 while events are being stored; every batch the child saw
// stored is there after reopening.
func TestKilledTrackerLosesNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aviary.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTracker$", "-test.count=1", "-test.timeout=30s")
	cmd.Env = append(os.Environ(), trackChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	var last int64
	for last < 20 && sc.Scan() {
		last = committed(t, sc.Text())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		last = committed(t, sc.Text())
	}
	cmd.Wait()
	s, err := Open(path, Options{MaxEvents: 50})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	n := 0
	if err := s.EachTracked("purchase", func(TrackedEvent) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n < int(10*last) {
		t.Errorf("the store holds %d events, but the child reported storing %d", n, 10*last)
	}
}
