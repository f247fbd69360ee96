package fleet_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fleet"
	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// clock is a test's injected time, shared by the replicas and the reader.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// replica is an in-process gateway replica: its registries and counter behind real HTTP, as the
// admin API serves them (api.Server.fleetCounts). hang makes it hold every answer until released.
type replica struct {
	t       *testing.T
	clk     *clock
	srv     *httptest.Server
	mu      sync.Mutex
	reg     *metrics.Registry
	llm     *llmstats.Registry
	counter *fleet.Counter
	hang    chan struct{} // non-nil: answers wait for it to close
}

func newReplica(t *testing.T, clk *clock) *replica {
	r := &replica{t: t, clk: clk}
	r.restart()
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		c, hang := r.counter, r.hang
		r.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-req.Context().Done():
				return
			}
		}
		_ = json.NewEncoder(w).Encode(c.Counts(req.URL.Query()["service"]))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// restart stands for a new process at the same address: new registries, a new instance.
func (r *replica) restart() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reg = metrics.NewRegistry(metrics.Options{Now: r.clk.now})
	r.llm = llmstats.New(nil)
	r.counter = fleet.NewCounter(r.reg, r.llm, r.clk.now)
}

// serve records n requests of a version, errs of them 5xx, each taking d.
func (r *replica) serve(version string, n, errs int, d time.Duration) {
	r.mu.Lock()
	s := r.reg.Series("shop", version, metrics.Primary)
	r.mu.Unlock()
	for i := range n {
		code := 200
		if i < errs {
			code = 503
		}
		s.BeginAt(r.clk.now().Add(-d))
		s.End(metrics.Observation{Code: code, Duration: d, End: r.clk.now()})
	}
}

func (r *replica) rep() fleet.Replica { return fleet.Replica{Name: r.srv.URL, URL: r.srv.URL} }

func reps(rs ...*replica) []fleet.Replica {
	out := make([]fleet.Replica, len(rs))
	for i, r := range rs {
		out[i] = r.rep()
	}
	return out
}

// judged is what the rollout's registry holds of a version over the retained windows.
func judged(reg *metrics.Registry, clk *clock, version string) metrics.Summary {
	return reg.Window("shop", version, metrics.Primary, clk.now().Add(-10*time.Minute), clk.now().Add(time.Second))
}

func setup(t *testing.T, n int) (*clock, []*replica, *fleet.Reader, *metrics.Registry, *llmstats.Registry) {
	clk := newClock()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = newReplica(t, clk)
	}
	reader := fleet.New(fleet.Options{Now: clk.now, Timeout: 2 * time.Second})
	reg, ls := metrics.NewRegistry(metrics.Options{Now: clk.now}), llmstats.New(nil)
	reader.SetSink("shop", fleet.Sink{Metrics: reg, LLM: ls})
	return clk, rs, reader, reg, ls
}

func TestSumsAcrossReplicas(t *testing.T) {
	clk, rs, reader, reg, _ := setup(t, 3)
	for _, r := range rs {
		r.serve("v1", 1000, 10, 20*time.Millisecond) // before the reader's first look: not its to judge
	}
	clk.advance(time.Second)
	if cov := reader.Look(context.Background(), reps(rs...)); cov.Answered != 3 || cov.Replicas != 3 {
		t.Fatalf("first look: %+v", cov)
	}
	if got := judged(reg, clk, "v1").Requests; got != 0 {
		t.Fatalf("the first look is a baseline, yet %d requests were added", got)
	}
	for i, r := range rs {
		r.serve("v1", 100*(i+1), i, 20*time.Millisecond)
		r.serve("v2", 10*(i+1), i+1, 200*time.Millisecond)
	}
	clk.advance(5 * time.Second)
	cov := reader.Look(context.Background(), reps(rs...))
	if cov.Answered != 3 || cov.String() != "3 of 3 gateway replicas" {
		t.Fatalf("coverage %+v (%s)", cov, cov)
	}
	v1, v2 := judged(reg, clk, "v1"), judged(reg, clk, "v2")
	if v1.Requests != 600 || v1.Errors != 3 || v2.Requests != 60 || v2.Errors != 6 {
		t.Fatalf("v1 %d requests %d errors, v2 %d requests %d errors; want 600/3 and 60/6",
			v1.Requests, v1.Errors, v2.Requests, v2.Errors)
	}
	if n := v2.Latency.CountAbove(100 * time.Millisecond); n != 60 {
		t.Fatalf("v2 has %d requests above 100ms in the sum, want all 60", n)
	}
	// A look with nothing new adds nothing.
	clk.advance(5 * time.Second)
	reader.Look(context.Background(), reps(rs...))
	if got := judged(reg, clk, "v1").Requests; got != 600 {
		t.Fatalf("after an idle look v1 has %d requests, want 600", got)
	}
}

func TestRestartedReplicaCountsOnceAndLossIsCounted(t *testing.T) {
	clk, rs, reader, reg, _ := setup(t, 2)
	reader.Look(context.Background(), reps(rs...))
	clk.advance(10 * time.Second)
	rs[0].serve("v1", 100, 0, time.Millisecond) // 10/s
	rs[1].serve("v1", 100, 0, time.Millisecond)
	reader.Look(context.Background(), reps(rs...))
	// Replica 0 serves 50 more, dies before the next look, and starts again 5 s later.
	rs[0].serve("v1", 50, 0, time.Millisecond)
	clk.advance(5 * time.Second)
	rs[0].restart()
	clk.advance(5 * time.Second)
	rs[0].serve("v1", 30, 3, time.Millisecond)
	rs[1].serve("v1", 100, 0, time.Millisecond)
	cov := reader.Look(context.Background(), reps(rs...))
	if got, want := judged(reg, clk, "v1").Requests, uint64(200+30+100); got != want {
		t.Fatalf("v1 has %d requests after the restart, want %d (the new instance's 30 counted once, the lost 50 not at all)", got, want)
	}
	if got := judged(reg, clk, "v1").Errors; got != 3 {
		t.Fatalf("v1 has %d errors, want the new instance's 3", got)
	}
	// Lost: replica 0 ran at 10/s, and 5 s passed from its last answer to its new start.
	if cov.Ended != 1 || cov.Lost != 50 {
		t.Fatalf("coverage %+v: want 1 ended instance and about 50 requests lost", cov)
	}
}

func TestHungReplicaIsLeftOutThenCatchesUp(t *testing.T) {
	clk, rs, reader, reg, _ := setup(t, 3)
	reader.Look(context.Background(), reps(rs...))
	for _, r := range rs {
		r.serve("v1", 100, 5, time.Millisecond)
	}
	release := make(chan struct{})
	rs[2].mu.Lock()
	rs[2].hang = release
	rs[2].mu.Unlock()
	clk.advance(5 * time.Second)
	cov := reader.Look(context.Background(), reps(rs...)) // ends at the reader's timeout
	if cov.Answered != 2 || cov.Replicas != 3 || cov.String() != "2 of 3 gateway replicas" {
		t.Fatalf("a hung replica: coverage %+v (%s)", cov, cov)
	}
	if got := judged(reg, clk, "v1"); got.Requests != 200 || got.Errors != 10 {
		t.Fatalf("with a replica left out: %d requests %d errors, want 200/10 (never its share as zero errors)", got.Requests, got.Errors)
	}
	close(release)
	rs[2].mu.Lock()
	rs[2].hang = nil
	rs[2].mu.Unlock()
	clk.advance(5 * time.Second)
	cov = reader.Look(context.Background(), reps(rs...))
	if got := judged(reg, clk, "v1"); cov.Answered != 3 || got.Requests != 300 || got.Errors != 15 {
		t.Fatalf("the replica back: coverage %+v, %d requests %d errors, want 300/15", cov, got.Requests, got.Errors)
	}
	if cov.Missed != 1 || cov.Ended != 0 {
		t.Fatalf("coverage %+v: want one missed replica-look and no ended instance", cov)
	}
}

func TestLLMAndPendingReachTheSink(t *testing.T) {
	clk, rs, reader, reg, ls := setup(t, 2)
	reader.Look(context.Background(), reps(rs...))
	for _, r := range rs {
		for range 10 {
			r.llm.Record(llm.Record{Service: "shop", Version: "v2", Duration: time.Second,
				Exchange: llm.Exchange{FirstToken: 300 * time.Millisecond, Usage: llm.Usage{Known: true, Input: 10, Output: 20}}})
		}
		// Two requests begun 30 s ago and still in flight.
		s := r.reg.Series("shop", "v2", metrics.Primary)
		s.BeginAt(clk.now().Add(-30 * time.Second))
		s.BeginAt(clk.now().Add(-30 * time.Second))
	}
	clk.advance(time.Second)
	reader.Look(context.Background(), reps(rs...))
	tot := ls.Totals("shop", "v2", false)
	if tot.Requests != 20 || tot.OutputTokens != 400 || tot.TTFT.Count() != 20 {
		t.Fatalf("LLM totals %d requests %d output tokens %d TTFTs; want 20, 400, 20", tot.Requests, tot.OutputTokens, tot.TTFT.Count())
	}
	if q := tot.TTFT.Quantile(0.5); q < 290*time.Millisecond || q > 310*time.Millisecond {
		t.Fatalf("median TTFT %v, want about 300ms", q)
	}
	if p := reg.Pending("shop", "v2", metrics.Primary, clk.now().Add(-10*time.Second)); p != 4 {
		t.Fatalf("%d requests in flight for over 10 s across the fleet, want 4", p)
	}
}

// A rollout that starts while the replicas have long served its service reads from a baseline:
// what they counted before is not its to judge.
func TestANewSinkStartsFromABaseline(t *testing.T) {
	clk, rs, reader, _, _ := setup(t, 2)
	if reader.DropSink("shop") {
		t.Fatal("a sink is left after the only one was dropped")
	}
	reader.Look(context.Background(), reps(rs...))
	for _, r := range rs {
		r.serve("v1", 100, 50, time.Millisecond)
	}
	clk.advance(5 * time.Second)
	reader.Look(context.Background(), reps(rs...)) // shop is not asked for

	late := metrics.NewRegistry(metrics.Options{Now: clk.now})
	reader.SetSink("shop", fleet.Sink{Metrics: late, As: "shop-rollout-2"})
	clk.advance(5 * time.Second)
	reader.Look(context.Background(), reps(rs...)) // the new sink's baseline
	rs[0].serve("v1", 10, 0, time.Millisecond)
	clk.advance(5 * time.Second)
	reader.Look(context.Background(), reps(rs...))
	w := late.Window("shop-rollout-2", "v1", metrics.Primary, clk.now().Add(-10*time.Minute), clk.now().Add(time.Second))
	if w.Requests != 10 || w.Errors != 0 {
		t.Fatalf("the new sink has %d requests %d errors, want the 10 served since it began (the earlier 200 with their errors are not its own)", w.Requests, w.Errors)
	}
}

// A replica that leaves the fleet (not ready for a while) and comes back with the same instance
// loses nothing: its counts since its last answer arrive with its next, and its loss is taken back.
func TestAReplicaBackWithTheSameInstanceLosesNothing(t *testing.T) {
	clk, rs, reader, reg, _ := setup(t, 2)
	reader.Look(context.Background(), reps(rs...))
	rs[1].serve("v1", 100, 0, time.Millisecond)
	clk.advance(5 * time.Second)
	reader.Look(context.Background(), reps(rs...))
	rs[1].serve("v1", 40, 0, time.Millisecond)
	clk.advance(5 * time.Second)
	cov := reader.Look(context.Background(), reps(rs[0]))
	if cov.Replicas != 1 || cov.Ended != 1 || cov.Lost == 0 {
		t.Fatalf("a replica gone: coverage %+v, want 1 ended with an estimate of its loss", cov)
	}
	clk.advance(5 * time.Second)
	cov = reader.Look(context.Background(), reps(rs...))
	if got := judged(reg, clk, "v1").Requests; got != 140 || cov.Ended != 0 || cov.Lost != 0 {
		t.Fatalf("the replica back: %d requests (want 140), coverage %+v (want nothing ended or lost)", got, cov)
	}
}
