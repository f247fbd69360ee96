package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// fakeRollouts is an in-memory controller: it records the changes asked of it and serves events
// from a list, with the store's after/limit semantics. err, when set, is what every call returns.
type fakeRollouts struct {
	mu      sync.Mutex
	changes []string // "start shop v2", "abort shop", "apply", …
	events  []rollout.Event
	err     error
}

func (f *fakeRollouts) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, s)
}

func (f *fakeRollouts) changed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.changes...)
}

func (f *fakeRollouts) RolloutStatus(service string) (rollout.Status, error) {
	return rollout.Status{Service: service, Phase: rollout.Healthy}, f.err
}

func (f *fakeRollouts) Do(service string, cmd rollout.Command) (rollout.Status, error) {
	f.record(string(cmd.Kind) + " " + service)
	return rollout.Status{Service: service}, f.err
}

func (f *fakeRollouts) Start(service string, req StartRequest, _ string) (rollout.Status, error) {
	f.record("start " + service + " " + req.Version)
	return rollout.Status{Service: service}, f.err
}

func (f *fakeRollouts) Apply(data []byte, _ string) (ApplyResult, error) {
	f.record("apply")
	return ApplyResult{Applied: []string{"shop"}}, f.err
}

func (f *fakeRollouts) History(string) ([]store.HistoryEntry, error) { return nil, f.err }

func (f *fakeRollouts) Events(service string, after uint64, limit int) ([]rollout.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if limit <= 0 {
		limit = 100
	}
	var out []rollout.Event
	for _, e := range f.events {
		if e.Seq > after && (service == "" || e.Service == service) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, f.err
}

func (f *fakeRollouts) LastEvents(service string, n int) ([]rollout.Event, error) {
	all, err := f.Events(service, 0, 1<<30)
	return all[max(0, len(all)-n):], err
}

func (f *fakeRollouts) Delete(service string, force bool, _ string) (DeleteResult, error) {
	f.record(fmt.Sprintf("delete %s force=%v", service, force))
	return DeleteResult{Deleted: service}, f.err
}

type fakeServices []gateway.ServiceStatus

func (f fakeServices) Services() []gateway.ServiceStatus { return f }

type fakeConfig struct{ reloads int }

func (f *fakeConfig) Status() ConfigStatus { return ConfigStatus{File: "aviary.yaml"} }
func (f *fakeConfig) Reload() ReloadResult { f.reloads++; return ReloadResult{Accepted: true} }

// newTestAPI serves an admin API over fakes on a real listener.
func newTestAPI(t *testing.T, s *Server) (*httptest.Server, *fakeRollouts) {
	t.Helper()
	f, _ := s.Rollouts.(*fakeRollouts)
	if s.Rollouts == nil {
		f = &fakeRollouts{}
		s.Rollouts = f
	}
	if s.Services == nil {
		s.Services = fakeServices{{Name: "shop", Stable: "v1"}}
	}
	if s.Config == nil {
		s.Config = &fakeConfig{}
	}
	if s.Gatherer == nil {
		s.Gatherer = prometheus.NewRegistry()
	}
	if s.Hub == nil {
		s.Hub = NewHub()
	}
	srv := httptest.NewUnstartedServer(nil)
	if s.Browser.Listen == "" {
		s.Browser.Listen = srv.Listener.Addr().String()
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, f
}

// request is one request to the test API; headers are set after the defaults (an empty value
// removes one).
type request struct {
	method, path, body string
	header             map[string]string
}

// do sends r and returns the status and body.
func do(t *testing.T, srv *httptest.Server, r request) (int, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// message is the "error" of an answer's JSON, or the body as it is.
func message(body string) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return body
}
