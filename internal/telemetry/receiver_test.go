package telemetry

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is an OTLP/HTTP collector in the test process: it decodes what the exporters post
// to /v1/traces and /v1/metrics, as a collector would, and keeps it.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	traces  []*coltracepb.ExportTraceServiceRequest
	metrics []*colmetricpb.ExportMetricsServiceRequest
	headers []http.Header
	status  int // answered to every export; 0 means 200
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		in := &coltracepb.ExportTraceServiceRequest{}
		if r.decode(t, w, req, in) {
			r.mu.Lock()
			r.traces = append(r.traces, in)
			r.mu.Unlock()
			r.answer(w, &coltracepb.ExportTraceServiceResponse{})
		}
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		in := &colmetricpb.ExportMetricsServiceRequest{}
		if r.decode(t, w, req, in) {
			r.mu.Lock()
			r.metrics = append(r.metrics, in)
			r.mu.Unlock()
			r.answer(w, &colmetricpb.ExportMetricsServiceResponse{})
		}
	})
	r.Server = httptest.NewServer(mux)
	t.Cleanup(r.Close)
	return r
}

// decode reads an OTLP protobuf body, gzipped or not, into m; on failure it answers 400.
func (r *receiver) decode(t *testing.T, w http.ResponseWriter, req *http.Request, m proto.Message) bool {
	r.mu.Lock()
	r.headers = append(r.headers, req.Header.Clone())
	status := r.status
	r.mu.Unlock()
	if status != 0 {
		http.Error(w, "refused by the test", status)
		return false
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		t.Errorf("%s: Content-Type %q, want application/x-protobuf", req.URL.Path, ct)
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			t.Errorf("%s: gzip: %v", req.URL.Path, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err == nil {
		err = proto.Unmarshal(b, m)
	}
	if err != nil {
		t.Errorf("%s: decode: %v", req.URL.Path, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (r *receiver) answer(w http.ResponseWriter, m proto.Message) {
	b, _ := proto.Marshal(m)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

// spans returns every span received, with the resource attributes it came under.
func (r *receiver) spans() (out []*tracepb.Span, resources []map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, req := range r.traces {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, s)
					resources = append(resources, attrs(rs.Resource.GetAttributes()))
				}
			}
		}
	}
	return out, resources
}

// metric is one metric as received, with the scope's schema URL.
type receivedMetric struct {
	*metricpb.Metric
	schemaURL string
}

// metricsByName returns the last export of each metric: they are cumulative.
func (r *receiver) metricsByName() map[string]receivedMetric {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]receivedMetric{}
	for _, req := range r.metrics {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					out[m.Name] = receivedMetric{m, sm.SchemaUrl}
				}
			}
		}
	}
	return out
}

// attrs turns OTLP attributes into a map of Go values: string, bool, int64, float64, []any.
func attrs(kvs []*commonpb.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		out[kv.Key] = value(kv.Value)
	}
	return out
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.Values {
			out = append(out, value(e))
		}
		return out
	}
	return nil
}
