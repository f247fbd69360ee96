//go:build e2e

// Package fleet_test reads a fleet of real `aviary serve` processes with internal/fleet's reader,
// as the Kubernetes controller does: sums across replicas, a replica that hangs (SIGSTOP), and a
// replica killed with SIGKILL and started again on the same addresses.
package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fleet"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/test/e2e"
)

// replica is one aviary serve process and the addresses it keeps across restarts.
type replica struct {
	t              *testing.T
	bin, dir, conf string
	gw, admin      string
	proc           *e2e.Proc
	starts         int
}

func newReplica(t *testing.T, bin string, i int, v1, v2 string) *replica {
	dir := filepath.Join(t.TempDir(), fmt.Sprint("replica-", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &replica{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "aviary.yaml"), gw: e2e.FreeAddr(t), admin: e2e.FreeAddr(t)}
	conf := fmt.Sprintf(`gateway: {listen: %q}
admin: {listen: %q}
storage: {path: %q}
services:
  - name: shop
    match: {pathPrefix: /}
    versions:
      - {name: v1, endpoints: [%q]}
      - {name: v2, endpoints: [%q]}
    traffic: [{version: v1, weight: 50}, {version: v2, weight: 50}]
`, r.gw, r.admin, filepath.Join(dir, "aviary.db"), v1, v2)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start()
	return r
}

func (r *replica) start() {
	r.starts++
	log := filepath.Join(r.dir, fmt.Sprintf("aviary-%d.log", r.starts))
	r.proc = e2e.StartProcess(r.t, "aviary serve", log, r.bin, "serve", "--no-watch", "-c", r.conf)
	e2e.WaitReady(r.t, "http://"+r.admin+"/readyz", log)
}

func (r *replica) rep() fleet.Replica { return fleet.Replica{Name: r.admin, URL: "http://" + r.admin} }

// send makes n requests through the replica's gateway and returns how many got a 5xx.
func (r *replica) send(n int) (errs uint64) {
	r.t.Helper()
	for range n {
		resp, err := http.Get("http://" + r.gw + "/")
		if err != nil {
			r.t.Fatalf("request through %s: %v", r.gw, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			errs++
		}
	}
	return errs
}

func buildAviary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "aviary")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/aviary")
	cmd.Dir = e2e.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/aviary: %v\n%s", err, out)
	}
	return bin
}

func TestFleetOfRealReplicas(t *testing.T) {
	t.Parallel()
	bin := buildAviary(t)
	v1, v2 := e2e.Upstream(t, "v1", 0), e2e.Upstream(t, "v2", 10)
	rs := []*replica{newReplica(t, bin, 0, v1, v2), newReplica(t, bin, 1, v1, v2), newReplica(t, bin, 2, v1, v2)}
	all := func() []fleet.Replica { return []fleet.Replica{rs[0].rep(), rs[1].rep(), rs[2].rep()} }
	reg := metrics.NewRegistry(metrics.Options{})
	reader := fleet.New(fleet.Options{Timeout: time.Second})
	reader.SetSink("shop", fleet.Sink{Metrics: reg})
	total := func() (req, errs uint64) {
		for _, v := range []string{"v1", "v2"} {
			w := reg.Window("shop", v, metrics.Primary, time.Now().Add(-10*time.Minute), time.Now().Add(time.Minute))
			req, errs = req+w.Requests, errs+w.Errors
		}
		return req, errs
	}
	ctx := context.Background()

	rs[0].send(50) // before the first look: a baseline, not the reader's to judge
	if cov := reader.Look(ctx, all()); cov.Answered != 3 {
		t.Fatalf("first look: %s", cov)
	}
	var sent, failed uint64
	for i, r := range rs {
		failed += r.send(100 * (i + 1))
		sent += uint64(100 * (i + 1))
	}
	cov := reader.Look(ctx, all())
	if got, gotErr := total(); cov.Answered != 3 || got != sent || gotErr != failed {
		t.Fatalf("sum of 3 replicas: %d requests %d errors (%s); the clients sent %d and saw %d fail", got, gotErr, cov, sent, failed)
	}
	t.Logf("summed: %d requests, %d errors over %s", sent, failed, cov)

	// A replica that hangs (stopped, its sockets open) is left out, then catches up.
	failed += rs[2].send(40)
	sent += 40
	pid := rs[2].proc.Cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(cont)
	failed += rs[0].send(30)
	sent += 30
	cov = reader.Look(ctx, all())
	if got, _ := total(); cov.Answered != 2 || got != sent-40 {
		t.Fatalf("with replica 2 hung: %d requests over %s, want %d (its 40 not read as zero, not read at all)", got, cov, sent-40)
	}
	t.Logf("hung replica: %s", cov)
	cont()
	cov = reader.Look(ctx, all())
	if got, gotErr := total(); cov.Answered != 3 || got != sent || gotErr != failed {
		t.Fatalf("replica 2 back: %d requests %d errors over %s; want %d and %d", got, gotErr, cov, sent, failed)
	}

	// A replica killed with SIGKILL: what it served after its last answer is lost (and counted as
	// such), its new instance is counted from its start, nothing twice.
	rs[1].send(60)
	rs[1].proc.Kill()
	rs[1].start()
	failed += rs[1].send(70)
	sent += 70
	cov = reader.Look(ctx, all())
	if got, gotErr := total(); cov.Answered != 3 || got != sent || gotErr != failed {
		t.Fatalf("after a SIGKILL and restart: %d requests %d errors over %s; want %d and %d (the 60 served before the kill are lost)", got, gotErr, cov, sent, failed)
	}
	if cov.Ended != 1 {
		t.Fatalf("coverage %s (%+v): want one ended instance", cov, cov)
	}
	t.Logf("after SIGKILL: %s (60 requests were in fact lost)", cov)
}
