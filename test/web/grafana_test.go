//go:build e2e

package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/promtest"
)

// TestGrafanaDashboardQueriesReturnData runs every query of deploy/grafana/aviary.json against a
// real Prometheus scraping a running aviary (a rollout in flight, traffic with some errors): each
// must be valid PromQL and return data, so that no panel of the dashboard is empty or broken.
func TestGrafanaDashboardQueriesReturnData(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/aviary.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/aviary.json is not valid JSON: %v", err)
	}
	a := serve(t, services(t, 20, holdAtHalf), "")
	a.load(t, 40)
	a.startRollout("shop", "v2")
	prom := promtest.Start(t, strings.TrimPrefix(a.admin, "http://"))

	// Grafana's variables as a user leaves them: every service, and its rate interval.
	expand := strings.NewReplacer(`$service`, `.*`, `$__rate_interval`, `1m`)
	queries := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			queries++
			expr := expand.Replace(target.Expr)
			waitFor(t, 60*time.Second, "data for panel "+p.Title+": "+expr, func() bool { return series(t, prom, expr) > 0 })
		}
	}
	for _, v := range dash.Templating.List {
		if name, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			metric, label, _ := strings.Cut(strings.TrimSuffix(name, ")"), ", ")
			if n := series(t, prom, "count by ("+label+") ("+metric+")"); n < 2 {
				t.Errorf("variable %s: %d values of %s, want shop and cart", v.Name, n, label)
			}
		}
	}
	t.Logf("%d queries of %d panels returned data", queries, len(dash.Panels))
}

// series runs an instant query and returns how many series it gave; an invalid query fails the
// test with Prometheus's error.
func series(t *testing.T, prom, expr string) int {
	t.Helper()
	resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	if ans.Status != "success" {
		t.Fatalf("query %s: %s", expr, ans.Error)
	}
	return len(ans.Data.Result)
}
