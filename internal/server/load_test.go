package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Reloads never drop a request: while clients send requests without pause, the config is rewritten
// and reloaded 51 times, moving weight back and forth and adding and removing an endpoint of v2, and
// every request still gets 200 from a version's upstream.
func TestReloadUnderLoadFailsNoRequest(t *testing.T) {
	v1, v2a, v2b := upstream(t, "v1"), upstream(t, "v2"), upstream(t, "v2")
	config := func(i int) string {
		if i%2 == 0 {
			return shop{v1: []string{v1}, v2: []string{v2a}, w1: 90, w2: 10}.YAML()
		}
		return shop{v1: []string{v1}, v2: []string{v2a, v2b}, w1: 10, w2: 90}.YAML()
	}
	a := start(t, config(0), true) // the file watcher reloads too, racing the API's reloads

	const clients, reloads = 4, 51
	stop := make(chan struct{})
	results := make(chan tally, clients)
	for range clients {
		go func() { results <- sendUntil(a, stop, 10*time.Second) }()
	}

	for i := 1; i <= reloads; i++ {
		replaceFile(t, a.configPath, config(i))
		if code, res := a.reload(); code != http.StatusOK || !res.Accepted {
			t.Errorf("reload %d answered %d %+v", i, code, res)
		}
		time.Sleep(20 * time.Millisecond) // let requests run on each config
	}
	close(stop)

	var total tally
	for range clients {
		total.add(<-results)
	}
	t.Logf("%d requests during %d reloads: %v", total.ok+total.failed, reloads, total.servedBy)
	if total.failed > 0 {
		t.Errorf("%d requests failed, among them: %q", total.failed, total.failures)
	}
	if total.ok < 200 || total.servedBy["v1"] == 0 || total.servedBy["v2"] == 0 {
		t.Errorf("too little load to mean anything: %d good requests, served by %v", total.ok, total.servedBy)
	}

	// The last config (odd: 10/90, two v2 endpoints) is the one in force.
	var got struct {
		Versions []struct {
			Name      string `json:"name"`
			Weight    int    `json:"weight"`
			Endpoints []any  `json:"endpoints"`
		} `json:"versions"`
	}
	a.adminJSON("GET", "/api/v1/services/shop", &got)
	if len(got.Versions) != 2 || got.Versions[0].Weight != 10 || got.Versions[1].Weight != 90 || len(got.Versions[1].Endpoints) != 2 {
		t.Errorf("after the last reload the gateway serves %+v, want v1 at 10 and v2 at 90 on two endpoints", got.Versions)
	}
}

// tally counts one client's requests.
type tally struct {
	ok, failed int
	servedBy   map[string]int
	failures   []string // what the first few failures were
}

func (t *tally) add(o tally) {
	t.ok, t.failed = t.ok+o.ok, t.failed+o.failed
	if t.servedBy == nil {
		t.servedBy = map[string]int{}
	}
	for k, n := range o.servedBy {
		t.servedBy[k] += n
	}
	t.failures = append(t.failures, o.failures...)
}

// sendUntil sends GET / to the gateway, one request after another, until stop is closed or limit has
// passed, and counts what came back. It runs in its own goroutine, so it reports instead of failing.
func sendUntil(a *aviary, stop <-chan struct{}, limit time.Duration) tally {
	res := tally{servedBy: map[string]int{}}
	deadline := time.After(limit)
	for {
		select {
		case <-stop:
			return res
		case <-deadline:
			return res
		default:
		}
		code, body, err := a.try("GET", "http://"+a.gateway+"/")
		switch {
		case err == nil && code == http.StatusOK && (body == "v1" || body == "v2"):
			res.ok++
			res.servedBy[body]++
		default:
			res.failed++
			if len(res.failures) < 3 {
				res.failures = append(res.failures, fmt.Sprintf("%d %q %v", code, body, err))
			}
		}
	}
}
