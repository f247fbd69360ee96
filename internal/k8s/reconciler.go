package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/notify"
	"aviary.dev/aviary/internal/rollout"
)

// Reconciler drives Rollouts: each reconcile reads the Rollout's status (the core's state), the
// Deployment's template and the ReplicaSets' readiness, runs the pure core (rollout.Do for a
// command, then rollout.Tick), writes the new state to the status, and only then makes the plan
// real: ReplicaSet replicas, Service selectors and HTTPRoute weights.
type Reconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder // nil: no Kubernetes Events
	Logger   *slog.Logger
	// Interval is how often a rollout in flight is looked at again (analysis, timed pauses).
	Interval time.Duration
	Now      func() time.Time
	// Fleet says how Rollouts routed through Aviary's gateway fleet are read (see fleet.go), and
	// APIReader lists the fleets' EndpointSlices uncached (nil: Client).
	Fleet     FleetOptions
	APIReader client.Reader

	fleetMu sync.Mutex
	fleets  map[string]*gatewayReader // by gateway name

	mu     sync.Mutex
	judges map[types.NamespacedName]*judges
	held   map[types.NamespacedName]string // deleted Rollouts whose handover is held or forced (see holdHandover)
	empty  *metrics.Registry
}

// judges are one Rollout's verdict sources: analysis runs and gate pollers live in memory, and
// are started again from the status's checks after a restart.
type judges struct {
	checks   rollout.Checks
	analyzer *analysis.Analyzer
	gates    *notify.Gates
	// good is the last spec that validated: while a newer one is refused, the rollout in flight
	// goes on under it (commands, analyses, rollbacks), and no new release starts.
	good *spec
	// fleet: the Rollout is routed through Aviary's gateway fleet, and judged on its replicas' sum.
	fleet *fleetJudge
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// judgesFor returns a Rollout's analyses and gates, starting them on first use. gateway names the
// gateway fleet that routes it ("": none): its analyses then read the fleet's sum, else (a Gateway
// API router, or none) only Prometheus and web metrics.
func (r *Reconciler) judgesFor(key types.NamespacedName, sp *spec, gateway string) *judges {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.judges == nil {
		r.judges = map[types.NamespacedName]*judges{}
		// Without Aviary's gateway fleet there is no builtin measurement: analyses read
		// Prometheus and web metrics.
		r.empty = metrics.NewRegistry(metrics.Options{})
	}
	j, ok := r.judges[key]
	if !ok {
		log := r.Logger.With("rollout", key.String())
		o := analysis.Options{Metrics: r.empty, Templates: sp.Templates, History: sp.History, Logger: log, Now: r.Now}
		var fj *fleetJudge
		if gateway != "" {
			fj = r.fleetFor(key, gateway)
			o.Metrics, o.LLM = fj.metrics, fj.llm
		}
		j = &judges{
			analyzer: analysis.New(o),
			gates:    notify.NewGates(notify.GateOptions{Logger: log, Now: r.Now}),
			fleet:    fj,
		}
		j.checks = rollout.Checks{Analysis: j.analyzer, Gates: j.gates}
		r.judges[key] = j
	}
	j.analyzer.SetTemplates(sp.Templates)
	return j
}

// goodSpec is the last spec of a Rollout that validated in this process (nil: none).
func (r *Reconciler) goodSpec(key types.NamespacedName) *spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j, ok := r.judges[key]; ok {
		return j.good
	}
	return nil
}

// hasJudges reports whether a Rollout's analyses and gates run in this process.
func (r *Reconciler) hasJudges(key types.NamespacedName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.judges[key]
	return ok
}

func (r *Reconciler) dropJudges(key types.NamespacedName) {
	r.mu.Lock()
	j, ok := r.judges[key]
	delete(r.judges, key)
	r.mu.Unlock()
	if ok {
		j.analyzer.Close()
		j.gates.Close()
		if j.fleet != nil {
			r.dropFleet(key, j.fleet)
		}
	}
}

// Close stops every analysis and gate poller.
func (r *Reconciler) Close() {
	r.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(r.judges))
	for k := range r.judges {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.dropJudges(k)
	}
	r.closeFleets()
}

// command is the JSON of the aviary.dev/command annotation.
type command struct {
	ID string `json:"id"`
	rollout.Command
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ro v1alpha1.Rollout
	err := r.Client.Get(ctx, req.NamespacedName, &ro)
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.dropJudges(req.NamespacedName) // its ReplicaSets go with it (owner references)
			r.forgetHold(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	var res ctrl.Result
	if !ro.DeletionTimestamp.IsZero() {
		if _, take, _ := pendingCommand(&ro); take || r.hasJudges(req.NamespacedName) {
			// A last look before the handover: a command that came with the deletion (an abort, an
			// undo) is taken, and a verdict its analyses reached since the last look is applied, so
			// that the handover knows what was turned away. The handover drops the analyses, so
			// this happens once.
			if _, cerr := r.reconcile(ctx, &ro, r.now()); cerr != nil {
				r.Logger.Warn("the command that came with the deletion was not taken; handing over as things are",
					"rollout", req.String(), "err", cerr)
			}
		}
		res, err = r.handOver(ctx, &ro)
	} else if added, ferr := r.keepUntilHandedOver(ctx, &ro); ferr != nil || added {
		res, err = ctrl.Result{RequeueAfter: 20 * time.Millisecond}, ferr // go on with the written object
	} else {
		res, err = r.reconcile(ctx, &ro, r.now())
	}
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: 20 * time.Millisecond}, nil // someone wrote first; read again
	}
	return res, err
}

func (r *Reconciler) reconcile(ctx context.Context, ro *v1alpha1.Rollout, now time.Time) (ctrl.Result, error) {
	var dep appsv1.Deployment
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.WorkloadRef.Name}, &dep); err != nil {
		if apierrors.IsNotFound(err) {
			msg := fmt.Sprintf("spec.workloadRef.name: Deployment %s not found in %s; create it or fix the name", ro.Spec.WorkloadRef.Name, ro.Namespace)
			return ctrl.Result{RequeueAfter: 10 * time.Second}, r.invalid(ctx, ro, msg)
		}
		return ctrl.Result{}, err
	}
	vs, err := r.versions(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	hash := versionOf(dep.Spec.Template, vs)
	if vs, err = r.ensureVersion(ctx, ro, &dep, hash, vs); err != nil {
		return ctrl.Result{}, err
	}
	st, known, err := stateOf(ro)
	if err != nil {
		return ctrl.Result{}, r.invalid(ctx, ro, err.Error())
	}
	if !known {
		st = rollout.State{Service: ro.Name, Phase: rollout.Healthy, Stable: hash, Message: "serving " + hash, UpdatedAt: now}
	}
	health := health(vs)
	release, waiting := releaseOf(st, known, hash, health)
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	sp, refused, err := r.specFor(ctx, ro, versionNames(st, vs), release)
	if err != nil && (sp == nil || !known) {
		return ctrl.Result{}, r.invalid(ctx, ro, err.Error())
	}
	if refused != "" {
		release = sp.Service.Release
	}
	j := r.judgesUnder(key, sp, refused, gatewayName(ro))
	in := rollout.Input{Now: now, Service: sp.Service, Health: health, Verdicts: j.checks.Verdicts(ro.Name, st), By: "deployment"}
	next, events, last, take, stale := step(ro, st, in)
	noteWaiting(&next, waiting)
	sv := r.servingOf(ro, &dep, vs, next, hash, waiting)
	// The state is written before anything is changed in the cluster: nothing is served that the
	// status does not say.
	p := pass{ro: ro, now: now, vs: vs, hash: hash, release: release, judges: j, refused: refused, last: last,
		routing: routingOf(ro, sv.plan)}
	if err := r.writeStatus(ctx, p, next, sv.traffic); err != nil {
		return ctrl.Result{}, err
	}
	j.checks.Settle(ro.Name, next)
	r.record(ro, events)
	if take || stale {
		if err := r.clearCommand(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.serve(ctx, ro, &dep, vs, sv); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.requeue(next, waiting, now)}, nil
}

// releaseOf is the release the core is told. A new template is given a ready pod before its
// rollout starts: until then the core is told the release it knew, and waiting names the new one.
func releaseOf(st rollout.State, known bool, hash string, health map[string]rollout.Health) (release, waiting string) {
	if hash != st.SpecRelease && hash != st.Stable && known && health[hash].Available == 0 && !(st.InFlight() && st.Canary == hash) {
		return st.SpecRelease, hash
	}
	return hash, ""
}

// noteWaiting adds to the state's message that the template waiting names waits for a ready pod.
func noteWaiting(next *rollout.State, waiting string) {
	if note := fmt.Sprintf("the new template %s waits for a ready pod before its rollout starts", waiting); waiting != "" && !strings.Contains(next.Message, note) {
		next.Message = strings.TrimPrefix(next.Message+"; "+note, "; ")
	}
}

// judgesUnder returns a Rollout's analyses and gates, and remembers sp as its last good spec
// unless sp was refused.
func (r *Reconciler) judgesUnder(key types.NamespacedName, sp *spec, refused, gateway string) *judges {
	j := r.judgesFor(key, sp, gateway)
	if refused == "" {
		r.mu.Lock()
		good := *sp
		j.good = &good
		r.mu.Unlock()
	}
	return j
}

// specFor is the spec a reconcile runs under. A Rollout whose spec does not validate changes
// nothing it asks for: with the last good spec known (in this process), the rollout goes on under
// it, so that commands and rollbacks still work, and refused says why the new one was not taken;
// without, the error comes back with a nil spec and nothing moves.
func (r *Reconciler) specFor(ctx context.Context, ro *v1alpha1.Rollout, versions []string, release string) (sp *spec, refused string, err error) {
	s, err := specOf(ro, versions, release)
	if err == nil {
		err = checkRouting(ro)
	}
	if err == nil {
		err = r.preflight(ctx, ro)
	}
	if err == nil {
		return &s, "", nil
	}
	good := r.goodSpec(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
	if good == nil {
		return nil, "", err
	}
	return good, err.Error(), err
}

// step takes the Rollout's pending command, if any, then ticks the core. last is the command's
// status when one was taken; take and stale are pendingCommand's.
func step(ro *v1alpha1.Rollout, st rollout.State, in rollout.Input) (next rollout.State, events []rollout.Event, last *v1alpha1.CommandStatus, take, stale bool) {
	next = st
	cmd, take, stale := pendingCommand(ro)
	if take {
		last = &v1alpha1.CommandStatus{ID: cmd.ID, Kind: string(cmd.Kind), By: cmd.By, At: metav1.NewTime(in.Now)}
		n, evs, err := rollout.Do(next, cmd.Command, in)
		if err != nil {
			last.Error = err.Error()
		} else {
			next, events = n, evs
		}
	}
	n, evs := rollout.Tick(next, in)
	return n, append(events, evs...), last, take, stale
}

// serving is what a reconcile makes real: the plan the HTTPRoute gets, the pods of each version,
// and how the status describes the traffic.
type serving struct {
	current string // the Deployment's template now
	plan    rollout.Plan
	want    map[string]int32
	routed  bool
	total   int32
	traffic string
}

// servingOf derives the serving from the state. With a router, a canary whose pods are not all
// ready yet gets only the share its ready pods can carry (the weight × ready / wanted), and no
// segment route until one is ready: the HTTPRoute catches up as they become ready, and the status
// says so. A share going down (an abort, a lower step) applies at once.
func (r *Reconciler) servingOf(ro *v1alpha1.Rollout, dep *appsv1.Deployment, vs []version, st rollout.State, current, waiting string) serving {
	sv := serving{current: current, plan: rollout.PlanOf(st),
		routed: routed(ro)}
	sv.total = ptr.Deref(ro.Spec.Replicas, deploymentReplicas(dep))
	if ro.Spec.Replicas == nil && sv.total == 0 {
		// A Deployment at 0 (it only holds the template): the stable keeps the pods it has, at least one.
		sv.total = 1
		if v := findVersion(vs, sv.plan.Stable); v != nil {
			sv.total = max(1, ptr.Deref(v.rs.Spec.Replicas, 1))
		}
	}
	sv.want = replicas(sv.total, sv.plan, st, sv.routed, waiting)
	if !sv.routed {
		sv.traffic = "approximated by replica counts behind Service " + ro.Spec.StableService + " (no trafficRouting)"
		return sv
	}
	sv.traffic = routerOf(ro)
	p := &sv.plan
	// Just promoted: until the new stable has all its pods, the old one (kept warm) takes what
	// the new one's ready pods cannot, as if the canary were still at that weight.
	if stable := findVersion(vs, p.Stable); p.Warm != "" && !st.InFlight() && stable != nil && stable.rs.Status.AvailableReplicas < sv.total {
		ready := max(0, stable.rs.Status.AvailableReplicas)
		w := carried(100, ready, sv.total)
		newStable, old := p.Stable, p.Warm
		sv.plan = rollout.Plan{Stable: old, Canary: newStable, Weight: w, Admitted: -1}
		sv.traffic = fmt.Sprintf("%s: %s, the new stable, gets %d%% until %d of its %d pods are ready (%d are); %s takes the rest",
			routerOf(ro), newStable, w, sv.total, sv.total, ready, old)
		return sv
	}
	need := sv.want[p.Canary]
	c := findVersion(vs, p.Canary)
	if p.Canary == "" || p.Canary == p.Stable || need == 0 || c == nil || c.rs.Status.AvailableReplicas >= need {
		return sv
	}
	ready := max(0, c.rs.Status.AvailableReplicas)
	weight := p.Weight
	p.Weight = carried(p.Weight, ready, need)
	if ready == 0 {
		p.Route = nil
	}
	sv.traffic = fmt.Sprintf("%s: the canary gets %d%% rather than %d%% until %d of its %d pods are ready (%d are)",
		routerOf(ro), p.Weight, weight, need, need, ready)
	return sv
}

// carried is the share of weight that ready of need pods can carry.
func carried(weight int, ready, need int32) int {
	return int(int64(weight) * int64(ready) / int64(need))
}

// serve makes the serving real: pods, Services, and the HTTPRoute.
func (r *Reconciler) serve(ctx context.Context, ro *v1alpha1.Rollout, dep *appsv1.Deployment, vs []version, sv serving) error {
	p, want, total := sv.plan, sv.want, sv.total
	// Scale up before traffic moves to a version, and down after it has left.
	if err := r.scale(ctx, ro, vs, grown(vs, want), sv.current); err != nil {
		return err
	}
	if err := r.selectServices(ctx, ro, p, vs); err != nil {
		return err
	}
	if routeName(ro) != "" { // the Aviary gateway fleet reads the plan from status.routing instead
		if err := r.route(ctx, ro, p); err != nil {
			return err
		}
	}
	if err := r.scale(ctx, ro, vs, want, sv.current); err != nil {
		return err
	}
	if ro.Spec.WorkloadRef.ScaleDown == "onsuccess" && ptr.Deref(dep.Spec.Replicas, 1) > 0 {
		if stable := findVersion(vs, p.Stable); stable != nil && stable.rs.Status.AvailableReplicas >= total {
			before := dep.DeepCopy()
			// The count it had is kept beside it: it stays the Rollout's replicas once it is 0.
			metav1.SetMetaDataAnnotation(&dep.ObjectMeta, ReplicasAnnotation, strconv.Itoa(int(ptr.Deref(dep.Spec.Replicas, 1))))
			dep.Spec.Replicas = ptr.To[int32](0)
			if err := r.Client.Patch(ctx, dep, client.MergeFrom(before)); err != nil {
				return fmt.Errorf("scale Deployment %s to 0 (workloadRef.scaleDown: onsuccess): %w", dep.Name, err)
			}
		}
	}
	return nil
}

// deploymentReplicas is how many pods the Deployment asks for: its replicas, or, once Aviary has
// scaled it to 0 (workloadRef.scaleDown: onsuccess), the count it had then.
func deploymentReplicas(dep *appsv1.Deployment) int32 {
	if n := ptr.Deref(dep.Spec.Replicas, 1); n > 0 {
		return n
	}
	if n, err := strconv.Atoi(dep.Annotations[ReplicasAnnotation]); err == nil && n > 0 {
		return int32(n)
	}
	return 0
}

// grown is want without shrinking anything yet.
func grown(vs []version, want map[string]int32) map[string]int32 {
	out := map[string]int32{}
	for _, v := range vs {
		n, ok := want[v.hash]
		if cur := ptr.Deref(v.rs.Spec.Replicas, 0); !ok || cur > n {
			n = cur
		}
		out[v.hash] = n
	}
	return out
}

func findVersion(vs []version, hash string) *version {
	i := slices.IndexFunc(vs, func(v version) bool { return v.hash == hash })
	if i < 0 {
		return nil
	}
	return &vs[i]
}

// requeue says when to look again without being told of a change.
func (r *Reconciler) requeue(st rollout.State, waiting string, now time.Time) time.Duration {
	every := r.Interval
	if every <= 0 {
		every = time.Second
	}
	switch {
	case st.InFlight() || waiting != "":
		return every
	case !st.WarmUntil.IsZero():
		return max(every, st.WarmUntil.Sub(now))
	}
	return 0
}

// versionNames lists the versions the core may name: the stable first, then every ReplicaSet's.
func versionNames(st rollout.State, vs []version) []string {
	out := []string{st.Stable}
	for _, v := range vs {
		if !slices.Contains(out, v.hash) {
			out = append(out, v.hash)
		}
	}
	return out
}

// checkRouting refuses steps that need a router, without one, and a router named twice.
func checkRouting(ro *v1alpha1.Rollout) error {
	routed := routed(ro)
	var errs config.Errors
	if t := ro.Spec.TrafficRouting; t != nil && (t.GatewayAPI == nil) == (t.Aviary == nil) {
		errs = append(errs, config.FieldError{Path: "spec.trafficRouting", Msg: "set exactly one of gatewayAPI (an HTTPRoute) and aviary (Aviary's gateway fleet)"})
	}
	if ro.Spec.Gateway != nil && gatewayName(ro) == "" {
		errs = append(errs, config.FieldError{Path: "spec.gateway", Msg: "is read by Aviary's gateway fleet only; set spec.trafficRouting.aviary.gateway, or remove spec.gateway"})
	}
	if routed && ro.Spec.CanaryService == "" {
		errs = append(errs, config.FieldError{Path: "spec.canaryService", Msg: "is required with trafficRouting: name the Service that selects the new version's pods"})
	}
	if routed {
		return errorsOrNil(errs)
	}
	need := func(path, what string) {
		errs = append(errs, config.FieldError{Path: path, Msg: what + " needs a traffic router; set spec.trafficRouting.gatewayAPI.httpRoute or spec.trafficRouting.aviary.gateway"})
	}
	s := ro.Spec.Strategy
	if s.Canary != nil {
		for i, step := range s.Canary.Steps {
			p := fmt.Sprintf("spec.strategy.canary.steps[%d]", i)
			if step.SetHeaderRoute != nil {
				need(p+".setHeaderRoute", "a segment route")
			}
			if step.SetMirror != nil {
				need(p+".setMirror", "mirroring")
			}
		}
	}
	if s.Shadow != nil {
		need("spec.strategy.shadow", "shadow traffic")
	}
	if s.BlueGreen != nil {
		need("spec.strategy.blueGreen", "blue-green (a preview apart from live traffic, then a switch)")
	}
	return errorsOrNil(errs)
}

func errorsOrNil(errs config.Errors) error {
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// stateOf reads the core's state from the status (false: the Rollout is new).
func stateOf(ro *v1alpha1.Rollout) (rollout.State, bool, error) {
	if ro.Status.State == nil || len(ro.Status.State.Raw) == 0 {
		return rollout.State{}, false, nil
	}
	var st rollout.State
	if err := json.Unmarshal(ro.Status.State.Raw, &st); err != nil {
		return st, false, fmt.Errorf("status.state is not a state this controller wrote (%v); delete the status to start over", err)
	}
	return st, true, nil
}

// pendingCommand reads the command annotation: take, a command the controller has not taken
// yet; stale, one it took before a crash, whose annotation is only left to clear.
func pendingCommand(ro *v1alpha1.Rollout) (c command, take, stale bool) {
	raw, ok := ro.Annotations[v1alpha1.CommandAnnotation]
	if !ok {
		return command{}, false, false
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil || c.ID == "" {
		return command{ID: "invalid", Command: rollout.Command{Kind: "invalid"}}, true, false
	}
	if last := ro.Status.LastCommand; last != nil && last.ID == c.ID {
		return command{}, false, true
	}
	if c.By == "" {
		c.By = "kubectl"
	}
	return c, true, false
}

// clearCommand removes the command annotation if it still holds the command read: a newer
// command written meanwhile stays, for the next reconcile.
func (r *Reconciler) clearCommand(ctx context.Context, ro *v1alpha1.Rollout) error {
	raw := ro.Annotations[v1alpha1.CommandAnnotation]
	path := "/metadata/annotations/" + strings.ReplaceAll(v1alpha1.CommandAnnotation, "/", "~1")
	patch, _ := json.Marshal([]map[string]any{{"op": "test", "path": path, "value": raw}, {"op": "remove", "path": path}})
	err := r.Client.Patch(ctx, ro, client.RawPatch(types.JSONPatchType, patch))
	if apierrors.IsInvalid(err) || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // a newer command, or the Rollout is gone
	}
	return err
}

// preflight checks that what the Rollout names is there: the Services, and the HTTPRoute with a
// rule that sends to the stable Service. A Rollout whose traffic cannot be moved must not move on.
func (r *Reconciler) preflight(ctx context.Context, ro *v1alpha1.Rollout) error {
	var errs config.Errors
	for _, s := range []struct{ path, name string }{{"spec.stableService", ro.Spec.StableService}, {"spec.canaryService", ro.Spec.CanaryService}} {
		if s.name == "" {
			continue
		}
		var svc corev1.Service
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: s.name}, &svc); apierrors.IsNotFound(err) {
			errs = append(errs, config.FieldError{Path: s.path, Msg: fmt.Sprintf("Service %s not found in %s; create it or fix the name", s.name, ro.Namespace)})
		} else if err != nil {
			return err
		}
	}
	if name := routeName(ro); name != "" {
		var hr gatewayv1.HTTPRoute
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &hr)
		switch {
		case apierrors.IsNotFound(err):
			errs = append(errs, config.FieldError{Path: "spec.trafficRouting.gatewayAPI.httpRoute", Msg: fmt.Sprintf("HTTPRoute %s not found in %s; create it or fix the name", name, ro.Namespace)})
		case err != nil:
			return err
		default:
			if _, err := planRules(hr.Spec.Rules, ro.Spec.StableService, ro.Spec.CanaryService, routeRuleName(ro), rollout.Plan{}); err != nil {
				errs = append(errs, config.FieldError{Path: "spec.trafficRouting.gatewayAPI.httpRoute", Msg: fmt.Sprintf("HTTPRoute %s: %v", name, err)})
			}
		}
	}
	return errorsOrNil(errs)
}

// invalid reports a spec the controller cannot follow, and changes nothing else.
func (r *Reconciler) invalid(ctx context.Context, ro *v1alpha1.Rollout, msg string) error {
	cond := metav1.Condition{Type: "SpecValid", Status: metav1.ConditionFalse, Reason: "InvalidSpec", Message: msg,
		ObservedGeneration: ro.Generation}
	if c := meta.FindStatusCondition(ro.Status.Conditions, "SpecValid"); c != nil && c.Status == cond.Status && c.Message == msg {
		return nil
	}
	r.Logger.Warn("rollout spec refused; the last good one stays in force", "rollout", ro.Namespace+"/"+ro.Name, "err", msg)
	r.event(ro, corev1.EventTypeWarning, "InvalidSpec", msg)
	meta.SetStatusCondition(&ro.Status.Conditions, cond)
	ro.Status.Message = "spec refused: " + strings.ReplaceAll(msg, "\n", "; ")
	return r.Client.Status().Update(context.WithoutCancel(ctx), ro)
}

// pass is what one reconcile of a Rollout read and decided, for the status it writes.
type pass struct {
	ro      *v1alpha1.Rollout
	now     time.Time
	vs      []version
	hash    string // the version of the Deployment's template
	release string // the release the core was told (hash, or the one before while hash waits for a pod)
	judges  *judges
	refused string                  // why the spec was refused, "" when it validated
	last    *v1alpha1.CommandStatus // the command taken, nil for none
	routing *v1alpha1.RoutingStatus // what the Aviary gateway fleet serves; nil without one
}

// writeStatus writes the state and the contract derived from it, with how traffic is routed.
func (r *Reconciler) writeStatus(ctx context.Context, p pass, st rollout.State, traffic string) error {
	ro, vs, refused := p.ro, p.vs, p.refused
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	view := rollout.StatusOf(p.judges.checks.Live(st), p.release, p.now)
	s := &ro.Status
	old := s.DeepCopy()
	s.ObservedGeneration = ro.Generation
	s.Phase, s.StableVersion, s.CanaryVersion, s.ReleaseVersion = string(view.Phase), view.StableVersion, view.CanaryVersion, p.hash
	s.StableRevision, s.CanaryRevision = revisionOf(vs, view.StableVersion), revisionOf(vs, view.CanaryVersion)
	s.CanaryWeight, s.CurrentStepIndex, s.StepCount = int32(view.CanaryWeight), int32(view.CurrentStepIndex), int32(len(view.Steps))
	s.Message = view.Message
	if refused != "" {
		s.Message = "spec refused, the last good one stays in force: " + strings.ReplaceAll(refused, "\n", "; ") + "; " + view.Message
	}
	s.PauseReasons = nil
	for _, p := range view.PauseReasons {
		s.PauseReasons = append(s.PauseReasons, p.Kind)
	}
	s.Analysis = nil
	for _, ch := range view.Checks {
		c := v1alpha1.CheckStatus{ID: ch.ID, Kind: ch.Kind, Templates: ch.Templates, Phase: string(rollout.Running)}
		if ch.Last != nil {
			c.Phase, c.Message = string(ch.Last.Phase), ch.Last.Message
		}
		s.Analysis = append(s.Analysis, c)
	}
	s.Traffic = traffic
	s.Routing = p.routing
	s.Fleet = r.coverage(p.judges.fleet)
	if p.last != nil {
		s.LastCommand = p.last
	}
	s.State = &apiextensionsv1.JSON{Raw: raw}
	setConditions(ro, st, vs, refused)
	if equality.Semantic.DeepEqual(old, s) {
		return nil
	}
	return r.Client.Status().Update(ctx, ro)
}

// routeName is the HTTPRoute the Rollout's traffic goes through ("": none).
func routeName(ro *v1alpha1.Rollout) string {
	if t := ro.Spec.TrafficRouting; t != nil && t.GatewayAPI != nil {
		return t.GatewayAPI.HTTPRoute
	}
	return ""
}

// gatewayName is the Aviary gateway fleet that serves the Rollout ("": none).
func gatewayName(ro *v1alpha1.Rollout) string {
	if t := ro.Spec.TrafficRouting; t != nil && t.Aviary != nil {
		return t.Aviary.Gateway
	}
	return ""
}

// routed reports whether a router (an HTTPRoute or Aviary's gateway fleet) moves the weights.
func routed(ro *v1alpha1.Rollout) bool { return routeName(ro) != "" || gatewayName(ro) != "" }

// routerOf says what moves the Rollout's weights, for the status ("": no router).
func routerOf(ro *v1alpha1.Rollout) string {
	switch {
	case routeName(ro) != "":
		return "HTTPRoute " + routeName(ro)
	case gatewayName(ro) != "":
		return "Aviary gateway " + gatewayName(ro)
	}
	return ""
}

func revisionOf(vs []version, hash string) int64 {
	if v := findVersion(vs, hash); v != nil {
		return v.revision
	}
	return 0
}

// setConditions derives the Kubernetes conditions from the state.
func setConditions(ro *v1alpha1.Rollout, st rollout.State, vs []version, refused string) {
	set := func(t string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason,
			Message: msg, ObservedGeneration: ro.Generation})
	}
	if refused != "" {
		set("SpecValid", false, "InvalidSpec", refused+" (the last good spec stays in force)")
	} else {
		set("SpecValid", true, "Valid", "the spec is valid")
	}
	stable := findVersion(vs, st.Stable)
	avail := stable != nil && stable.rs.Status.AvailableReplicas > 0
	set("Available", avail, map[bool]string{true: "StableAvailable", false: "StableUnavailable"}[avail],
		fmt.Sprintf("stable %s", st.Stable))
	set("Progressing", st.InFlight(), string(st.Phase), st.Message)
	set("Paused", st.Phase == rollout.Paused, string(st.Phase), st.Message)
	set("Degraded", st.Phase == rollout.Degraded, string(st.Phase), st.Message)
}

// record turns the core's events into Kubernetes Events.
func (r *Reconciler) record(ro *v1alpha1.Rollout, events []rollout.Event) {
	for _, e := range events {
		r.Logger.Info("rollout", "rollout", ro.Namespace+"/"+ro.Name, "event", e.Kind, "phase", e.Phase,
			"stable", e.Stable, "canary", e.Canary, "weight", e.Weight, "step", e.Step, "by", e.By, "reason", e.Reason)
		typ := corev1.EventTypeNormal
		if e.Kind.Warning() {
			typ = corev1.EventTypeWarning
		}
		r.event(ro, typ, string(e.Kind), truncate(e.Reason, 1000))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
