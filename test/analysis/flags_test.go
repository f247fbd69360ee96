//go:build e2e

package analysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/bucket"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
	"aviary.dev/aviary/test/e2e"
)

// flagUpstream is one version of a service with a new checkout behind the flag: with the variant
// "on" in X-Flag-Checkout it answers 500 for errPercent of its requests. It records the variants
// each user was given.
type flagUpstream struct {
	url  string
	mu   sync.Mutex
	seen map[string]map[string]bool // user -> variants
	n    atomic.Int64
}

func newFlagUpstream(t *testing.T, errPercent int) *flagUpstream {
	u := &flagUpstream{seen: map[string]map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		variant, user := r.Header.Get("X-Flag-Checkout"), r.Header.Get("X-User")
		u.mu.Lock()
		if u.seen[user] == nil {
			u.seen[user] = map[string]bool{}
		}
		u.seen[user][variant] = true
		u.mu.Unlock()
		if variant == "on" && errPercent > 0 && u.n.Add(1)%int64(100/errPercent) == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_, _ = io.WriteString(w, "v1")
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// flagSteps are the checkout flag's rollout: 10%, an analysis, 50%, an analysis.
const flagSteps = `
              - setWeight: 10
              - analysis: {templates: [errors-only]}
              - setWeight: 50
              - analysis: {templates: [errors-only]}`

// startFlagRollout runs Aviary with the checkout flag rolled out to "on" by the service's gateway.
func startFlagRollout(t *testing.T, up *flagUpstream) *e2e.Aviary {
	return startFlagSteps(t, up, flagSteps)
}

func startFlagSteps(t *testing.T, up *flagUpstream, steps string) *e2e.Aviary {
	dir := t.TempDir()
	flagFile := filepath.Join(dir, "flags.json")
	doc := `{"flags": {"checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}`
	if err := os.WriteFile(flagFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return e2e.Start(t, fmt.Sprintf(`%s
gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
flags: {files: [%q]}
services:
  - name: shop
    stickiness: {header: X-User}
    versions: [{name: v1, endpoints: [%q]}]
    flags:
      - key: checkout
        header: X-Flag-Checkout
        release: "on"
        strategy:
          canary:
            steps:%s
`, errorsOnly, flagFile, up.url, steps))
}

// userLoad sends about rps requests a second, each from one of users users, until ctx ends.
func userLoad(ctx context.Context, gw string, rps, users int) {
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			tick := time.NewTicker(time.Second * 4 / time.Duration(rps))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw+"/", nil)
				req.Header.Set("X-User", fmt.Sprintf("user-%d", rng.IntN(users)))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
}

// inShare says whether a user's bucket is in a flag rollout's share of percent.
func inShare(user string, percent int) bool {
	return bucket.Of(flags.RolloutSalt+"checkout", user) >= uint32((100-percent)*bucket.N/100)
}

// A flag variant that makes the upstream fail more is rolled back by the judge within a minute, on
// the gateway's own per-variant measurements, and no user outside the rollout's share ever had it.
func TestAFailingFlagVariantIsRolledBackWithinAMinute(t *testing.T) {
	t.Parallel()
	up := newFlagUpstream(t, 10)
	a := startFlagRollout(t, up)
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go userLoad(ctx, a.GW, 100, 3000)
	st := a.WaitFor("flag:checkout", 75*time.Second, func(s rollout.Status) bool { return s.Phase == rollout.Degraded })
	took := time.Since(began)
	t.Logf("flag rollout rolled back after %s: %s", took.Round(time.Second), st.Message)
	if took > 60*time.Second {
		t.Errorf("rolled back after %s, want within 60 s", took)
	}
	if st.StableVersion != "off" || st.CanaryWeight != 0 {
		t.Errorf("after the rollback: stable %q, canary weight %d; want off, 0", st.StableVersion, st.CanaryWeight)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	on := 0
	for user, vs := range up.seen {
		if vs["on"] {
			on++
			if !inShare(user, 10) {
				t.Fatalf("%s got the variant but is not in the 10%% share: a user of the default variant moved", user)
			}
		}
	}
	if on == 0 {
		t.Fatal("no user got the variant: the rollout never reached the gateway")
	}
	t.Logf("%d of %d users had the variant, all in the 10%% share", on, len(up.seen))
	// The exposures kept for experiments say the same: every user given "on" was in the share.
	var exp store.ExposureCounts
	getJSON(t, a.Admin+"/api/v1/flags/checkout/exposures?recent=1000", &exp)
	if exp.ByVariant["on"] == 0 || exp.ByVariant["off"] == 0 {
		t.Fatalf("exposures by variant %v; want both variants", exp.ByVariant)
	}
	for _, e := range exp.Recent {
		if e.Variant == "on" && !inShare(e.Key, 10) {
			t.Fatalf("exposure %+v: given on outside the share", e)
		}
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// A healthy variant is rolled out to every user, step by step, the same users staying in.
func TestAHealthyFlagVariantReachesEveryone(t *testing.T) {
	t.Parallel()
	up := newFlagUpstream(t, 0)
	a := startFlagRollout(t, up)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go userLoad(ctx, a.GW, 100, 3000)
	st := a.WaitFor("flag:checkout", 5*time.Minute, e2e.Ended)
	if st.Phase != rollout.Healthy || st.StableVersion != "on" {
		t.Fatalf("the healthy variant's rollout ended %s with stable %q: %s", st.Phase, st.StableVersion, st.Message)
	}
	// Once it is complete every user gets the variant, users never seen before included.
	for i := range 200 {
		user := fmt.Sprintf("new-user-%d", i)
		req, _ := http.NewRequest(http.MethodGet, a.GW+"/", nil)
		req.Header.Set("X-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		up.mu.Lock()
		vs := up.seen[user]
		up.mu.Unlock()
		if !vs["on"] || len(vs) != 1 {
			t.Fatalf("%s after the rollout completed: variants %v, want on", user, vs)
		}
	}
}

// The kill switch serves every caller's default at once and aborts the flag's rollout in flight,
// naming who pulled it.
func TestTheKillSwitchAbortsAFlagRollout(t *testing.T) {
	t.Parallel()
	up := newFlagUpstream(t, 0)
	a := startFlagSteps(t, up, "\n              - setWeight: 100\n              - pause: {}")
	a.WaitFor("flag:checkout", 10*time.Second, func(s rollout.Status) bool { return s.CanaryWeight == 100 })
	req, _ := http.NewRequest(http.MethodPost, a.Admin+"/api/v1/flags/checkout/disable", strings.NewReader(`{"reason": "checkout broken"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("disable: %v %v", err, resp)
	}
	resp.Body.Close()
	st := a.WaitFor("flag:checkout", 10*time.Second, func(s rollout.Status) bool { return s.Phase == rollout.Degraded })
	if !strings.Contains(st.Message, "disabled") {
		t.Errorf("abort message %q does not say the flag was disabled", st.Message)
	}
	// Disabled: no variant, so the upstream gets no flag header and uses its own default.
	greq, _ := http.NewRequest(http.MethodGet, a.GW+"/", nil)
	greq.Header.Set("X-User", "after-the-switch")
	gresp, err := http.DefaultClient.Do(greq)
	if err != nil {
		t.Fatal(err)
	}
	gresp.Body.Close()
	up.mu.Lock()
	defer up.mu.Unlock()
	if vs := up.seen["after-the-switch"]; !vs[""] || len(vs) != 1 {
		t.Errorf("after the kill switch the upstream saw variants %v; want none", vs)
	}
}
