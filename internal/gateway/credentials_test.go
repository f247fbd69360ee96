package gateway

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// An endpoint's credentials go to it alone: a request retried on another endpoint after a failed
// connection carries none of them, and a client's own Authorization always wins.
func TestEndpointCredentialsStayWithTheirEndpoint(t *testing.T) {
	var mu sync.Mutex
	var seen []string // Authorization headers that "open" got
	open := newUpstream(t, "open", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
	})
	dead := strings.Replace(deadURL(t), "://", "://user:pw@", 1)
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["`+dead+`", "{{open}}"]}
    traffic: [{version: v1, weight: 100}]
`, open)
	for range 4 { // the picker alternates: half of them try the dead endpoint first
		if code, up := f.get(t, "/"); code != http.StatusOK || up != "open" {
			t.Fatalf("got %d from %q, want 200 from open", code, up)
		}
		if code, _ := f.get(t, "/", "Authorization: Bearer client"); code != http.StatusOK {
			t.Fatalf("with the client's token: %d", code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, got := range seen {
		if want := []string{"", "Bearer client"}[i%2]; got != want {
			t.Errorf("request %d reached open with Authorization %q, want %q", i, got, want)
		}
	}
}
