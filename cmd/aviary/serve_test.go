//go:build unix

package main

// `aviary serve` refusing to start, as users meet it: the real binary, built by the test, on a
// config and a store made for each case. Every refusal must be the message written for that case
// (what is wrong, what to do) and exit status 1 — never a panic.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// serveConfig is a config with one service of the given versions (the first is the release),
// listening on ports the kernel chooses, keeping its state in storePath.
func serveConfig(storePath string, versions ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {listen: \"127.0.0.1:0\"}\nadmin: {listen: \"127.0.0.1:0\"}\nstorage: {path: %q}\n", storePath)
	b.WriteString("services:\n  - name: shop\n    match: {pathPrefix: /}\n    versions:\n")
	for _, v := range versions {
		fmt.Fprintf(&b, "      - {name: %s, endpoints: [\"http://127.0.0.1:1\"]}\n", v)
	}
	fmt.Fprintf(&b, "    release: %s\n", versions[0])
	return b.String()
}

// serveFixture is a directory that every user can read, holding the built binary; cases make
// their configs and stores in it.
type serveFixture struct {
	dir, bin string
}

func newServeFixture(t *testing.T) serveFixture {
	t.Helper()
	dir := t.TempDir()
	// The read-only case runs aviary as another user, who must reach the binary and the config
	// (t.TempDir makes both the test's directory and this one private).
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	must(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "aviary")
	build := exec.Command("go", "build", "-o", bin, "aviary.dev/aviary/cmd/aviary")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build aviary: %v\n%s", err, out)
	}
	return serveFixture{dir: dir, bin: bin}
}

// writeConfig writes config into a new directory of the fixture and returns its path.
func (f serveFixture) writeConfig(t *testing.T, name, config string) string {
	t.Helper()
	dir := filepath.Join(f.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// command is `aviary serve -c config`; as nobody when the test runs as root and the case needs a
// user whom file modes bind.
func (f serveFixture) command(ctx context.Context, config string, unprivileged bool) *exec.Cmd {
	cmd := exec.CommandContext(ctx, f.bin, "serve", "-c", config, "--no-watch")
	if unprivileged && os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	return cmd
}

// wantRefusal runs cmd and checks that it exits with status 1 and says every one of want.
func wantRefusal(t *testing.T, cmd *exec.Cmd, want ...string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if cmd.SysProcAttr != nil && errors.Is(err, syscall.EPERM) {
		t.Skipf("this root may not run aviary as another user (%v), and root is not bound by file modes", err)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("aviary serve: %v, want exit status 1\n%s", err, out)
	}
	if exit.ExitCode() != 1 {
		t.Errorf("aviary serve exited with %d, want 1\n%s", exit.ExitCode(), out)
	}
	if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
		t.Errorf("aviary serve panicked:\n%s", out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("aviary serve's output lacks %q:\n%s", w, out)
		}
	}
}

// filledStore makes a store at path whose shop has rolled out to stable, with enough events to
// span many pages, and returns its size.
func filledStore(t *testing.T, path, stable string) int64 {
	t.Helper()
	s, err := store.Open(path, store.Options{MaxEvents: config.DefaultMaxEvents})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= 100; i++ {
		ev := rollout.Event{Time: at, Service: "shop", Kind: "StepStarted", Reason: strings.Repeat("step ", 200), Stable: stable}
		st := rollout.State{Service: "shop", Phase: rollout.Healthy, Stable: stable, SpecRelease: stable, Generation: int64(i)}
		if _, err := s.Commit("shop", st, []rollout.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestServeRefusesToStartWithAMessageAndExitStatus1(t *testing.T) {
	f := newServeFixture(t)
	for _, tc := range []struct {
		name string
		// store makes what storage.path names, in dir, and returns its path.
		store        func(t *testing.T, dir string) string
		versions     []string
		unprivileged bool
		want         []string
	}{
		{
			name: "corrupt store",
			store: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "aviary.db")
				must(t, os.WriteFile(path, []byte(strings.Repeat("not a store ", 8192)), 0o600))
				return path
			},
			want: []string{"is damaged or not an aviary store", "restore it from a backup, or move it away to start afresh"},
		},
		{
			name: "store cut short",
			store: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "aviary.db")
				must(t, os.Truncate(path, filledStore(t, path, "v1")/2))
				return path
			},
			want: []string{"is damaged or not an aviary store", "cut short", "restore it from a backup"},
		},
		{
			name: "empty store",
			store: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "aviary.db")
				must(t, os.WriteFile(path, nil, 0o600))
				return path
			},
			want: []string{"is empty (0 bytes)", "restore it from a backup, or remove it to start afresh"},
		},
		{
			name: "read-only store",
			store: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "aviary.db")
				filledStore(t, path, "v1")
				must(t, os.Chmod(path, 0o444))
				return path
			},
			unprivileged: true,
			want:         []string{"permission denied", "aviary must read and write this file", "give its user write access"},
		},
		{
			name: "store path is a directory",
			store: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "state")
				must(t, os.Mkdir(path, 0o700))
				return path
			},
			want: []string{"is a directory", "set storage.path to a file, such as /", "/state/aviary.db"},
		},
		{
			name: "config drops the stable version",
			store: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "aviary.db")
				filledStore(t, path, "v2")
				return path
			},
			versions: []string{"v1"},
			want:     []string{"does not fit the stored rollouts", "v2 is the stable version of shop", "keep it until a rollout has replaced it"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseDir := dir(t, f, tc.name)
			versions := tc.versions
			if versions == nil {
				versions = []string{"v1", "v2"}
			}
			config := f.writeConfig(t, tc.name, serveConfig(tc.store(t, caseDir), versions...))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			wantRefusal(t, f.command(ctx, config, tc.unprivileged), tc.want...)
		})
	}
	t.Run("store in use by another aviary", func(t *testing.T) {
		config := f.writeConfig(t, "in use", serveConfig(filepath.Join(dir(t, f, "in use"), "aviary.db"), "v1"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		first := f.command(ctx, config, false)
		stop := startServing(t, first)
		wantRefusal(t, f.command(ctx, config, false), "is in use by another aviary process", "stop it, or give this one its own storage.path")
		if err := stop(); err != nil {
			t.Errorf("the first aviary, stopped: %v", err)
		}
	})
}

// startServing starts cmd and returns once it says it serves; stop sends it SIGTERM and waits.
func startServing(t *testing.T, cmd *exec.Cmd) (stop func() error) {
	t.Helper()
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); w.Close(); exited <- err }()
	stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM) // by its own PID
		return <-exited
	}
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		if strings.Contains(lines.Text(), "aviary serving") {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			return stop
		}
	}
	t.Fatalf("the first aviary stopped before it served: %v", <-exited)
	return nil
}

// dir is a case's directory in the fixture (made by writeConfig or here).
func dir(t *testing.T, f serveFixture, name string) string {
	t.Helper()
	d := filepath.Join(f.dir, name)
	must(t, os.MkdirAll(d, 0o755))
	return d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
