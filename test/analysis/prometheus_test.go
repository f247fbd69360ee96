//go:build e2e

package analysis_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/test/e2e"
)

// TestAPrometheusMetricGatesARollout: a real Prometheus scrapes Aviary's own /metrics, and an
// analysis step asks it, through the prometheus provider, whether the canary is serving.
func TestAPrometheusMetricGatesARollout(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run `bash scripts/prometheus.sh`")
	}
	promAddr := freeAddress(t)
	a := startWith(t, upstream(t, "v1", 0), upstream(t, "v2", 0), fmt.Sprintf(`
analysis:
  templates:
    - name: serving
      minimum: {duration: 1s, requests: 1}
      metrics:
        - name: canary-rps
          prometheus:
            address: "http://%s"
            query: 'sum(rate(aviary_requests_total{service="{{service}}", version="{{version}}", code="200"}[10s]))'
          initialDelay: 10s   # Prometheus scrapes its first samples ~5 s after it starts
          interval: 2s
          count: 3
          successCondition: "result > 1"
          consecutiveErrorLimit: 10
`, promAddr), "[serving]")
	startPrometheus(t, bin, promAddr, strings.TrimPrefix(a.Admin, "http://"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.load(ctx, 100)
	time.Sleep(2 * time.Second)
	a.StartRollout("shop", "v2")
	st := a.WaitFor("shop", 90*time.Second, e2e.Ended)
	if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
		t.Fatalf("phase %s, stable %s: %s", st.Phase, st.StableVersion, st.Message)
	}
	resp, err := http.Get(a.Admin + "/api/v1/events?service=shop&limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"AnalysisPassed"`) || !strings.Contains(string(body), "canary-rps") {
		t.Errorf("no AnalysisPassed event naming the metric: %s", body)
	}
}

func freeAddress(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs a Prometheus of the test's own that scrapes target every second.
func startPrometheus(t *testing.T, bin, listen, target string) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	yml := fmt.Sprintf("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: aviary\n    static_configs: [{targets: [%q]}]\n", target)
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no Prometheus outlives a killed test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatal("prometheus not ready after 15 s")
}
