package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A gateway replica shows its source in /readyz: ready or not, the answer says where the routing
// comes from and how fresh it is.
func TestReadyzShowsTheSource(t *testing.T) {
	ready := false
	s := &Server{Ready: func() bool { return ready }, Source: func() any { return map[string]any{"connected": false} }}
	h := s.Handler()
	for _, want := range []int{http.StatusServiceUnavailable, http.StatusOK} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/readyz", nil))
		var body struct {
			Status string         `json:"status"`
			Source map[string]any `json:"source"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != want || body.Source["connected"] != false {
			t.Errorf("/readyz = %d %s, want %d with the source", rec.Code, rec.Body, want)
		}
		ready = true
	}
}
