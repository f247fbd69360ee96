package gateway

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"aviary.dev/aviary/internal/redact"
)

// endpoint is one upstream instance and its runtime state. The state (health, ejection, counters)
// lives as long as the endpoint is configured, across reloads: a config change never makes a sick
// endpoint look healthy again. Config (what the user wrote) stays in the snapshot; this is the Host
// of Caddy's Upstream/Host split.
type endpoint struct {
	url *url.URL // without user info: the credentials are in auth
	// raw is the URL as configured but without its user info, for logs, metrics and the status:
	// credentials never show (the registry keys endpoints by the full URL).
	raw string
	// auth is the Authorization header made of the URL's user info (basic auth), or "" when it has
	// none. It goes upstream when the client sent no Authorization of its own, as net/http's client
	// does with a URL's user info.
	auth string

	// activeHealthy is the verdict of active checks (true when there are none).
	activeHealthy atomic.Bool
	// passedCheck: an active check has passed at least once since the endpoint was added, which is
	// what readiness means to a rollout (an endpoint with no active check is ready when available).
	passedCheck atomic.Bool
	// probed: an active check has finished (passed or failed) since the endpoint was added.
	probed atomic.Bool
	// ejectedUntil (unix nanoseconds) is set by passive ejection; zero when not ejected.
	ejectedUntil atomic.Int64
	// probation: ejected, and no request has succeeded since. Once the ejection ends the endpoint
	// gets one request at a time, its trial, until one succeeds; a failed trial ejects it again at
	// once. Without it, each re-admission cost threshold failed requests (15 of 5,761 in a test).
	probation atomic.Bool
	trial     atomic.Bool // a trial request is in flight

	mu             sync.Mutex // guards the passive-health fields below; taken only when a request fails or first succeeds after failures
	failures       int        // consecutive failed requests
	ejections      int        // ejections in a row, for the backoff
	lastEjectionAt time.Time
	dirty          atomic.Bool // failures > 0: a success must reset them
}

func newEndpoint(u *url.URL, raw string) *endpoint {
	e := &endpoint{url: u, raw: redact.URL(raw)}
	if u.User != nil {
		pw, _ := u.User.Password()
		e.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
		bare := *u
		bare.User = nil
		e.url = &bare
	}
	e.activeHealthy.Store(true)
	return e
}

// authorize sets the endpoint's credentials on an upstream request that has no Authorization, and
// takes back those of prev (an endpoint tried before on the same request) so that they never go
// to another endpoint.
func (e *endpoint) authorize(h http.Header, prev *endpoint) {
	if prev != nil && prev.auth != "" && h.Get("Authorization") == prev.auth {
		h.Del("Authorization")
	}
	if e.auth != "" && h.Get("Authorization") == "" {
		h.Set("Authorization", e.auth)
	}
}

// available says whether the endpoint may get traffic at time now (unix nanoseconds).
func (e *endpoint) available(now int64) bool {
	return e.activeHealthy.Load() && e.ejectedUntil.Load() <= now && !(e.probation.Load() && e.trial.Load())
}

// take claims the endpoint for one request at now. The request is the endpoint's trial when it is on
// probation; ok is false when it is not available (or another request took the trial first).
func (e *endpoint) take(now int64) (ok, trial bool) {
	if !e.available(now) {
		return false, false
	}
	if !e.probation.Load() {
		return true, false
	}
	if !e.trial.CompareAndSwap(false, true) {
		return false, false
	}
	return true, true
}

// untake gives back a trial that told nothing (the client went away, or a mirror copy took it).
func (e *endpoint) untake(trial bool) {
	if trial {
		e.trial.Store(false)
	}
}

// ready says whether the endpoint is available and, when it is actively checked, has passed a check.
func (e *endpoint) ready(now int64, checked bool) bool {
	return e.available(now) && (!checked || e.passedCheck.Load())
}

// passivePolicy is a service's passive-health settings.
type passivePolicy struct {
	threshold     int // consecutive failures that eject; <= 0: never
	base, maximum time.Duration
}

// failed records a failed request and reports whether it ejected the endpoint. A failed trial ejects
// at once; a request on probation that is not the trial was sent before the ejection and tells
// nothing new.
func (e *endpoint) failed(p passivePolicy, trial bool, now time.Time) (ejectedFor time.Duration) {
	if p.threshold <= 0 || (!trial && e.probation.Load()) {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirty.Store(true)
	e.failures++
	if e.failures < p.threshold && !trial {
		return 0
	}
	// A new ejection soon after the last one doubles the time out; a quiet spell resets it.
	if now.Sub(e.lastEjectionAt) > p.maximum+time.Duration(e.ejections)*p.base {
		e.ejections = 0
	}
	d := p.base << e.ejections
	if d > p.maximum || d <= 0 {
		d = p.maximum
	} else {
		e.ejections++
	}
	e.failures = 0
	e.lastEjectionAt = now
	e.ejectedUntil.Store(now.Add(d).UnixNano())
	e.probation.Store(true)
	e.trial.Store(false)
	return d
}

// succeeded clears the run of failures, and the probation when the request was the trial; cheap when
// there was nothing to clear.
func (e *endpoint) succeeded(trial bool) {
	if trial {
		e.mu.Lock()
		e.failures = 0
		e.dirty.Store(false)
		e.probation.Store(false)
		e.trial.Store(false)
		e.mu.Unlock()
		return
	}
	if !e.dirty.Load() || e.probation.Load() {
		return
	}
	e.mu.Lock()
	e.failures = 0
	e.dirty.Store(false)
	e.mu.Unlock()
}

// picker chooses among a version's available endpoints with nginx's smooth weighted round robin:
// each pick adds every candidate's weight to its running score, takes the highest, and subtracts the
// total from the winner. Shares are exact and picks evenly interleaved, and it adapts at once when an
// endpoint becomes unavailable. All endpoints weigh 1 today; the algorithm takes weights as they come.
type picker struct {
	mu      sync.Mutex
	current []int
}

// pick returns an available endpoint other than skip (nil: none), and whether the request is the
// endpoint's trial after an ejection (see endpoint.take).
func (p *picker) pick(eps []*endpoint, now int64, skip *endpoint) (*endpoint, bool) {
	if len(eps) == 1 {
		if e := eps[0]; e != skip {
			if ok, trial := e.take(now); ok {
				return e, trial
			}
		}
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 2 {
		e := p.next(eps, now, skip)
		if e == nil {
			return nil, false
		}
		if ok, trial := e.take(now); ok {
			return e, trial
		}
		if skip != nil {
			break
		}
		skip = e // its trial went to another version's request a moment ago
	}
	return nil, false
}

// next is the smooth weighted round robin's next choice among available endpoints other than skip.
func (p *picker) next(eps []*endpoint, now int64, skip *endpoint) *endpoint {
	if len(p.current) != len(eps) {
		p.current = make([]int, len(eps))
	}
	best, total := -1, 0
	for i, e := range eps {
		if e == skip || !e.available(now) {
			continue
		}
		p.current[i]++
		total++
		if best < 0 || p.current[i] > p.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	p.current[best] -= total
	return eps[best]
}
