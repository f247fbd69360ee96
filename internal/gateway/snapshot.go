package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// snapshot is the immutable routing of every service. Nothing in it changes after Apply stores it,
// except the runtime state it points to (endpoints, counters, series), which is safe for concurrent use.
type snapshot struct {
	services []*service // most specific match first
}

type service struct {
	name     string
	hosts    []string // lower case; empty: any host
	prefix   string
	cfg      config.Service // as given, for status
	versions []*version
	stable   *version // gets the share of a version that has no healthy endpoint
	split    *split
	sticky   *stickyKey // nil: no stickiness
	routes   []route
	mirror   *mirrorPlan // nil: no mirroring
	passive  passivePolicy
	llm      *llmService // nil: not an LLM service
}

type route struct {
	m matcher
	v *version
}

type version struct {
	service, name, key string
	index              int
	endpoints          []*endpoint
	state              *versionState
	primary            *metrics.Series
	mirror             *metrics.Series // nil unless the version is its service's mirror
	routed             *metrics.Series // requests placed here by a route; nil when no route targets it

	fallbacks, retries, ejections lazyCounter
	mirrorSkipped                 []prometheus.Counter // by mirrorSkipReasons; nil unless the version is the mirror

	llm llmVersion // what this version changes in LLM requests
}

// find returns the service a request belongs to, or nil.
func (s *snapshot) find(r *http.Request) *service {
	host := ""
	for _, svc := range s.services {
		if len(svc.hosts) > 0 {
			if host == "" {
				host = requestHost(r)
			}
			if !svc.matchHost(host) {
				continue
			}
		}
		if strings.HasPrefix(r.URL.Path, svc.prefix) {
			return svc
		}
	}
	return nil
}

func requestHost(r *http.Request) string {
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return h
}

func (s *service) matchHost(host string) bool {
	for _, h := range s.hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// choose picks the version of a request: the first route that matches, else the sticky key's bucket,
// else the next bucket of the split's sequence. A new sticky key, when the service sets one, is written
// to w as a cookie.
func (s *service) choose(w http.ResponseWriter, r *http.Request) *version {
	if v := s.routed(r); v != nil {
		return v
	}
	v, _, _ := s.placed(w, r)
	return v
}

// routed is the version of the first route that matches, or nil.
func (s *service) routed(r *http.Request) *version {
	for i := range s.routes {
		if s.routes[i].m.match(r) {
			return s.routes[i].v
		}
	}
	return nil
}

// placed is the version a request gets by weight: its sticky key's bucket, or the next bucket of
// the split's sequence; the cluster of its sticky key (1..metrics.NumUnits; 0: none); and the key.
func (s *service) placed(w http.ResponseWriter, r *http.Request) (*version, uint8, string) {
	if s.sticky != nil {
		key := s.sticky.key(r)
		if key == "" && s.sticky.setCookie != "" {
			key = newStickyValue()
			http.SetCookie(w, &http.Cookie{Name: s.sticky.setCookie, Value: key, Path: "/",
				MaxAge: 365 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		if key != "" {
			b := bucketOf(s.name, key)
			return s.versions[s.split.version(b)], uint8(1 + b%metrics.NumUnits), key
		}
	}
	return s.versions[s.split.version(s.split.anonymous())], 0, ""
}

func newStickyValue() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
