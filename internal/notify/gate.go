package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"aviary.dev/aviary/internal/redact"
	"aviary.dev/aviary/internal/rollout"
)

// maxGateBody bounds what is read of a gate's answer: enough for a message, not a download.
const maxGateBody = 4 << 10

// GateOptions configures Gates.
type GateOptions struct {
	// Client sends the requests; nil uses a client that ignores proxy settings.
	Client *http.Client
	// Logger gets each failed check and each decision; nil discards them.
	Logger *slog.Logger
	// Now stamps verdicts; nil uses time.Now.
	Now func() time.Time
}

// Gates is the rollout.Judge of gate checks. The first Verdict for a check starts a poller that
// asks the gate's URL every interval; Verdict then answers with the poller's latest verdict,
// Running until the gate passes or has failed FailureLimit times in a row.
type Gates struct {
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	pollers map[string]*gatePoller // by check ID
	closed  bool
}

var _ rollout.Judge = (*Gates)(nil)

// NewGates returns a judge with no pollers; Close stops those it starts.
func NewGates(o GateOptions) *Gates {
	g := &Gates{client: o.Client, log: o.Logger, now: o.Now, pollers: map[string]*gatePoller{}}
	if g.client == nil {
		g.client = defaultClient()
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g
}

// Verdict returns the latest verdict on the gate check r, starting its poller on the first call.
// It never waits for the network. A check that is not a gate, or whose URL does not parse, fails:
// it could never pass, and letting it run would hold the rollout forever.
func (g *Gates) Verdict(r rollout.Run) rollout.Verdict {
	target, err := gateTarget(r)
	if err != nil {
		return rollout.Verdict{Phase: rollout.Fail, Message: err.Error(), At: g.now()}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return rollout.Verdict{Phase: rollout.Running, Message: "gate judge is stopped", At: g.now()}
	}
	p, ok := g.pollers[r.ID]
	if !ok {
		p = g.start(r, target)
		g.pollers[r.ID] = p
	}
	return p.latest()
}

// Forget stops the poller of check id, if any, and drops its verdict. It returns once the poller
// has stopped (an answer in flight is abandoned), so the gate sees no request after it.
func (g *Gates) Forget(id string) {
	g.mu.Lock()
	p := g.pollers[id]
	delete(g.pollers, id)
	g.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Close stops every poller; later Verdicts answer Running and start none.
func (g *Gates) Close() {
	g.mu.Lock()
	g.closed = true
	pollers := g.pollers
	g.pollers = map[string]*gatePoller{}
	g.mu.Unlock()
	for _, p := range pollers {
		p.cancel()
	}
	for _, p := range pollers {
		<-p.done
	}
}

// gateTarget is the URL the poller asks: the gate's own, with the rollout's service and versions
// added to its query.
func gateTarget(r rollout.Run) (string, error) {
	if r.Kind != rollout.GateCheck || r.Gate == nil {
		return "", fmt.Errorf("check %s of %s is a %q check without a gate; the gate judge only answers gate steps", r.ID, r.Service, r.Kind)
	}
	u, err := url.Parse(r.Gate.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("gate %s of %s: URL %s is not an absolute http(s) URL; fix the gate step's url", r.ID, r.Service, redact.URL(r.Gate.URL))
	}
	q := u.Query()
	q.Set("service", r.Service)
	q.Set("stable", r.Stable)
	q.Set("canary", r.Canary)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (g *Gates) start(r rollout.Run, target string) *gatePoller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &gatePoller{
		id: r.ID, target: target, shown: redact.URL(r.Gate.URL), client: g.client, now: g.now,
		log: g.log.With("check", r.ID, "service", r.Service, "url", redact.URL(r.Gate.URL)),
		// The gate step comes from the config, which defaults its interval, timeout and limit.
		interval: r.Gate.Interval.Duration,
		timeout:  r.Gate.Timeout.Duration,
		limit:    r.Gate.FailureLimit,
		cancel:   cancel, done: make(chan struct{}),
		verdict: rollout.Verdict{Phase: rollout.Running, At: g.now(),
			Message: fmt.Sprintf("gate %s: waiting for the first answer", redact.URL(r.Gate.URL))},
	}
	go p.run(ctx)
	return p
}

// gatePoller asks one gate until it decides. A named type so that stack traces say what a
// goroutine is.
type gatePoller struct {
	id       string
	target   string // with the query the gate is asked with
	shown    string // redacted, for messages and logs
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	timeout  time.Duration
	limit    int // failures in a row that fail the gate

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	verdict rollout.Verdict
}

func (p *gatePoller) latest() rollout.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.verdict
}

func (p *gatePoller) stop() {
	p.cancel()
	<-p.done
}

func (p *gatePoller) run(ctx context.Context) {
	defer close(p.done)
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	failures := 0
	for {
		v := p.check(ctx, &failures)
		if ctx.Err() != nil {
			return // forgotten: the verdict no longer matters
		}
		p.mu.Lock()
		p.verdict = v
		p.mu.Unlock()
		if v.Phase != rollout.Running {
			p.log.Info("gate decided", "verdict", v.Phase, "message", v.Message)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// check asks the gate once and turns its answer into a verdict, counting failures in a row.
func (p *gatePoller) check(ctx context.Context, failures *int) rollout.Verdict {
	status, said, err := p.ask(ctx)
	v := rollout.Verdict{Phase: rollout.Running, At: p.now()}
	switch {
	case err == nil && status/100 == 2:
		*failures = 0
		v.Phase, v.Message = rollout.Pass, fmt.Sprintf("gate %s answered %d%s", p.shown, status, said)
	case err == nil && (status == http.StatusConflict || status == http.StatusLocked):
		*failures = 0
		v.Message = fmt.Sprintf("gate %s: not yet: %d%s", p.shown, status, said)
	default:
		*failures++
		last := fmt.Sprintf("answered %d%s", status, said)
		if err != nil {
			last = err.Error()
		}
		p.log.Warn("gate check failed", "status", status, "err", last, "failures", *failures, "limit", p.limit)
		if *failures >= p.limit {
			v.Phase = rollout.Fail
			v.Message = fmt.Sprintf("gate %s failed %d checks in a row; last: %s", p.shown, *failures, last)
		} else {
			v.Message = fmt.Sprintf("gate %s failed %d of %d checks allowed in a row; last: %s", p.shown, *failures, p.limit, last)
		}
	}
	return v
}

// ask GETs the gate. said is the answer's {"message": …} as ": …", or empty.
func (p *gatePoller) ask(ctx context.Context) (status int, said string, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.target, nil)
	if err != nil {
		return 0, "", redact.Err(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, "", redact.Err(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGateBody))
	if err != nil {
		return 0, "", fmt.Errorf("read answer: %w", err)
	}
	var answer struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &answer) == nil && answer.Message != "" {
		said = fmt.Sprintf(": %q", answer.Message)
	}
	said += redirected(resp)
	return resp.StatusCode, said, nil
}
