package config

// Strategy says how a service moves from its stable version to its release. Exactly one of
// canary, blueGreen, rolling and recreate is set, or shadow alone, or shadow followed by canary
// steps. A managed service (one with a release) without a strategy uses DefaultStrategy.
type Strategy struct {
	Canary    *CanaryStrategy    `yaml:"canary" json:"canary,omitempty"`
	BlueGreen *BlueGreenStrategy `yaml:"blueGreen" json:"blueGreen,omitempty"`
	Rolling   *RollingStrategy   `yaml:"rolling" json:"rolling,omitempty"`
	Recreate  *RecreateStrategy  `yaml:"recreate" json:"recreate,omitempty"`
	Shadow    *ShadowStrategy    `yaml:"shadow" json:"shadow,omitempty"`
	// ScaleDownDelay keeps the old stable version routable (health-checked, connections warm) after
	// a rollout completes, so that `aviary rollout undo` in that window is an instant switch back.
	ScaleDownDelay Duration `yaml:"scaleDownDelay" json:"scaleDownDelay,omitempty"`
	// AbortOnUnhealthy aborts a rollout whose new version has had no available endpoint for this
	// long while it should be taking traffic. Zero uses the default; a negative value never aborts.
	AbortOnUnhealthy Duration `yaml:"abortOnUnhealthy" json:"abortOnUnhealthy,omitempty"`
	// ProgressDeadline aborts a rollout that waits this long for the new version's endpoints to
	// become ready (recreate, rolling) without progress.
	ProgressDeadline Duration `yaml:"progressDeadline" json:"progressDeadline,omitempty"`
	// DefaultAnalysis runs the default analysis template in the background of every rollout that
	// has no background analysis of its own; false turns it off.
	DefaultAnalysis *bool `yaml:"defaultAnalysis" json:"defaultAnalysis,omitempty"`
}

// CanaryStrategy walks the new version through steps, then makes it stable at 100%.
type CanaryStrategy struct {
	Steps []Step `yaml:"steps" json:"steps,omitempty"`
	// Analysis runs in the background from a chosen step to the end of the rollout; a failure aborts.
	Analysis *BackgroundAnalysis `yaml:"analysis" json:"analysis,omitempty"`
}

// Step is one step of a canary. Exactly one field is set.
type Step struct {
	SetWeight      *int             `yaml:"setWeight" json:"setWeight,omitempty"`
	Pause          *PauseStep       `yaml:"pause" json:"pause,omitempty"`
	SetHeaderRoute *HeaderRouteStep `yaml:"setHeaderRoute" json:"setHeaderRoute,omitempty"`
	SetMirror      *MirrorStep      `yaml:"setMirror" json:"setMirror,omitempty"`
	Analysis       *AnalysisStep    `yaml:"analysis" json:"analysis,omitempty"`
	Gate           *GateStep        `yaml:"gate" json:"gate,omitempty"`
}

// PauseStep waits for its duration, or, without one, until a person promotes.
type PauseStep struct {
	Duration Duration `yaml:"duration" json:"duration,omitempty"`
}

// HeaderRouteStep sends requests that match to the new version, whatever its weight (a segment:
// employees, a region, a tenant). Without a match it removes the segment route.
type HeaderRouteStep struct {
	Match *Match `yaml:"match" json:"match,omitempty"`
}

// MirrorStep copies a share of traffic to the new version, whose responses are discarded. Zero
// percent stops mirroring.
type MirrorStep struct {
	Percent float64 `yaml:"percent" json:"percent"`
}

// AnalysisStep waits for a verdict of the named analysis templates on the new version against
// the stable one: a pass goes on, a failure aborts the rollout.
type AnalysisStep struct {
	Templates []string `yaml:"templates" json:"templates,omitempty"`
	// Duration bounds the step: with no verdict by then, the rollout pauses for a person.
	Duration Duration `yaml:"duration" json:"duration,omitempty"`
}

// BackgroundAnalysis is an analysis that runs from StartingStep to the end of the rollout.
type BackgroundAnalysis struct {
	Templates    []string `yaml:"templates" json:"templates,omitempty"`
	StartingStep int      `yaml:"startingStep" json:"startingStep,omitempty"`
}

// GateStep waits until an HTTP endpoint says yes: a 2xx answer passes, 409 or 423 means "not yet",
// anything else counts as a failed check; FailureLimit failures in a row abort the rollout.
type GateStep struct {
	URL          string   `yaml:"url" json:"url,omitempty"`
	Interval     Duration `yaml:"interval" json:"interval,omitempty"`
	Timeout      Duration `yaml:"timeout" json:"timeout,omitempty"`
	FailureLimit int      `yaml:"failureLimit" json:"failureLimit,omitempty"`
}

// BlueGreenStrategy gives the new version only preview traffic (requests that match PreviewRoute),
// then switches all traffic at once; aborting after the switch switches back at once.
type BlueGreenStrategy struct {
	PreviewRoute *Match `yaml:"previewRoute" json:"previewRoute,omitempty"`
	// AutoPromotionSeconds switches after this long in preview; zero waits for `rollout promote`.
	AutoPromotionSeconds  int           `yaml:"autoPromotionSeconds" json:"autoPromotionSeconds,omitempty"`
	PrePromotionAnalysis  *AnalysisStep `yaml:"prePromotionAnalysis" json:"prePromotionAnalysis,omitempty"`
	PostPromotionAnalysis *AnalysisStep `yaml:"postPromotionAnalysis" json:"postPromotionAnalysis,omitempty"`
	// ScaleDownDelay: see Strategy.ScaleDownDelay; set here as users of other tools expect.
	ScaleDownDelay Duration `yaml:"scaleDownDelay" json:"scaleDownDelay,omitempty"`
}

// RollingStrategy moves endpoint by endpoint: each new endpoint that is ready (has passed its
// health checks) takes the place of an old one, and the new version's share follows its ready
// endpoints.
type RollingStrategy struct {
	// MaxUnavailable is how many endpoints may be in transition at once.
	MaxUnavailable int `yaml:"maxUnavailable" json:"maxUnavailable,omitempty"`
}

// RecreateStrategy switches all traffic once the new version is ready.
type RecreateStrategy struct{}

// ShadowStrategy mirrors a share of traffic to the new version for a duration (responses
// discarded), then switches to it, or goes on into canary steps when canary is set too.
type ShadowStrategy struct {
	Percent  float64       `yaml:"percent" json:"percent,omitempty"`
	Duration Duration      `yaml:"duration" json:"duration,omitempty"`
	Analysis *AnalysisStep `yaml:"analysis" json:"analysis,omitempty"`
}

// Storage is where Aviary keeps rollout state, specs applied through the API, history and events.
type Storage struct {
	// Path of the store file; by default aviary.db beside the config file.
	Path string `yaml:"path" json:"path,omitempty"`
	// MaxEvents bounds the events kept; the oldest go first.
	MaxEvents int `yaml:"maxEvents" json:"maxEvents,omitempty"`
}

// Notifications sends events to webhooks.
type Notifications struct {
	Webhooks []Webhook `yaml:"webhooks" json:"webhooks,omitempty"`
}

// Webhook is a JSON POST of each chosen event, retried with backoff, signed with HMAC-SHA256 of
// the body (header X-Aviary-Signature: sha256=HEX) when Secret is set.
type Webhook struct {
	URL string `yaml:"url" json:"url,omitempty"`
	// Events are the event kinds to send; empty sends every kind.
	Events []EventKind `yaml:"events" json:"events,omitempty"`
	Secret string      `yaml:"secret" json:"-"`
	// Retries after the first attempt, with exponential backoff from one second. Left out, it is
	// DefaultWebhookRetries; 0 makes one attempt (a pointer, so that a written 0 is not the default).
	Retries *int     `yaml:"retries" json:"retries,omitempty"`
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}
