package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// Replica is one gateway replica to read.
type Replica struct {
	Name string // for people: the pod, or the address
	URL  string // the admin API's base URL, e.g. http://10.0.0.7:9091
}

// Sink is where one service's sum lands: the registries a rollout's analyzer reads.
type Sink struct {
	Metrics *metrics.Registry
	LLM     *llmstats.Registry // nil: LLM counts are not kept
	// As is the service's name in the sink, when the judge knows it by another name than the
	// replicas do ("": the same).
	As string
}

func (s Sink) name(service string) string {
	if s.As != "" {
		return s.As
	}
	return service
}

// Options configures a Reader.
type Options struct {
	Client *http.Client // nil: a client of its own
	Token  string       // the replicas' read token (empty: none, loopback replicas only)
	// Timeout bounds one look: a replica that has not answered by then is left out of it.
	Timeout time.Duration // 0: 2s
	Now     func() time.Time
	Logger  *slog.Logger
}

// Coverage says how much of the fleet the looks have read.
type Coverage struct {
	Replicas int `json:"replicas"` // gateway replicas at the last look
	Answered int `json:"answered"` // of them, those whose answer that look took
	// Missed counts replica-looks without an answer since the reader began (a replica that does not
	// answer is left out of the look; its counts arrive with its next answer).
	Missed int64 `json:"missed,omitempty"`
	// Ended counts replica instances that restarted or went away after they had answered: what
	// they counted after their last answer is lost.
	Ended int64 `json:"ended,omitempty"`
	// Lost estimates the requests lost with them: each one's mean rate since the reader first read
	// it, times the time from its last answer to its end (or to its absence being seen).
	Lost int64 `json:"lost,omitempty"`
	// Looks counts the looks since the reader began; At is the last one.
	Looks int64     `json:"looks"`
	At    time.Time `json:"at"`
}

// String says the coverage as people read it: "3 of 4 gateway replicas".
func (c Coverage) String() string {
	s := fmt.Sprintf("%d of %d gateway replicas", c.Answered, c.Replicas)
	if c.Ended > 0 {
		s += fmt.Sprintf("; %d ended after answering, about %d requests not measured", c.Ended, c.Lost)
	}
	return s
}

// Reader reads a fleet of replicas look by look and adds what is new into each service's sink.
// Look is not safe for concurrent use: one goroutine looks (Run); the other methods are.
type Reader struct {
	o     Options
	start time.Time // first look: instances that started before it are read as baselines

	mu       sync.Mutex
	sinks    map[string]Sink
	cov      Coverage
	replicas map[string]*replica           // by URL
	sum      map[seriesKey]*metrics.Counts // a look's differences, summed over the replicas
	free     []*metrics.Counts             // sums to reuse
}

// replica is what the reader knows of one replica: its instance and that instance's last counts.
type replica struct {
	name     string
	instance string
	seq      uint64
	at       time.Time // its last answer taken
	started  time.Time // the instance's start, on the reader's clock
	series   map[seriesKey]*metrics.Counts
	spare    map[seriesKey]*metrics.Counts // the answer before: reused by the next decode
	llm      map[llmKey]llmstats.Totals
	pending  map[seriesKey][]metrics.PendingSlot
	rate     float64         // requests per second it served on average since first (for Coverage.Lost)
	first    time.Time       // when the reader first read this address
	counted  uint64          // requests read from it since first
	services map[string]bool // the services its last answer covered (nil: a new instance, all new)
	// gone: it was not among the replicas at the last look; lost is what Coverage.Lost counted
	// for it then, taken back if the same instance comes back.
	gone bool
	lost int64
}

type seriesKey struct {
	service, version string
	role             metrics.Role
}

type llmKey struct {
	service, version string
	mirror           bool
}

// New makes a reader.
func New(o Options) *Reader {
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{o: o, sinks: map[string]Sink{}, replicas: map[string]*replica{}}
}

// SetSink makes the looks add a service's counts into sink, from the next look's differences on.
func (r *Reader) SetSink(service string, sink Sink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sinks[service] = sink
}

// DropSink stops adding a service's counts, and reports whether any service is left.
func (r *Reader) DropSink(service string) (left bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sinks, service)
	return len(r.sinks) > 0
}

// Coverage is the reader's coverage as of its last look.
func (r *Reader) Coverage() Coverage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cov
}

// Run looks every interval until ctx ends, finding the replicas with find at each look.
func (r *Reader) Run(ctx context.Context, interval time.Duration, find func(context.Context) ([]Replica, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	said := "" // a lasting error is logged once
	for {
		reps, err := find(ctx)
		switch {
		case err != nil && err.Error() != said && ctx.Err() == nil:
			said = err.Error()
			r.o.Logger.Warn("gateway replicas not found; looks are skipped until they are", "err", err)
		case err == nil:
			said = ""
			r.Look(ctx, reps)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// answer is one replica's outcome of a look.
type answer struct {
	rep Replica
	a   *Answer
	err error
}

// Look reads every replica in parallel, within the timeout, and adds into the sinks the sum of
// the differences of those that answered.
func (r *Reader) Look(ctx context.Context, reps []Replica) Coverage {
	now := r.o.Now()
	if r.start.IsZero() {
		r.start = now
	}
	r.mu.Lock()
	services := make([]string, 0, len(r.sinks))
	for s := range r.sinks {
		services = append(services, s)
	}
	r.mu.Unlock()
	slices.Sort(services)
	answers := r.fetchAll(ctx, reps, services)

	r.mu.Lock()
	defer r.mu.Unlock()
	answered := 0
	for _, an := range answers {
		err := an.err
		if err == nil {
			err = r.take(an.rep, an.a, now)
		}
		if err != nil {
			r.o.Logger.Debug("gateway replica left out of this look", "replica", an.rep.Name, "err", err)
			continue
		}
		answered++
	}
	r.addSums(now)
	r.markGone(reps, now)
	r.cov.Replicas, r.cov.Answered = len(reps), answered
	r.cov.Missed += int64(len(reps) - answered)
	r.cov.Looks++
	r.cov.At = now
	r.setPending()
	return r.cov
}

func (r *Reader) fetchAll(ctx context.Context, reps []Replica, services []string) []answer {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	out := make([]answer, len(reps))
	var wg sync.WaitGroup
	for i, rep := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := r.fetch(ctx, rep, services)
			out[i] = answer{rep: rep, a: a, err: err}
		}()
	}
	wg.Wait()
	return out
}

// maxAnswer bounds an answer's size: a replica serving thousands of versions answers a few MB.
const maxAnswer = 64 << 20

func (r *Reader) fetch(ctx context.Context, rep Replica, services []string) (*Answer, error) {
	q := url.Values{"service": services}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.URL+"/api/v1/fleet/counts?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("counts request to %s: %w", rep.Name, err)
	}
	if r.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.Token)
	}
	res, err := r.o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read counts of %s: %w", rep.Name, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("read counts of %s: %s: %s; check the read token and that the replica runs this aviary version", rep.Name, res.Status, bytes.TrimSpace(msg))
	}
	var a Answer
	if err := json.NewDecoder(io.LimitReader(res.Body, maxAnswer)).Decode(&a); err != nil {
		return nil, fmt.Errorf("decode counts of %s: %w", rep.Name, err)
	}
	if a.Instance == "" {
		return nil, fmt.Errorf("counts of %s carry no instance id; run the same aviary version on the controller and the gateway", rep.Name)
	}
	return &a, nil
}
