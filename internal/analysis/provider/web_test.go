package provider_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
)

// query is the measurement every test takes: service checkout, v1 stable, v2 the canary. The
// metric's provider settings get the defaults that config gives them.
func query(m config.AnalysisMetric) provider.Query {
	m.Name = "test"
	if p := m.Prometheus; p != nil {
		d := p.WithDefaults()
		m.Prometheus = &d
	}
	if w := m.Web; w != nil {
		d := w.WithDefaults()
		m.Web = &d
	}
	return provider.Query{Service: "checkout", Stable: "v1", Canary: "v2", Version: "v2", Metric: m, Now: time.Now()}
}

func measureWeb(t *testing.T, ctx context.Context, w config.WebMetric) (provider.Measurement, error) {
	t.Helper()
	p, err := provider.New("web", provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Measure(ctx, query(config.AnalysisMetric{Web: &w}))
}

// received is what a test endpoint saw of the one request it got.
type received struct {
	mu                         sync.Mutex
	method, uri, body, auth, v string
	contentType                string
}

func TestWebSendsTheRequestWithPlaceholdersExpanded(t *testing.T) {
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.mu.Lock()
		got.method, got.uri, got.body = r.Method, r.RequestURI, string(b)
		got.auth, got.v, got.contentType = r.Header.Get("Authorization"), r.Header.Get("X-Canary"), r.Header.Get("Content-Type")
		got.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"healthy": true}`)
	}))
	defer srv.Close()

	m, err := measureWeb(t, context.Background(), config.WebMetric{
		URL:      srv.URL + "/check/{{service}}?version={{version}}",
		Method:   "post",
		Headers:  map[string]string{"Authorization": "Bearer s3cret", "X-Canary": "{{canary}}"},
		Body:     `{"stable": "{{stable}}"}`,
		JSONPath: "$.healthy",
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Value != true {
		t.Errorf("value = %#v, want true", m.Value)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	want := received{method: "POST", uri: "/check/checkout?version=v2", body: `{"stable": "v1"}`,
		auth: "Bearer s3cret", v: "v2", contentType: "application/json"}
	if got.method != want.method || got.uri != want.uri || got.body != want.body || got.auth != want.auth ||
		got.v != want.v || got.contentType != want.contentType {
		t.Errorf("endpoint received %+v\nwant %+v", &got, &want)
	}
}

func TestWebDefaultsToGETWithoutABody(t *testing.T) {
	type request struct {
		method string
		length int64
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- request{r.Method, r.ContentLength}
		io.WriteString(w, `1.5`)
	}))
	defer srv.Close()
	m, err := measureWeb(t, context.Background(), config.WebMetric{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.method != "GET" || r.length != 0 || m.Value != 1.5 {
		t.Errorf("method %s, content length %d, value %#v; want GET, 0, 1.5 (the whole document)", r.method, r.length, m.Value)
	}
}

const document = `{
	"ratio": 0.02,
	"ok": false,
	"name": "v2",
	"odd key": 7,
	"data": [{"version": "v1", "value": 3}, {"version": "v2", "value": 4}],
	"obj": {"a": 1},
	"list": [1, 2],
	"mixed": [1, "two"],
	"nothing": null
}`

func TestWebJSONPath(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, document)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want any
	}{
		{"$.ratio", 0.02},
		{"$.ok", false},
		{"$.name", "v2"},
		{`$["odd key"]`, 7.0},
		{"$['odd key']", 7.0},
		{"$.data[0].value", 3.0},
		{"$.data[-1].value", 4.0},
		{`$.data[?@.version=="v1"].value`, 3.0},
		{`$.data[?@.version=="{{version}}"].value`, 4.0},
		{`$.data[?@.version=="v9"].value`, nil},
		{"$.data[*].value", []float64{3, 4}},
		{"$.obj", map[string]any{"a": 1.0}},
		{"$.list", []any{1.0, 2.0}},
		{"$.mixed[*]", []any{1.0, "two"}},
	} {
		m, err := measureWeb(t, context.Background(), config.WebMetric{URL: srv.URL, JSONPath: tc.path})
		if tc.want == nil {
			if !errors.Is(err, provider.ErrNoData) {
				t.Errorf("%s: err = %v, want ErrNoData", tc.path, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if !reflect.DeepEqual(m.Value, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.path, m.Value, tc.want)
		}
	}
}

func TestWebErrorsSayWhatToFix(t *testing.T) {
	long := strings.Repeat("x", 2000)
	mux := http.NewServeMux()
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance "+long, http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>hello</html>")
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"pad": "`+strings.Repeat("y", 1<<20)+`"}`)
	})
	mux.HandleFunc("/doc", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, document) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		name     string
		metric   config.WebMetric
		contains []string
		noData   bool
	}{
		{"non-2xx quotes the status and the start of the body",
			config.WebMetric{URL: srv.URL + "/down"}, []string{"web GET " + srv.URL + "/down", "503 Service Unavailable", "maintenance xxx", "check the endpoint"}, false},
		{"not JSON",
			config.WebMetric{URL: srv.URL + "/html"}, []string{"not JSON", "text/html", "<html>hello", "point web.url at a JSON endpoint"}, false},
		{"over 1 MiB",
			config.WebMetric{URL: srv.URL + "/huge"}, []string{"too large", "1 MiB"}, false},
		{"a path that matches nothing",
			config.WebMetric{URL: srv.URL + "/doc", JSONPath: "$.data[5].value"}, []string{"$.data[5].value", "no data", `"ratio":0.02`}, true},
		{"a path to null",
			config.WebMetric{URL: srv.URL + "/doc", JSONPath: "$.nothing"}, []string{"null"}, true},
		{"a bad path",
			config.WebMetric{URL: srv.URL + "/doc", JSONPath: "$.data[0"}, []string{"web.jsonPath", "RFC 9535"}, false},
		{"a closed port",
			config.WebMetric{URL: closedAddress(t) + "/x"}, []string{"connection refused", "check web.url"}, false},
		{"a bad URL",
			config.WebMetric{URL: "http://[::1/x"}, []string{"web.url", "http://[::1/x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := measureWeb(t, context.Background(), tc.metric)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err) // shown with -v: what a user would read
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q\ndoes not contain %q", err, s)
				}
			}
			if errors.Is(err, provider.ErrNoData) != tc.noData {
				t.Errorf("errors.Is(err, ErrNoData) = %v, want %v", !tc.noData, tc.noData)
			}
			if len(err.Error()) > 1500 {
				t.Errorf("error is %d bytes long; it should quote at most 512 bytes of the answer", len(err.Error()))
			}
		})
	}
}

func TestWebTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()

	start := time.Now()
	_, err := measureWeb(t, context.Background(), config.WebMetric{URL: srv.URL, Timeout: config.D(100 * time.Millisecond)})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s with a 100ms timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") || !strings.Contains(err.Error(), "web.timeout") {
		t.Errorf("err = %v, want one that says the 100ms web.timeout ran out", err)
	}

	// The caller's deadline is honoured too, and is not blamed on web.timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = measureWeb(t, ctx, config.WebMetric{URL: srv.URL, Timeout: config.D(10 * time.Second)})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s with a 100ms deadline on the context", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "web.timeout") {
		t.Errorf("err = %v, want the context's deadline", err)
	}
}

func TestWebUsesOptionsHTTPDo(t *testing.T) {
	var calls int
	p, err := provider.New("web", provider.Options{HTTPDo: func(r *http.Request) (*http.Response, error) {
		calls++
		return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(`{"v": 2}`)), Request: r}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.Measure(context.Background(), query(config.AnalysisMetric{Web: &config.WebMetric{URL: "http://metrics.invalid/", JSONPath: "$.v"}}))
	if err != nil || m.Value != 2.0 || calls != 1 {
		t.Errorf("value %#v, err %v, %d calls; want 2 from the one call through Options.HTTPDo", m.Value, err, calls)
	}
}
