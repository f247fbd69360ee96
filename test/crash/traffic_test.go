//go:build e2e

package crash_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// load sends requests through the gateway at a bounded rate for as long as the test runs. While
// aviary is down its requests fail to connect; that is expected and only counted.
type load struct {
	url  string
	done chan struct{}

	mu       sync.Mutex
	byServer map[string]int // 2xx answers by the upstream that gave them
	byCode   map[int]int    // answers that were not 2xx
	connErrs int
}

// startLoad sends about rate requests a second to gateway until ctx ends; every fourth request
// carries the canary's segment header.
func startLoad(ctx context.Context, gateway string, rate int) *load {
	l := &load{url: "http://" + gateway + "/items", done: make(chan struct{}),
		byServer: map[string]int{}, byCode: map[int]int{}}
	go l.run(ctx, rate)
	return l
}

func (l *load) run(ctx context.Context, rate int) {
	defer close(l.done)
	hc := &http.Client{Timeout: 2 * time.Second}
	tk := time.NewTicker(time.Second / time.Duration(rate))
	defer tk.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s?n=%d", l.url, i), nil)
		if i%4 == 0 {
			req.Header.Set("X-Canary", "1")
		}
		l.record(hc.Do(req))
	}
}

func (l *load) record(resp *http.Response, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.connErrs++
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		l.byServer[resp.Header.Get("X-Aviary-Upstream")]++
	} else {
		l.byCode[resp.StatusCode]++
	}
}

// summary waits for the load to stop and says what it saw.
func (l *load) summary() string {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := 0
	for _, n := range l.byServer {
		ok += n
	}
	return fmt.Sprintf("%d answered (by upstream: %s), not 2xx: %s, no answer (aviary down): %d",
		ok, counts(l.byServer), counts(l.byCode), l.connErrs)
}

// counts renders a map of counters in key order.
func counts[K comparable](m map[K]int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%v=%d", k, n))
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// driver drives rollouts through the API at random moments, as people and pipelines would: it
// starts rollouts of v2, v3 and v1 in turn and promotes, aborts, retries, undoes, pauses and
// resumes them. The test holds mu while it checks, so that nothing but the controller moves the
// rollout under its checks.
type driver struct {
	api  *client
	rng  *rand.Rand
	seen *observer
	done chan struct{}

	mu       sync.Mutex // held during each action, and by the test while it checks
	next     int        // the version the next start rolls out
	outcomes map[string]int
	odd      []string // answers no action should get
}

// actions and their relative frequencies.
var actions = []struct {
	name   string
	weight int
}{
	{"start", 12}, {"promote", 40}, {"abort", 6}, {"retry", 8}, {"undo", 10},
	{"pause", 5}, {"resume", 8}, {"restart", 3}, {"promote-full", 4},
}

func startDriver(ctx context.Context, api *client, seed uint64, seen *observer) *driver {
	d := &driver{api: api, rng: rand.New(rand.NewPCG(seed, 1)), seen: seen, done: make(chan struct{}),
		next: 1, outcomes: map[string]int{}}
	go d.run(ctx)
	return d
}

func (d *driver) run(ctx context.Context) {
	defer close(d.done)
	for {
		d.mu.Lock()
		wait := time.Duration(50+d.rng.IntN(250)) * time.Millisecond
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		d.mu.Lock()
		d.act()
		d.mu.Unlock()
	}
}

// act runs one random action. d.mu is held.
func (d *driver) act() {
	name := d.pick()
	path := "/api/v1/services/" + service + "/rollout"
	var body any
	switch name {
	case "start":
		v := versions[d.next%len(versions)]
		d.next++
		body = map[string]string{"version": v}
	case "promote-full":
		path += "/promote"
		body = map[string]bool{"full": true}
	default:
		path += "/" + name
	}
	var st rollout.Status
	code, err := d.api.call("POST", path, body, &st)
	switch {
	case err != nil:
		d.outcomes[name+":no answer"]++
	case code == http.StatusOK:
		d.outcomes[name+":ok"]++
		d.seen.see(st)
	case code == http.StatusConflict:
		d.outcomes[name+":conflict"]++ // a command that does not fit the phase
	default:
		d.outcomes[fmt.Sprintf("%s:HTTP %d", name, code)]++
		d.odd = append(d.odd, fmt.Sprintf("POST %s answered HTTP %d", path, code))
	}
}

func (d *driver) pick() string {
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	n := d.rng.IntN(total)
	for _, a := range actions {
		if n < a.weight {
			return a.name
		}
		n -= a.weight
	}
	return actions[0].name
}

// hold stops the driver between actions until the returned func is called.
func (d *driver) hold() (release func()) {
	d.mu.Lock()
	return d.mu.Unlock
}

// observer remembers the newest rollout status any client was given: what aviary had committed
// (it answers only after its store's fsync) and so must still hold after a crash.
type observer struct {
	mu   sync.Mutex
	last rollout.Status
	any  bool
}

func (o *observer) see(st rollout.Status) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.any || st.Generation > o.last.Generation {
		o.last, o.any = st, true
	}
}

func (o *observer) newest() (rollout.Status, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last, o.any
}
