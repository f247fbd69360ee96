package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// childEnv names the store file that TestHelperCommitter writes to, when the test binary runs
// itself as a child process.
const childEnv = "AVIARY_STORE_CHILD"

// TestHelperCommitter is not a test: it is the child process of TestKilledWriterLosesNothing. It
// commits states of increasing generation and prints "committed N" after each commit returns.
func TestHelperCommitter(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("runs only as the child of TestKilledWriterLosesNothing")
	}
	s, err := Open(path, Options{MaxEvents: 50})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// Bounded, in case the parent dies without killing us.
	deadline := time.Now().Add(20 * time.Second)
	for gen := int64(1); time.Now().Before(deadline); gen++ {
		st := rollout.State{Service: "web", Phase: rollout.Progressing, Weight: int(gen % 100), Generation: gen}
		ev := rollout.Event{Time: time.Now(), Service: "web", Kind: "StepStarted", Weight: st.Weight}
		if _, err := s.Commit("web", st, []rollout.Event{ev}); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("committed", gen) // os.Stdout is unbuffered: the parent sees it at once
	}
	os.Exit(0)
}

// TestKilledWriterLosesNothing kills a process in the middle of committing, and checks that the
// store opens cleanly and holds at least every commit the process saw return.
func TestKilledWriterLosesNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aviary.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCommitter$", "-test.count=1", "-test.timeout=30s")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	var last int64
	timeout := time.After(2 * time.Minute) // a deadline, not a measure: a loaded machine commits slowly
	killed := false
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited before it was killed, after committing %d", last)
			}
			last = committed(t, line)
			if last >= 20 {
				if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred Close, no flush
					t.Fatal(err)
				}
				killed = true
			}
		case <-timeout:
			t.Fatalf("child committed only %d states in 2 minutes", last)
		}
	}
	// The child may have reported more commits before the signal landed; they count too.
	for line := range lines {
		last = committed(t, line)
	}
	cmd.Wait()

	s, err := Open(path, Options{MaxEvents: 50})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	states, err := s.States()
	if err != nil {
		t.Fatal(err)
	}
	if got := states["web"].Generation; got < last {
		t.Errorf("stored generation %d, but the child reported committing %d", got, last)
	}
	events, err := s.LastEvents("web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Seq < uint64(last) {
		t.Errorf("last event %+v, want seq ≥ %d", events, last)
	}
	t.Logf("child reported %d commits; the store holds generation %d", last, states["web"].Generation)
}

// committed parses a "committed N" line of the child.
func committed(t *testing.T, line string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimPrefix(line, "committed "), 10, 64)
	if err != nil || !strings.HasPrefix(line, "committed ") {
		t.Fatalf("child said %q", line)
	}
	return n
}
