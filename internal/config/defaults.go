package config

import (
	"path/filepath"
	"time"
)

// The defaults, in one place. A zero value in the file means "use the default".
const (
	DefaultGatewayListen      = "127.0.0.1:8080"
	DefaultAdminListen        = "127.0.0.1:9090"
	DefaultMaxMirrorsInFlight = 256
	DefaultMaxConnections     = 10000
	DefaultMinBodyRate        = 1024 // bytes per second
	DefaultMirrorMaxBodyBytes = 1 << 20
	DefaultHealthPath         = "/healthz"
	DefaultPassiveFailures    = 5
	DefaultMaxEvents          = 10000
	DefaultStoreFile          = "aviary.db" // beside the config file
	DefaultWebhookRetries     = 3
	DefaultGateFailureLimit   = 3
)

// Rollout defaults.
var (
	DefaultScaleDownDelay   = D(10 * time.Minute)
	DefaultAbortOnUnhealthy = D(10 * time.Second)
	DefaultProgressDeadline = D(10 * time.Minute)
	DefaultGateInterval     = D(5 * time.Second)
	DefaultGateTimeout      = D(5 * time.Second)
	DefaultWebhookTimeout   = D(5 * time.Second)
	DefaultShadowPercent    = 100.0
)

// Analysis defaults.
var (
	DefaultAlpha   = 0.01
	DefaultMinimum = Minimum{Duration: D(30 * time.Second), Requests: 200}
	DefaultMaxWait = D(10 * time.Minute)
	DefaultMargin  = 1.2 // errors: a canary may fail 20% more often than stable
	// DefaultSlowdown is the latency metric's default margin: the canary's quantile (p99) may be
	// 10% slower than the stable's. It is judged as a count: the canary's requests slower than
	// 1.1 × the stable's p99 against the stable's requests slower than its p99, margin 1 — so it
	// means the same for any shape of tail (see bench/results/judge-hostile.md).
	DefaultSlowdown = 0.1
	// DefaultLatencyMargin is on the share of requests slower than the stable's quantile, for ttft
	// and interTokenLatency, and for latency when a margin is set without a slowdown: 1.8 lets
	// that share grow from 1% to 1.8%, about a 12% slowdown of a typical (lognormal, sigma 0.5)
	// latency distribution. Tighter margins roll back canaries whose endpoints are merely a little
	// different from the stable's (see bench/results/judge.md).
	DefaultLatencyMargin = 1.8
	// DefaultMeanMargin: tokens and cost per request may be 10% higher than the stable's.
	DefaultMeanMargin = 1.1
	// DefaultScoreMargin: evaluation and feedback scores may be 5% lower than the stable's.
	DefaultScoreMargin = 0.95
	// DefaultEffect is what a pass must rule out on errors: twice the stable's rate, or 1.5 points
	// above it, whichever is larger (at 0.5% errors: 2%). Ruling out a ratio alone takes
	// thousands of canary requests for rare events; see bench/results/judge-hostile.md.
	DefaultEffect = DetectableEffect{Ratio: 2, Points: 1.5}
	// DefaultLatencyEffect is what a pass must rule out on latency with a slowdown margin: the
	// canary's quantile 50% slower than the stable's (the margin, 10%, is what rolls back; between the
	// two a step may pass or roll back).
	DefaultLatencyEffect = DetectableEffect{Slowdown: 0.5}
	// DefaultShareEffect is what a pass must rule out on latency with a share margin (no slowdown):
	// three times the stable's share of slow requests, or three points above it.
	DefaultShareEffect      = DetectableEffect{Ratio: 3, Points: 3}
	DefaultQuantile         = 0.99
	DefaultMetricInterval   = D(30 * time.Second)
	DefaultConsecutiveError = 4
	DefaultProviderTimeout  = D(10 * time.Second)
	DefaultHistory          = 100
)

// DefaultTemplate is the analysis every rollout runs in the background unless told otherwise:
// canary against stable on error rate, and on its p99 and p90 at most 10% slower than the stable's,
// all judged by the sequential test, all able to roll back as soon as the evidence allows. The
// p90 catches a slowdown of every request sooner than the p99 can when the tail is heavy (ten
// times the requests to count).
func DefaultTemplate() AnalysisTemplate {
	t := AnalysisTemplate{Name: DefaultTemplateName, Metrics: []AnalysisMetric{
		{Name: "errors", Builtin: "errorRate", Critical: true},
		{Name: "latency", Builtin: "latency", Critical: true},
		{Name: "latency-p90", Builtin: "latency", Quantile: 0.9, Critical: true},
	}}
	t.applyDefaults()
	return t
}

// DefaultTemplateName names the default analysis.
const DefaultTemplateName = "default"

func (t *AnalysisTemplate) applyDefaults() {
	if t.Alpha == 0 {
		t.Alpha = DefaultAlpha
	}
	setDur(&t.Minimum.Duration, DefaultMinimum.Duration)
	setInt(&t.Minimum.Requests, DefaultMinimum.Requests)
	setDur(&t.MaxWait, DefaultMaxWait)
	setString(&t.OnInconclusive, "pause")
	for i := range t.Metrics {
		m := &t.Metrics[i]
		spec, builtin := m.Builtin.Spec()
		if spec.Slowdown && m.Margin == 0 && m.Slowdown == 0 {
			// The latency margin says what users mean: the canary's quantile at most this much
			// slower than the stable's, whatever the shape of the tail.
			m.Slowdown = DefaultSlowdown
		}
		if m.Margin == 0 {
			m.Margin = DefaultMargin // other providers' counters, and label rates
			if builtin && m.Label == "" {
				m.Margin = spec.Margin
			}
		}
		if spec.Effect != nil && m.DetectableEffect == nil {
			e := *spec.Effect
			if spec.Slowdown && m.Slowdown == 0 {
				e = DefaultShareEffect // a latency metric with a share margin
			}
			m.DetectableEffect = &e
		}
		if spec.Quantiled && m.Quantile == 0 {
			m.Quantile = DefaultQuantile
		}
		setDur(&m.Interval, DefaultMetricInterval)
		setInt(&m.ConsecutiveErrorLimit, DefaultConsecutiveError)
		if p := m.Prometheus; p != nil {
			*p = p.WithDefaults()
		}
		if w := m.Web; w != nil {
			*w = w.WithDefaults()
		}
	}
}

// WithDefaults is p with its unset fields filled, as a metric's prometheus settings get them.
func (p PrometheusMetric) WithDefaults() PrometheusMetric {
	setDur(&p.Timeout, DefaultProviderTimeout)
	return p
}

// WithDefaults is w with its unset fields filled, as a metric's web settings get them.
func (w WebMetric) WithDefaults() WebMetric {
	setDur(&w.Timeout, DefaultProviderTimeout)
	setString(&w.Method, "GET")
	return w
}

// Telemetry defaults.
var (
	DefaultOTLPInterval    = D(10 * time.Second)
	DefaultOTLPServiceName = "aviary"
)

// LLM defaults.
var (
	DefaultLLMMaxRequestBytes   int64 = 1 << 20
	DefaultFeedbackWindow             = D(time.Hour)
	DefaultFeedbackEntries            = 100000
	DefaultEvaluatorTimeout           = D(30 * time.Second)
	DefaultEvaluatorMaxBytes          = 16 << 10
	MaxEvaluatorBytes                 = 16 << 20 // the most llm.evaluator.maxBytes may be
	DefaultEvaluatorMaxInFlight       = 16
)

// WithDefaults is e with its unset fields filled, as a service's llm.evaluator gets them.
func (e Evaluator) WithDefaults() Evaluator {
	setDur(&e.Timeout, DefaultEvaluatorTimeout)
	setInt(&e.MaxBytes, DefaultEvaluatorMaxBytes)
	setInt(&e.MaxInFlight, DefaultEvaluatorMaxInFlight)
	if e.Scores == nil {
		e.Scores = DefaultEvaluatorScores()
	}
	return e
}

// DefaultStrategy is the strategy of a managed service that names none: a canary at 10% for half a
// minute, then 50% until the default analysis passes (a regression past its detectable effects
// ruled out), then 100%. Without a pass it never completes: after maxWait the step is
// inconclusive and the rollout waits for a person.
func DefaultStrategy() *Strategy {
	ten, fifty := 10, 50
	return &Strategy{Canary: &CanaryStrategy{Steps: []Step{
		{SetWeight: &ten}, {Pause: &PauseStep{Duration: D(30 * time.Second)}},
		{SetWeight: &fifty}, {Analysis: &AnalysisStep{Templates: []string{DefaultTemplateName}}},
	}}}
}

// DefaultTimeouts are generous towards upstreams (an LLM may think for a while before its first byte)
// and strict towards clients that dawdle over their headers.
var DefaultTimeouts = Timeouts{
	Connect:        D(5 * time.Second),
	ResponseHeader: D(5 * time.Minute),
	UpstreamIdle:   D(90 * time.Second),
	ReadHeader:     D(10 * time.Second),
	ClientIdle:     D(2 * time.Minute),
	BodyIdle:       D(time.Minute),
	BodyGrace:      D(10 * time.Second),
	Shutdown:       D(30 * time.Second),
}

// DefaultHealthCheck fills the unset fields of a service's healthCheck.
var DefaultHealthCheck = HealthCheck{
	Path:               DefaultHealthPath,
	Interval:           D(2 * time.Second),
	Timeout:            D(time.Second),
	HealthyThreshold:   2,
	UnhealthyThreshold: 3,
}

// DefaultPassiveHealth fills the unset fields of a service's passiveHealth.
var DefaultPassiveHealth = PassiveHealth{
	ConsecutiveFailures: DefaultPassiveFailures,
	BaseEjection:        D(5 * time.Second),
	MaxEjection:         D(2 * time.Minute),
}

func (c *Config) applyDefaults() {
	setString(&c.Gateway.Listen, DefaultGatewayListen)
	setString(&c.Admin.Listen, DefaultAdminListen)
	setInt(&c.Gateway.MaxMirrorsInFlight, DefaultMaxMirrorsInFlight)
	setInt(&c.Gateway.MaxConnections, DefaultMaxConnections)
	setInt(&c.Gateway.MinBodyRate, DefaultMinBodyRate)
	t, d := &c.Gateway.Timeouts, DefaultTimeouts
	setDur(&t.Connect, d.Connect)
	setDur(&t.ResponseHeader, d.ResponseHeader)
	setDur(&t.UpstreamIdle, d.UpstreamIdle)
	setDur(&t.ReadHeader, d.ReadHeader)
	setDur(&t.ClientIdle, d.ClientIdle)
	setDur(&t.BodyIdle, d.BodyIdle)
	setDur(&t.BodyGrace, d.BodyGrace)
	setDur(&t.Shutdown, d.Shutdown)
	setInt(&c.Storage.MaxEvents, DefaultMaxEvents)
	c.Flags.applyDefaults()
	setInt(&c.Analysis.History, DefaultHistory)
	setDur(&c.LLM.FeedbackWindow, DefaultFeedbackWindow)
	if o := c.Telemetry.OTLP; o != nil {
		setDur(&o.Interval, DefaultOTLPInterval)
		setString(&o.ServiceName, DefaultOTLPServiceName)
	}
	setInt(&c.LLM.FeedbackEntries, DefaultFeedbackEntries)
	if c.LLM.FeedbackScores == nil {
		c.LLM.FeedbackScores = DefaultFeedbackScores()
	}
	for i := range c.Analysis.Templates {
		c.Analysis.Templates[i].applyDefaults()
	}
	for i := range c.Notifications.Webhooks {
		w := &c.Notifications.Webhooks[i]
		if w.Retries == nil {
			w.Retries = new(DefaultWebhookRetries)
		}
		setDur(&w.Timeout, DefaultWebhookTimeout)
	}
	for i := range c.Services {
		c.Services[i].applyDefaults()
	}
	for i := range c.Experiments {
		c.Experiments[i].ApplyDefaults()
	}
}

// StorePath is storage.path, or DefaultStoreFile beside the config file at configPath (the
// default depends on where the file is, which Parse does not know).
func (c *Config) StorePath(configPath string) string {
	if c.Storage.Path != "" {
		return c.Storage.Path
	}
	return filepath.Join(filepath.Dir(configPath), DefaultStoreFile)
}

// ShadowMirror is the mirror that a shadow step makes of the service's traffic to version, at
// percent: it copies bodies up to the bound of the service's own mirror, or the default one.
func (s *Service) ShadowMirror(version string, percent float64) *Mirror {
	m := &Mirror{Version: version, Percent: percent, MaxBodyBytes: DefaultMirrorMaxBodyBytes}
	if s.Mirror != nil {
		m.MaxBodyBytes = s.Mirror.MaxBodyBytes
	}
	return m
}

// ApplyDefaults fills the unset fields of a service that changed outside a config file, as Parse
// does for a file's: a release set through the API gets the default strategy, with its timings.
// Fields already set are kept, so it may be applied again.
func (s *Service) ApplyDefaults() { s.applyDefaults() }

func (s *Service) applyDefaults() {
	if s.Match.PathPrefix == "" {
		s.Match.PathPrefix = "/"
	}
	if l := s.LLM; l != nil {
		setString(&l.API, "auto")
		if l.MaxRequestBytes == 0 {
			l.MaxRequestBytes = DefaultLLMMaxRequestBytes
		}
		if e := l.Evaluator; e != nil {
			*e = e.WithDefaults()
		}
	}
	for i := range s.Versions {
		if vl := s.Versions[i].LLM; vl != nil {
			setString(&vl.SystemPromptMode, "replace")
			if vl.Oversized == "" {
				vl.Oversized = OversizedForward
			}
		}
	}
	if s.Release != "" {
		if s.Strategy == nil {
			s.Strategy = DefaultStrategy()
		}
		s.Strategy.applyDefaults()
	} else if len(s.Traffic) == 0 && len(s.Versions) > 0 {
		s.Traffic = []Traffic{{Version: s.Versions[0].Name, Weight: 100}}
	}
	if m := s.Mirror; m != nil && m.MaxBodyBytes == 0 {
		m.MaxBodyBytes = DefaultMirrorMaxBodyBytes
	}
	for i := range s.Flags {
		if f := &s.Flags[i]; f.Release != "" {
			if f.Strategy == nil {
				f.Strategy = DefaultStrategy()
			}
			f.Strategy.applyDefaults()
		}
	}
	if h := s.HealthCheck; h != nil {
		d := DefaultHealthCheck
		setString(&h.Path, d.Path)
		setDur(&h.Interval, d.Interval)
		setDur(&h.Timeout, d.Timeout)
		setInt(&h.HealthyThreshold, d.HealthyThreshold)
		setInt(&h.UnhealthyThreshold, d.UnhealthyThreshold)
	}
	p, d := &s.Passive, DefaultPassiveHealth
	setInt(&p.ConsecutiveFailures, d.ConsecutiveFailures)
	setDur(&p.BaseEjection, d.BaseEjection)
	setDur(&p.MaxEjection, d.MaxEjection)
}

func (st *Strategy) applyDefaults() {
	if bg := st.BlueGreen; bg != nil {
		setDur(&st.ScaleDownDelay, bg.ScaleDownDelay)
	}
	// For these a written zero means the default too (the rollout core reads them as they are).
	zeroDur(&st.ScaleDownDelay, DefaultScaleDownDelay)
	zeroDur(&st.AbortOnUnhealthy, DefaultAbortOnUnhealthy)
	zeroDur(&st.ProgressDeadline, DefaultProgressDeadline)
	if sh := st.Shadow; sh != nil && sh.Percent == 0 {
		sh.Percent = DefaultShadowPercent
	}
	if c := st.Canary; c != nil {
		for i := range c.Steps {
			if g := c.Steps[i].Gate; g != nil {
				setDur(&g.Interval, DefaultGateInterval)
				setDur(&g.Timeout, DefaultGateTimeout)
				setInt(&g.FailureLimit, DefaultGateFailureLimit)
			}
		}
	}
	if r := st.Rolling; r != nil {
		setInt(&r.MaxUnavailable, 1)
	}
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

// zeroDur fills a duration that is zero, written or left out; one written but unparsable keeps its
// error.
func zeroDur(p *Duration, def Duration) {
	if p.Duration == 0 && p.err == nil {
		*p = def
	}
}

// setDur fills a duration left out of the file; one written but unparsable keeps its error.
func setDur(p *Duration, def Duration) {
	if p.Duration == 0 && p.err == nil && p.raw == "" {
		*p = def
	}
}
