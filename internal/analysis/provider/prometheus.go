package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// The "prometheus" provider runs a PromQL query through the Prometheus HTTP API, with the official
// client (client_golang's api/prometheus/v1, which knows the API's error envelope, warnings and
// its POST-then-GET fallback), so that none of that is written again here.
//
// The query is expanded by Expand. Without Range it is an instant query at the query's Now; with
// Range it is a range query over [Now-Range.Duration, Now] at Range.Step. The measurement's value:
//
//   - a scalar, or an instant vector of one sample: float64;
//   - an instant vector of several samples: []float64, ordered by label set so that two runs of
//     the same query give the same order;
//   - a range query (or a range selector) of one series: []float64, its values in time order;
//     several series are an error that asks for sum(...) or avg(...), since a list of values
//     from unrelated series cannot be judged;
//   - a string: string.
//
// An empty result is an error wrapping ErrNoData, never a zero. NaN and ±Inf (a rate over no
// requests is 0/0 = NaN) are passed through as float64 for the conditions to judge; note that
// encoding/json refuses them, so whoever stores a measurement must handle them. Warnings in the
// answer make the measurement an error: they mean the result may be partial.
func init() {
	Register("prometheus", func(o Options) Provider { return &prometheusProvider{do: httpDo(o)} })
}

// prometheusMaxBody bounds an answer of Prometheus; a range query over thousands of series could
// otherwise fill the controller's memory.
const prometheusMaxBody = 16 << 20

type prometheusProvider struct {
	do func(*http.Request) (*http.Response, error)
}

func (p *prometheusProvider) Measure(ctx context.Context, q Query) (Measurement, error) {
	m := q.Metric.Prometheus
	if m == nil {
		return Measurement{}, fmt.Errorf("metric %q: no prometheus settings", q.Metric.Name)
	}
	client, err := p.client(m.Address)
	if err != nil {
		return Measurement{}, err
	}
	at, query, timeout := measuredAt(q), Expand(m.Query, q), m.Timeout.Duration
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		val      model.Value
		warnings v1.Warnings
	)
	if r := m.Range; r != nil {
		if r.Duration.Duration <= 0 || r.Step.Duration <= 0 {
			return Measurement{}, fmt.Errorf("prometheus.range: duration (%s) and step (%s) must both be positive", r.Duration.Duration, r.Step.Duration)
		}
		rng := v1.Range{Start: at.Add(-r.Duration.Duration), End: at, Step: r.Step.Duration}
		val, warnings, _, err = client.QueryRange(tctx, query, rng, v1.WithTimeout(timeout))
	} else {
		val, warnings, _, err = client.Query(tctx, query, at, v1.WithTimeout(timeout))
	}
	if err != nil {
		return Measurement{}, prometheusError(ctx, tctx, m.Address, query, timeout, err)
	}
	if len(warnings) > 0 {
		return Measurement{}, fmt.Errorf("prometheus at %s: the query returned warnings, so its result may be partial: %s; check the query: %s",
			m.Address, strings.Join(warnings, "; "), query)
	}
	v, err := prometheusValue(val)
	if err != nil {
		return Measurement{}, fmt.Errorf("prometheus at %s: query %w (query: %s)", m.Address, err, query)
	}
	return Measurement{Value: v, At: at}, nil
}

// client makes an API client for address. It is cheap (a parsed URL), so one is made per
// measurement rather than cached per address.
func (p *prometheusProvider) client(address string) (v1.API, error) {
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus.address %q: want an http:// or https:// URL such as http://127.0.0.1:9090", address)
	}
	c, err := api.NewClient(api.Config{Address: address})
	if err != nil {
		return nil, fmt.Errorf("prometheus.address %q: %w", address, err)
	}
	return v1.NewAPI(prometheusClient{Client: c, do: p.do}), nil
}

// prometheusClient is client_golang's API client (which builds the URLs) with our own Do:
// requests go through the provider's HTTP function and answers are bounded.
type prometheusClient struct {
	api.Client
	do func(*http.Request) (*http.Response, error)
}

func (c prometheusClient) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.do(req.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, prometheusMaxBody)
	return resp, body, err
}

// prometheusError says what went wrong and what to change.
func prometheusError(ctx, tctx context.Context, address, query string, timeout time.Duration, err error) error {
	err = bare(err)
	var apiErr *v1.Error
	switch {
	case timedOut(ctx, tctx):
		return fmt.Errorf("prometheus at %s: no answer within %s (%w); check prometheus.address and that Prometheus is up, or raise prometheus.timeout for a slow query",
			address, timeout, err)
	case ctx.Err() != nil:
		return fmt.Errorf("prometheus at %s: %w", address, err)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("prometheus at %s: %w; narrow the query (fewer series, a larger range step)", address, err)
	case errors.As(err, &apiErr):
		detail := ""
		if apiErr.Detail != "" {
			detail = " (" + snippet([]byte(strings.TrimSpace(apiErr.Detail)), 512) + ")"
		}
		return fmt.Errorf("prometheus at %s: %w%s; %s", address, err, detail, prometheusHint(apiErr.Type, query, timeout))
	}
	return fmt.Errorf("prometheus at %s: %w; check prometheus.address and that Prometheus is up", address, err)
}

func prometheusHint(t v1.ErrorType, query string, timeout time.Duration) string {
	switch t {
	case v1.ErrTimeout, v1.ErrCanceled:
		return fmt.Sprintf("the query ran out of its %s inside Prometheus; make it cheaper or raise prometheus.timeout: %s", timeout, query)
	case v1.ErrClient, v1.ErrServer, v1.ErrBadResponse:
		return "check that prometheus.address is the base URL of a Prometheus server (its API is under /api/v1)"
	}
	return "check the query: " + query // bad_data, execution
}

// prometheusValue turns a query's result into a measurement's value.
func prometheusValue(v model.Value) (any, error) {
	switch v := v.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case *model.String:
		return v.Value, nil
	case model.Vector:
		return vectorValue(v)
	case model.Matrix:
		return matrixValue(v)
	case nil:
		return nil, fmt.Errorf("returned %w", ErrNoData)
	}
	return nil, fmt.Errorf("returned a %s, which Aviary cannot use", v.Type())
}

func vectorValue(v model.Vector) (any, error) {
	switch len(v) {
	case 0:
		return nil, fmt.Errorf("returned %w; check the metric name and labels, and that Prometheus scrapes the target", ErrNoData)
	case 1:
		if v[0].Histogram != nil {
			return nil, errHistogram(v[0].Metric)
		}
		return float64(v[0].Value), nil
	}
	v = append(model.Vector(nil), v...)
	sort.Slice(v, func(i, j int) bool { return v[i].Metric.Before(v[j].Metric) })
	out := make([]float64, len(v))
	for i, s := range v {
		if s.Histogram != nil {
			return nil, errHistogram(s.Metric)
		}
		out[i] = float64(s.Value)
	}
	return out, nil
}

func matrixValue(m model.Matrix) (any, error) {
	switch {
	case len(m) == 0 || (len(m) == 1 && len(m[0].Values) == 0 && len(m[0].Histograms) == 0):
		return nil, fmt.Errorf("returned %w over the range; check the metric name and labels, and that Prometheus scrapes the target", ErrNoData)
	case len(m) > 1:
		return nil, fmt.Errorf("returned %d series (%s, %s, …) where one is needed; aggregate them into one with sum(...) or avg(...)",
			len(m), m[0].Metric, m[1].Metric)
	case len(m[0].Histograms) > 0:
		return nil, errHistogram(m[0].Metric)
	}
	out := make([]float64, len(m[0].Values))
	for i, p := range m[0].Values {
		out[i] = float64(p.Value)
	}
	return out, nil
}

func errHistogram(series model.Metric) error {
	return fmt.Errorf("returned a native histogram for %s; turn it into numbers, e.g. with histogram_quantile(0.99, ...) or histogram_count(...)", series)
}
