package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Rollout releases the pod template of a Deployment by a strategy: Aviary runs the stable and the
// new version as ReplicaSets made from the Deployment's template, shifts traffic between them
// through a Gateway API HTTPRoute, judges the new one and promotes it or rolls it back.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=avr,categories=aviary
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Stable",type=string,JSONPath=`.status.stableVersion`
// +kubebuilder:printcolumn:name="Canary",type=string,JSONPath=`.status.canaryVersion`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStepIndex`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutSpec   `json:"spec"`
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// RolloutSpec says what to release and how.
type RolloutSpec struct {
	// WorkloadRef names the Deployment (in the Rollout's namespace) whose pod template is released.
	// The Deployment stays the user's: Aviary reads its template and never edits its spec, except
	// to scale it to zero when scaleDown says so.
	WorkloadRef WorkloadRef `json:"workloadRef"`
	// Replicas of the stable version; by default the Deployment's replicas, or, when the
	// Deployment is at 0 (it only holds the template), the stable's current count, at least 1.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
	// StableService and CanaryService are the Services (in the Rollout's namespace) that select the
	// stable and the new version's pods: Aviary adds the pod-template-hash to their selectors.
	// +kubebuilder:validation:MinLength=1
	StableService string `json:"stableService"`
	// +optional
	CanaryService string `json:"canaryService,omitempty"`
	// TrafficRouting shifts traffic by weight through a router. Without one, the canary's weight is
	// approximated by replica counts behind the stable Service, and the status says so.
	// +optional
	TrafficRouting *TrafficRouting `json:"trafficRouting,omitempty"`
	// Gateway is how Aviary's gateway fleet serves the Rollout (trafficRouting.aviary only): the
	// fields of a standalone service of the same names, checked the same way — match (pathPrefix,
	// hosts), stickiness, healthCheck, passiveHealth and llm. See docs/config.md.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Gateway *apiextensionsv1.JSON `json:"gateway,omitempty"`
	// Strategy is a standalone service's strategy: canary, blueGreen or shadow (with canary steps).
	Strategy Strategy `json:"strategy"`
	// Analysis holds the templates that analysis steps and background analysis name. Their
	// metrics are prometheus or web metrics, and builtin ones with trafficRouting.aviary (the
	// gateway fleet measures them).
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`
	// RevisionHistoryLimit is how many old ReplicaSets (scaled to zero) are kept for undo.
	// +kubebuilder:validation:Minimum=0
	// +optional
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
}

// WorkloadRef points at the Deployment whose template is released.
type WorkloadRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// ScaleDown: never (the default: the Deployment is the user's to scale, usually to 0), or
	// onsuccess (Aviary scales it to 0 once the Rollout's stable ReplicaSet is available).
	// +kubebuilder:validation:Enum=never;onsuccess
	// +optional
	ScaleDown string `json:"scaleDown,omitempty"`
}

// TrafficRouting names the traffic router: exactly one of gatewayAPI and aviary.
//
// +kubebuilder:validation:XValidation:rule="has(self.gatewayAPI) != has(self.aviary)",message="set exactly one of gatewayAPI and aviary"
type TrafficRouting struct {
	// GatewayAPI: weights on an HTTPRoute's backendRefs, header matches for segment routes, and
	// the RequestMirror filter for shadow traffic. Any conformant gateway serves it.
	// +optional
	GatewayAPI *GatewayAPIRouting `json:"gatewayAPI,omitempty"`
	// Aviary: Aviary's own gateway fleet (aviary serve --source kubernetes --gateway NAME) serves
	// the Rollout from its status (status.routing) and the EndpointSlices of its Services.
	// +optional
	Aviary *AviaryRouting `json:"aviary,omitempty"`
}

// AviaryRouting names the gateway fleet that serves a Rollout.
type AviaryRouting struct {
	// Gateway is the fleet's name: the --gateway of its aviary serve replicas.
	// +kubebuilder:validation:MinLength=1
	Gateway string `json:"gateway"`
}

// GatewayAPIRouting names the HTTPRoute whose rules point at the stable Service.
type GatewayAPIRouting struct {
	// +kubebuilder:validation:MinLength=1
	HTTPRoute string `json:"httpRoute"`
}

// Strategy: the same schema as a standalone service's `strategy`.
type Strategy struct {
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty"`
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty"`
	// +optional
	Shadow *ShadowStrategy `json:"shadow,omitempty"`
	// ScaleDownDelay keeps the old stable ReplicaSet scaled up after a promotion, for an instant undo.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
	// AbortOnUnhealthy aborts a rollout whose new version has had no ready pod this long while it
	// should take traffic.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	AbortOnUnhealthy *metav1.Duration `json:"abortOnUnhealthy,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`
	// DefaultAnalysis runs the default analysis (canary against stable on Aviary's builtin metrics)
	// in the background of every rollout: true unless set false. It needs the measurements of
	// Aviary's gateway fleet, so it applies with trafficRouting.aviary only.
	// +optional
	DefaultAnalysis *bool `json:"defaultAnalysis,omitempty"`
}

// CanaryStrategy walks the new version through steps, then makes it stable.
type CanaryStrategy struct {
	// +kubebuilder:validation:MinItems=1
	Steps []CanaryStep `json:"steps"`
	// Analysis runs in the background from startingStep to the end of the rollout.
	// +optional
	Analysis *BackgroundAnalysis `json:"analysis,omitempty"`
}

// CanaryStep is one step; exactly one field is set.
//
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type CanaryStep struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	SetWeight *int32 `json:"setWeight,omitempty"`
	// +optional
	Pause *PauseStep `json:"pause,omitempty"`
	// +optional
	SetHeaderRoute *HeaderRouteStep `json:"setHeaderRoute,omitempty"`
	// +optional
	SetMirror *MirrorStep `json:"setMirror,omitempty"`
	// +optional
	Analysis *AnalysisStep `json:"analysis,omitempty"`
	// +optional
	Gate *GateStep `json:"gate,omitempty"`
}

// PauseStep waits for its duration, or, without one, until a person promotes.
type PauseStep struct {
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// HeaderRouteStep sends requests that match to the new version whatever its weight.
type HeaderRouteStep struct {
	// +optional
	Match *Match `json:"match,omitempty"`
}

// Match picks requests by a header, a cookie, a query parameter or the path.
type Match struct {
	// +optional
	Header *KeyMatch `json:"header,omitempty"`
	// +optional
	Cookie *KeyMatch `json:"cookie,omitempty"`
	// +optional
	Query *KeyMatch `json:"query,omitempty"`
	// +optional
	Path *StringMatch `json:"path,omitempty"`
}

// StringMatch compares exactly (value), by prefix, or by a regular expression; one is set.
type StringMatch struct {
	// +optional
	Value string `json:"value,omitempty"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	Regex string `json:"regex,omitempty"`
}

// KeyMatch matches the value of a named header, cookie or query parameter.
type KeyMatch struct {
	// +kubebuilder:validation:MinLength=1
	Name        string `json:"name"`
	StringMatch `json:",inline"`
}

// MirrorStep copies a percentage of traffic to the new version; 0 stops mirroring.
type MirrorStep struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`
}

// AnalysisStep waits for a verdict of the named templates.
type AnalysisStep struct {
	// +kubebuilder:validation:MinItems=1
	Templates []string `json:"templates"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// BackgroundAnalysis runs from StartingStep to the end of the rollout; a failure aborts.
type BackgroundAnalysis struct {
	// +kubebuilder:validation:MinItems=1
	Templates []string `json:"templates"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	StartingStep int32 `json:"startingStep,omitempty"`
}

// GateStep waits until an HTTP endpoint answers 2xx.
type GateStep struct {
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Interval *metav1.Duration `json:"interval,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// +optional
	FailureLimit int32 `json:"failureLimit,omitempty"`
}

// BlueGreenStrategy previews the new version to matching requests, then switches all at once.
type BlueGreenStrategy struct {
	// +optional
	PreviewRoute *Match `json:"previewRoute,omitempty"`
	// +optional
	AutoPromotionSeconds int32 `json:"autoPromotionSeconds,omitempty"`
	// +optional
	PrePromotionAnalysis *AnalysisStep `json:"prePromotionAnalysis,omitempty"`
	// +optional
	PostPromotionAnalysis *AnalysisStep `json:"postPromotionAnalysis,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
}

// ShadowStrategy mirrors a percentage of traffic to the new version for a duration.
type ShadowStrategy struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Duration *metav1.Duration `json:"duration,omitempty"`
	// +optional
	Analysis *AnalysisStep `json:"analysis,omitempty"`
}

// Analysis holds analysis templates.
type Analysis struct {
	// +kubebuilder:validation:MinItems=1
	Templates []AnalysisTemplate `json:"templates"`
}

// AnalysisTemplate is a named set of metrics judged together.
type AnalysisTemplate struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	Minimum *Minimum `json:"minimum,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	MaxWait *metav1.Duration `json:"maxWait,omitempty"`
	// +kubebuilder:validation:Enum=pause;abort
	// +optional
	OnInconclusive string `json:"onInconclusive,omitempty"`
	// +kubebuilder:validation:MinItems=1
	Metrics []AnalysisMetric `json:"metrics"`
}

// Minimum is the exposure a canary needs before an analysis may pass it.
type Minimum struct {
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Duration *metav1.Duration `json:"duration,omitempty"`
	// Requests of the canary, as its comparative metrics (prometheus requests and errors) count
	// them; by default 200 when the template has such a metric, else none.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Requests *int32 `json:"requests,omitempty"`
}

// AnalysisMetric is either a comparison (prometheus requests and errors counters, judged canary
// against baseline by the sequential test, within margin) or a threshold metric (measured every
// interval, each measurement judged by the success and failure conditions, expressions over
// `result`).
type AnalysisMetric struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Builtin is one of Aviary's own measurements (errorRate, latency, the LLM metrics: see
	// docs/analysis.md), judged canary against stable; it needs trafficRouting.aviary, whose
	// gateway fleet measures it.
	// +optional
	Builtin string `json:"builtin,omitempty"`
	// Quantile (latency): the stable's quantile that bounds "slow" (default 0.99).
	// +optional
	Quantile float64 `json:"quantile,omitempty"`
	// Slowdown (latency): how much slower than the stable's quantile the canary's may be (0.1: 10%).
	// +optional
	Slowdown float64 `json:"slowdown,omitempty"`
	// DetectableEffect is the regression a pass rules out.
	// +optional
	DetectableEffect *DetectableEffect `json:"detectableEffect,omitempty"`
	// +optional
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
	// +optional
	Web *WebMetric `json:"web,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Interval *metav1.Duration `json:"interval,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	Count int32 `json:"count,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	InitialDelay *metav1.Duration `json:"initialDelay,omitempty"`
	// +optional
	SuccessCondition string `json:"successCondition,omitempty"`
	// +optional
	FailureCondition string `json:"failureCondition,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	FailureLimit int32 `json:"failureLimit,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	ConsecutiveErrorLimit int32 `json:"consecutiveErrorLimit,omitempty"`
	// Margin is the tolerated ratio of the canary's error rate to the baseline's (default 1.2).
	// +kubebuilder:validation:Minimum=1
	// +optional
	Margin float64 `json:"margin,omitempty"`
	// Critical comparisons roll back the moment the evidence allows, before the minimum exposure.
	// +optional
	Critical bool `json:"critical,omitempty"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// DetectableEffect is the regression a passing builtin metric rules out: a ratio of the canary's
// rate to the stable's, a difference in percentage points, or (latency) a slowdown.
type DetectableEffect struct {
	// +optional
	Ratio float64 `json:"ratio,omitempty"`
	// +optional
	Points float64 `json:"points,omitempty"`
	// +optional
	Slowdown float64 `json:"slowdown,omitempty"`
}

// PrometheusMetric queries a Prometheus HTTP API. Queries may use {{service}} (the Rollout's
// name), {{canary}} and {{stable}} (pod-template-hashes: the values of the pods'
// aviary.dev/pod-template-hash label) and {{version}} (the version being measured).
type PrometheusMetric struct {
	// +kubebuilder:validation:MinLength=1
	Address string `json:"address"`
	// Query is a threshold metric's query: its result is judged by the conditions.
	// +optional
	Query string `json:"query,omitempty"`
	// Requests and Errors make a comparison: each a cumulative counter, asked for the canary and
	// the stable in turn through {{version}}, e.g. sum(http_requests_total{pod_template_hash="{{version}}"}).
	// +optional
	Requests string `json:"requests,omitempty"`
	// +optional
	Errors string `json:"errors,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// WebMetric reads a JSON endpoint; JSONPath picks the result.
type WebMetric struct {
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// +optional
	Method string `json:"method,omitempty"`
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// +optional
	Body string `json:"body,omitempty"`
	// +optional
	JSONPath string `json:"jsonPath,omitempty"`
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// RolloutStatus is the contract `aviary rollout status` shows, plus Kubernetes conditions and the
// controller core's state.
type RolloutStatus struct {
	// ObservedGeneration is the spec generation the status reflects.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase: Healthy, Progressing, Paused or Degraded.
	Phase string `json:"phase,omitempty"`
	// StableVersion and CanaryVersion are pod-template-hashes; the revisions count templates.
	StableVersion  string `json:"stableVersion,omitempty"`
	StableRevision int64  `json:"stableRevision,omitempty"`
	CanaryVersion  string `json:"canaryVersion,omitempty"`
	CanaryRevision int64  `json:"canaryRevision,omitempty"`
	// ReleaseVersion is the version of the Deployment's template now.
	ReleaseVersion   string `json:"releaseVersion,omitempty"`
	CanaryWeight     int32  `json:"canaryWeight"`
	CurrentStepIndex int32  `json:"currentStepIndex"`
	StepCount        int32  `json:"stepCount,omitempty"`
	Message          string `json:"message,omitempty"`
	// Traffic says how the weight is served: by the HTTPRoute, or approximated by replicas.
	Traffic string `json:"traffic,omitempty"`
	// Routing is the traffic Aviary's gateway fleet serves (trafficRouting.aviary only): the
	// replicas read it, and send the stable version to stableService's ready endpoints and the
	// canary to canaryService's.
	// +optional
	Routing *RoutingStatus `json:"routing,omitempty"`
	// PauseReasons say why a Paused rollout waits.
	PauseReasons []string `json:"pauseReasons,omitempty"`
	// Analysis is the evidence of the checks of the rollout in flight (or of the last one).
	Analysis []CheckStatus `json:"analysis,omitempty"`
	// Fleet is how much of Aviary's gateway fleet the judge read at its last look
	// (trafficRouting.aviary only): its builtin metrics are the sum of the replicas that answered.
	// +optional
	Fleet *FleetStatus `json:"fleet,omitempty"`
	// LastCommand is the last command (promote, abort, ...) the controller took from the
	// aviary.dev/command annotation, and what came of it.
	LastCommand *CommandStatus `json:"lastCommand,omitempty"`
	// Conditions: Available, Progressing, Paused, Degraded, SpecValid.
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// State is the controller core's whole state (the standalone store's record); a restarted
	// controller resumes from it.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	State *apiextensionsv1.JSON `json:"state,omitempty"`
}

// RoutingStatus is what a gateway replica serves: the versions (pod-template-hashes), the
// canary's weight in percent, its segment route and the share mirrored to it. It is the plan the
// controller serves, which may give a canary whose pods are still starting less than its step.
type RoutingStatus struct {
	Stable string `json:"stable"`
	// +optional
	Canary string `json:"canary,omitempty"`
	Weight int32  `json:"weight"`
	// +optional
	Route *Match `json:"route,omitempty"`
	// +optional
	Mirror float64 `json:"mirror,omitempty"`
}

// CheckStatus is one analysis or gate and its latest verdict.
type CheckStatus struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Templates []string `json:"templates,omitempty"`
	Phase     string   `json:"phase"`
	Message   string   `json:"message,omitempty"`
}

// CommandStatus records a command taken from the aviary.dev/command annotation.
type CommandStatus struct {
	ID    string      `json:"id"`
	Kind  string      `json:"kind"`
	By    string      `json:"by,omitempty"`
	At    metav1.Time `json:"at"`
	Error string      `json:"error,omitempty"`
}

// CommandAnnotation carries a command for the controller, as JSON:
// {"id":"…","kind":"promote|pause|resume|abort|retry|undo|restart","full":false,"by":"…"}.
const CommandAnnotation = "aviary.dev/command"

// FleetStatus is the coverage of the judge's reads of a gateway fleet: "3 of 4 gateway replicas".
type FleetStatus struct {
	// Replicas is the gateway replicas at the last look; Answered, those whose counts it took (a
	// replica that does not answer in time is left out, never read as zero).
	Replicas int32 `json:"replicas"`
	Answered int32 `json:"answered"`
	// Ended counts replica instances that restarted or went away after they had answered, and
	// Lost estimates the requests they served after their last answer: not measured.
	Ended int64 `json:"ended,omitempty"`
	Lost  int64 `json:"lost,omitempty"`
	// Message says it in words.
	Message string `json:"message,omitempty"`
}
