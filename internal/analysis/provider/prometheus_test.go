package provider_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/promtest"
)

// TestPrometheus runs the provider against a real Prometheus (Debian's package) that scrapes a
// stand-in for Aviary's own /metrics once a second.
func TestPrometheus(t *testing.T) {
	target := startStandInMetrics(t)
	prom := promtest.Start(t, target)
	waitForSeries(t, prom, `aviary_standin_latency_seconds`, 2)

	measure := func(pm config.PrometheusMetric) (provider.Measurement, error) {
		t.Helper()
		pm.Address = prom
		return measureProm(t, context.Background(), pm)
	}
	t.Run("an instant query of a gauge, the version filled in", func(t *testing.T) {
		m, err := measure(config.PrometheusMetric{Query: `aviary_standin_latency_seconds{service="{{service}}", version="{{version}}"}`})
		if err != nil || m.Value != 0.25 {
			t.Errorf("value %#v, err %v; want v2's 0.25", m.Value, err)
		}
	})
	t.Run("an instant query runs at the query's Now", func(t *testing.T) {
		p, err := provider.New("prometheus", provider.Options{})
		if err != nil {
			t.Fatal(err)
		}
		q := query(config.AnalysisMetric{Prometheus: &config.PrometheusMetric{Address: prom, Query: `aviary_standin_latency_seconds`}})
		q.Now = q.Now.Add(-time.Hour) // before Prometheus started: nothing was scraped yet
		if _, err := p.Measure(context.Background(), q); !errors.Is(err, provider.ErrNoData) {
			t.Errorf("err = %v; want no data an hour ago", err)
		}
	})
	t.Run("several series give a list ordered by label set", func(t *testing.T) {
		m, err := measure(config.PrometheusMetric{Query: `aviary_standin_requests_total{service="{{service}}"}`})
		// code="200" before code="500", v1 before v2.
		if want := []float64{90, 40, 10, 2}; err != nil || !reflect.DeepEqual(m.Value, want) {
			t.Errorf("value %#v, err %v; want %v", m.Value, err, want)
		}
	})
	t.Run("a scalar", func(t *testing.T) {
		m, err := measure(config.PrometheusMetric{Query: `scalar(sum(aviary_standin_requests_total{version="{{stable}}"}))`})
		if err != nil || m.Value != 100.0 {
			t.Errorf("value %#v, err %v; want 100", m.Value, err)
		}
	})
	t.Run("NaN is passed through", func(t *testing.T) {
		m, err := measure(config.PrometheusMetric{Query: `aviary_standin_errors_ratio{version="{{version}}"} / 0 * 0`})
		if f, ok := m.Value.(float64); err != nil || !ok || !math.IsNaN(f) {
			t.Errorf("value %#v, err %v; want NaN", m.Value, err)
		}
	})
	t.Run("an empty result is an error, not a zero", func(t *testing.T) {
		m, err := measure(config.PrometheusMetric{Query: `aviary_standin_latency_seconds{version="v9"}`})
		if !errors.Is(err, provider.ErrNoData) || !strings.Contains(err.Error(), "query returned no data") {
			t.Errorf("value %#v, err %v; want ErrNoData", m.Value, err)
		}
	})
	t.Run("a bad query names the problem", func(t *testing.T) {
		_, err := measure(config.PrometheusMetric{Query: `sum(rate(aviary_standin_requests_total[1m])`})
		wantError(t, err, "prometheus at "+prom, "bad_data", "parse error", "check the query", "sum(rate(")
	})
	t.Run("a range query gives the values", func(t *testing.T) {
		m, err := measure(config.PrometheusMetric{
			Query: `aviary_standin_latency_seconds{version="{{version}}"}`,
			Range: &config.QueryRange{Duration: config.D(3 * time.Second), Step: config.D(time.Second)},
		})
		vs, ok := m.Value.([]float64)
		if err != nil || !ok || len(vs) == 0 || len(vs) > 4 {
			t.Fatalf("value %#v, err %v; want a list of 1 to 4 values (3s at 1s steps)", m.Value, err)
		}
		for _, v := range vs {
			if v != 0.25 {
				t.Errorf("values %v; want only 0.25", vs)
				break
			}
		}
	})
	t.Run("a range query of several series asks for an aggregation", func(t *testing.T) {
		_, err := measure(config.PrometheusMetric{
			Query: `aviary_standin_latency_seconds`,
			Range: &config.QueryRange{Duration: config.D(3 * time.Second), Step: config.D(time.Second)},
		})
		wantError(t, err, "2 series", "sum(...) or avg(...)")
	})
	t.Run("an address that is not a Prometheus", func(t *testing.T) {
		_, err := measureProm(t, context.Background(), config.PrometheusMetric{Address: target, Query: "up"})
		wantError(t, err, "404", "check that prometheus.address is the base URL of a Prometheus")
	})
}

// TestPrometheusUnreachable needs no Prometheus: a closed port fails at once, and a server that
// never answers fails when the metric's timeout runs out.
func TestPrometheusUnreachable(t *testing.T) {
	start := time.Now()
	addr := closedAddress(t)
	_, err := measureProm(t, context.Background(), config.PrometheusMetric{Address: addr, Query: "up"})
	wantError(t, err, "prometheus at "+addr, "connection refused", "check prometheus.address")

	silent := silentServer(t)
	_, err = measureProm(t, context.Background(), config.PrometheusMetric{Address: silent, Query: "up", Timeout: config.D(200 * time.Millisecond)})
	wantError(t, err, "prometheus at "+silent, "no answer within 200ms", "prometheus.timeout")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = measureProm(t, ctx, config.PrometheusMetric{Address: silent, Query: "up"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s; the timeouts were 200ms", took)
	}

	_, err = measureProm(t, context.Background(), config.PrometheusMetric{Address: "127.0.0.1:9090", Query: "up"})
	wantError(t, err, "prometheus.address", "http://")
}

// Prometheus adds warnings to an answer when it may be partial (a remote store that failed, say);
// a real one is hard to bring to that, so this answer is hand-written.
func TestPrometheusWarningsAreErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status": "success", "warnings": ["remote read of store-2 failed"],
			"data": {"resultType": "vector", "result": [{"metric": {}, "value": [1700000000, "0.5"]}]}}`)
	}))
	defer srv.Close()
	_, err := measureProm(t, context.Background(), config.PrometheusMetric{Address: srv.URL, Query: "up"})
	wantError(t, err, "prometheus at "+srv.URL, "warnings", "partial", "remote read of store-2 failed")
}

func measureProm(t *testing.T, ctx context.Context, pm config.PrometheusMetric) (provider.Measurement, error) {
	t.Helper()
	p, err := provider.New("prometheus", provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Measure(ctx, query(config.AnalysisMetric{Prometheus: &pm}))
}

func wantError(t *testing.T, err error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error; want one containing %q", contains)
		return
	}
	t.Log(err) // shown with -v: what a user would read
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q\ndoes not contain %q", err, s)
		}
	}
}

// startStandInMetrics serves a stand-in for Aviary's own /metrics: a few gauges and counters per
// service and version, as the gateway exposes them. It returns the server's base URL.
func startStandInMetrics(t *testing.T) string {
	reg := prometheus.NewRegistry()
	latency := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aviary_standin_latency_seconds", Help: "p99 latency."}, []string{"service", "version"})
	errorsRatio := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aviary_standin_errors_ratio", Help: "Share of failed requests."}, []string{"service", "version"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_standin_requests_total", Help: "Requests served."}, []string{"service", "version", "code"})
	reg.MustRegister(latency, errorsRatio, requests)
	latency.WithLabelValues("checkout", "v1").Set(0.12)
	latency.WithLabelValues("checkout", "v2").Set(0.25)
	errorsRatio.WithLabelValues("checkout", "v1").Set(0.01)
	errorsRatio.WithLabelValues("checkout", "v2").Set(0.2)
	requests.WithLabelValues("checkout", "v1", "200").Add(90)
	requests.WithLabelValues("checkout", "v1", "500").Add(10)
	requests.WithLabelValues("checkout", "v2", "200").Add(40)
	requests.WithLabelValues("checkout", "v2", "500").Add(2)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitForSeries waits until Prometheus has scraped want series of metric.
func waitForSeries(t *testing.T, prom, metric string, want int) {
	t.Helper()
	started := time.Now()
	deadline := started.Add(10 * time.Second)
	for {
		m, err := measureProm(t, context.Background(), config.PrometheusMetric{Address: prom, Query: "count(" + metric + ")"})
		if err == nil && m.Value == float64(want) {
			t.Logf("%d series of %s scraped after %s", want, metric, time.Since(started).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus has not scraped %d series of %s after 10s: value %v, err %v", want, metric, m.Value, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// closedAddress is the URL of a loopback port that nothing listens on.
func closedAddress(t *testing.T) string {
	return "http://" + promtest.FreeAddress(t)
}

// silentServer accepts connections and never answers. It returns its URL.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return "http://" + l.Addr().String()
}
