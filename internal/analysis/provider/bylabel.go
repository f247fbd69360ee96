package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// PrometheusByLabel runs an instant PromQL query at at and returns its vector's values by the
// value of one label: experiments read a counter per arm this way (label "arm"). An answer that
// is not an instant vector, a sample without the label, two samples of one label value, or
// warnings are errors that say what to change; an empty vector is ErrNoData.
func PrometheusByLabel(ctx context.Context, o Options, address, query, label string, at time.Time, timeout time.Duration) (map[string]float64, error) {
	client, err := (&prometheusProvider{do: httpDo(o)}).client(address)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	val, warnings, _, err := client.Query(tctx, query, at, v1.WithTimeout(timeout))
	if err != nil {
		return nil, prometheusError(ctx, tctx, address, query, timeout, err)
	}
	if len(warnings) > 0 {
		return nil, fmt.Errorf("prometheus at %s: the query returned warnings, so its result may be partial: %s; check the query: %s",
			address, strings.Join(warnings, "; "), query)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus at %s: query returned a %s; it must return one sample per %s, e.g. sum by (%s) (...) (query: %s)", address, val.Type(), label, label, query)
	}
	if len(vec) == 0 {
		return nil, fmt.Errorf("prometheus at %s: query returned %w; check the metric name and labels, and that Prometheus scrapes the target (query: %s)", address, ErrNoData, query)
	}
	out := map[string]float64{}
	for _, s := range vec {
		if s.Histogram != nil {
			return nil, errHistogram(s.Metric)
		}
		v, ok := s.Metric[model.LabelName(label)]
		if !ok {
			return nil, fmt.Errorf("prometheus at %s: the sample %s has no label %q; aggregate with sum by (%s) (...) (query: %s)", address, s.Metric, label, label, query)
		}
		if _, dup := out[string(v)]; dup {
			return nil, fmt.Errorf("prometheus at %s: two samples have %s=%q; aggregate with sum by (%s) (...) (query: %s)", address, label, v, label, query)
		}
		out[string(v)] = float64(s.Value)
	}
	return out, nil
}
