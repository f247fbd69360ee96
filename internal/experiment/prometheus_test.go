package experiment

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/promtest"
	"aviary.dev/aviary/internal/store"
)

// A metric read per arm from a real Prometheus (scripts/prometheus.sh installs it), scraping an
// app's counter with an arm label: each arm's count over its units, compared like any metric; a
// query that finds no arm's sample is a note, never a zero.
func TestPrometheusCounterPerArm(t *testing.T) {
	reg := prometheus.NewRegistry()
	purchases := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shop_purchases_total", Help: "Purchases, by experiment and arm."},
		[]string{"experiment", "arm"})
	reg.MustRegister(purchases)
	purchases.WithLabelValues("checkout", "off").Add(1000) // 10% of 10,000 units
	purchases.WithLabelValues("checkout", "on").Add(1300)  // 13%
	purchases.WithLabelValues("other", "on").Add(99999)
	app := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(app.Close)
	prom := promtest.Start(t, app.URL)
	t.Logf("the app's counters are at %s", app.URL)
	var last error
	polltest.Wait(t, time.Minute, "prometheus to scrape the app's counters (the last error and the targets' state are logged)", func() bool {
		v, err := provider.PrometheusByLabel(t.Context(), provider.Options{}, prom, `shop_purchases_total{experiment="checkout"}`, "arm", time.Now(), 5*time.Second)
		if err != nil && (last == nil || err.Error() != last.Error()) {
			t.Logf("not yet: %v", err)
		}
		last = err
		return err == nil && len(v) == 2
	})

	s, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := spec()
	e.Metrics = []config.ExperimentMetric{
		{Name: "purchases", Prometheus: &config.ExperimentPrometheus{Address: prom, Query: `sum by (arm) (shop_purchases_total{experiment="{{experiment}}"})`}},
		{Name: "refunds", Prometheus: &config.ExperimentPrometheus{Address: prom, Query: `sum by (arm) (shop_refunds_total)`}},
	}
	e.ApplyDefaults()
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{e} }, Now: time.Now})
	if _, err := m.Start("checkout"); err != nil {
		t.Fatal(err)
	}
	var exps []store.Exposure
	for i := 0; i < 20000; i++ {
		exps = append(exps, store.Exposure{Flag: "new-checkout", Variant: []string{"off", "on"}[i%2], Key: fmt.Sprint("user-", i), Time: time.Now()})
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	res, err := m.Results("checkout")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Metrics) != 1 || res.Metrics[0].Arms[0].ControlMean != 0.1 || res.Metrics[0].Arms[0].ArmMean != 0.13 {
		t.Fatalf("metrics %+v; notes %q", res.Metrics, res.Notes)
	}
	if res.Decision.Winner != "on" {
		t.Errorf("decision %+v", res.Decision)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "metric refunds: prometheus:") || !strings.Contains(res.Notes[0], "no data") {
		t.Errorf("notes %q", res.Notes)
	}
}
