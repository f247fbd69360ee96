package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// source is the cluster's Rollouts as internal/api's handlers read and steer services: it
// implements api.Services, api.Rollouts, api.Analyses and api.Config. Reads come from the
// manager's cache (no call to the API server per request); a command is written into the
// Rollout's aviary.dev/command annotation, where the leading controller takes it.
type source struct {
	c       client.Client
	local   k8s.Reports // the analysis runs this process judges (nil: none)
	log     *eventLog
	now     func() time.Time
	timeout time.Duration // how long a command waits for the controller to take it
}

// readTimeout bounds a read of the cache (it does not wait on the network once synced).
const readTimeout = 10 * time.Second

// keyOf reads a service name of this API: NAMESPACE/NAME.
func keyOf(service string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(service, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, &api.BadRequest{Msg: fmt.Sprintf("%q names no Rollout: in Kubernetes mode a service is "+
			"NAMESPACE/NAME (URL-encoded in a path: shop%%2Fcheckout), as GET /api/v1/services lists them", service)}
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

func nameOf(ro *v1alpha1.Rollout) string { return ro.Namespace + "/" + ro.Name }

// get reads the Rollout a service name names.
func (s *source) get(service string) (*v1alpha1.Rollout, error) {
	key, err := keyOf(service)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	ro := &v1alpha1.Rollout{}
	if err := s.c.Get(ctx, key, ro); err != nil {
		return nil, readError(key, err)
	}
	return ro, nil
}

func readError(key types.NamespacedName, err error) error {
	if apierrors.IsNotFound(err) {
		return &rollout.NotFoundError{Msg: fmt.Sprintf("no Rollout %s that this controller watches; GET /api/v1/services lists them", key)}
	}
	return fmt.Errorf("read rollout %s: %w; check the controller's log and its access to rollouts.aviary.dev", key, err)
}

// Services lists every Rollout as a service: its versions (pod-template-hashes) with their
// weights and ready pods.
func (s *source) Services() []gateway.ServiceStatus {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var list v1alpha1.RolloutList
	if err := s.c.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]gateway.ServiceStatus, 0, len(list.Items))
	for i := range list.Items {
		ro := &list.Items[i]
		svc := gateway.ServiceStatus{Name: nameOf(ro), Stable: ro.Status.StableVersion, Versions: []gateway.VersionStatus{}}
		pods := s.readyPods(ctx, ro)
		for _, v := range []struct {
			name   string
			weight int
		}{{ro.Status.StableVersion, 100 - int(ro.Status.CanaryWeight)}, {ro.Status.CanaryVersion, int(ro.Status.CanaryWeight)}} {
			if v.name == "" || slices.ContainsFunc(svc.Versions, func(x gateway.VersionStatus) bool { return x.Name == v.name }) {
				continue
			}
			svc.Versions = append(svc.Versions, gateway.VersionStatus{Name: v.name, Weight: v.weight, Healthy: pods[v.name][0],
				Ready: pods[v.name][1], Endpoints: []gateway.EndpointStatus{}})
		}
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, b gateway.ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// readyPods are the available and ready pods of each version of a Rollout.
func (s *source) readyPods(ctx context.Context, ro *v1alpha1.Rollout) map[string][2]int {
	out := map[string][2]int{}
	for _, rs := range s.replicaSets(ctx, ro) {
		out[rs.Labels[k8s.HashLabel]] = [2]int{int(rs.Status.AvailableReplicas), int(rs.Status.ReadyReplicas)}
	}
	return out
}

// replicaSets are the ReplicaSets a Rollout owns: its versions.
func (s *source) replicaSets(ctx context.Context, ro *v1alpha1.Rollout) []appsv1.ReplicaSet {
	var list appsv1.ReplicaSetList
	if err := s.c.List(ctx, &list, client.InNamespace(ro.Namespace), client.MatchingLabels{k8s.RolloutLabel: ro.Name}); err != nil {
		return nil
	}
	return slices.DeleteFunc(list.Items, func(rs appsv1.ReplicaSet) bool { return !metav1.IsControlledBy(&rs, ro) })
}

// RolloutStatus is the Rollout's status as `aviary rollout status -n NS NAME` shows it.
func (s *source) RolloutStatus(service string) (rollout.Status, error) {
	ro, err := s.get(service)
	if err != nil {
		return rollout.Status{}, err
	}
	return s.view(ro)
}

func (s *source) view(ro *v1alpha1.Rollout) (rollout.Status, error) {
	st, err := k8s.View(ro, s.now())
	if err != nil {
		return rollout.Status{}, &rollout.ConflictError{Msg: err.Error()}
	}
	st.Service = nameOf(ro)
	return st, nil
}

// Do writes the command into the Rollout's annotation, as `aviary rollout -n NS ACTION NAME` does,
// and waits for the controller's answer: the status after it, or its refusal (409). Any replica
// may take the request; the leader carries the command out.
func (s *source) Do(service string, cmd rollout.Command) (rollout.Status, error) {
	key, err := keyOf(service)
	if err != nil {
		return rollout.Status{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	ro, err := k8s.Command(ctx, s.c, key, cmd)
	switch {
	case err != nil && ro != nil: // the controller took it and refused it
		return rollout.Status{}, &rollout.ConflictError{Msg: fmt.Sprintf("%s %s: %v", cmd.Kind, service, err)}
	case apierrors.IsNotFound(err):
		return rollout.Status{}, readError(key, err)
	case apierrors.IsForbidden(err):
		return rollout.Status{}, fmt.Errorf("%w; the controller's ServiceAccount needs patch on rollouts.aviary.dev (deploy/rbac.yaml)", err)
	case err != nil:
		return rollout.Status{}, err
	}
	return s.view(ro)
}

// Start, Apply and Delete have Kubernetes forms: the answer says which.
func (s *source) Start(service string, _ api.StartRequest, _ string) (rollout.Status, error) {
	key, err := keyOf(service)
	if err != nil {
		return rollout.Status{}, err
	}
	return rollout.Status{}, &api.BadRequest{Msg: fmt.Sprintf("in Kubernetes mode a rollout starts when the Deployment's template changes: "+
		"kubectl set image -n %s deployment/DEPLOYMENT CONTAINER=IMAGE (DEPLOYMENT is the Rollout's spec.workloadRef.name), "+
		"or kubectl apply the changed Deployment", key.Namespace)}
}

func (s *source) Apply([]byte, string) (api.ApplyResult, error) {
	return api.ApplyResult{}, &api.BadRequest{Msg: "in Kubernetes mode Rollouts are Kubernetes resources: kubectl apply -f FILE applies them"}
}

func (s *source) Delete(service string, _ bool, _ string) (api.DeleteResult, error) {
	key, err := keyOf(service)
	if err != nil {
		return api.DeleteResult{}, err
	}
	return api.DeleteResult{}, &api.BadRequest{Msg: fmt.Sprintf("in Kubernetes mode a Rollout is deleted with kubectl delete rollouts.aviary.dev %s -n %s "+
		"(the controller hands its traffic back to the Deployment)", key.Name, key.Namespace)}
}

// History lists the Rollout's revisions: one per pod template it has released (its ReplicaSets),
// oldest first, as `aviary rollout history -n NS NAME` does.
func (s *source) History(service string) ([]store.HistoryEntry, error) {
	ro, err := s.get(service)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var out []store.HistoryEntry
	for _, rs := range s.replicaSets(ctx, ro) {
		rev, _ := strconv.ParseInt(rs.Annotations[k8s.RevisionAnnotation], 10, 64)
		hash := rs.Labels[k8s.HashLabel]
		var images []string
		for _, c := range rs.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		role := "old"
		switch hash {
		case ro.Status.StableVersion:
			role = "stable"
		case ro.Status.CanaryVersion:
			role = "canary"
		}
		var want int32
		if rs.Spec.Replicas != nil {
			want = *rs.Spec.Replicas
		}
		out = append(out, store.HistoryEntry{Revision: rev, Time: rs.CreationTimestamp.Time, Kind: config.EventRolled, Stable: hash,
			Reason: fmt.Sprintf("%s: %s; %d of %d pods ready", role, strings.Join(images, ", "), rs.Status.ReadyReplicas, want),
			By:     "deployment"})
	}
	slices.SortFunc(out, func(a, b store.HistoryEntry) int { return cmpInt(a.Revision, b.Revision) })
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Events are the events this replica has seen since it started (see eventLog).
func (s *source) Events(service string, after uint64, limit int) ([]rollout.Event, error) {
	if service != "" {
		if _, err := keyOf(service); err != nil {
			return nil, err
		}
	}
	return s.log.after(service, after, limit), nil
}

func (s *source) LastEvents(service string, n int) ([]rollout.Event, error) {
	if service != "" {
		if _, err := keyOf(service); err != nil {
			return nil, err
		}
	}
	return s.log.last(service, n), nil
}

// Reports are the Rollout's analysis runs. The measurements and per-metric evidence live in the
// memory of the controller that judges them, the leader: there they come whole. Elsewhere (a
// replica that does not lead) they are the checks of the status, each with its latest verdict
// and message, and no per-metric evidence.
func (s *source) Reports(service string) []analysis.RunReport {
	ro, err := s.get(service)
	if err != nil {
		return nil
	}
	if s.local != nil {
		if reps := s.local(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}); len(reps) > 0 {
			for i := range reps {
				reps[i].Service = nameOf(ro)
			}
			return reps
		}
	}
	st, ok, err := k8s.StateOf(ro)
	if err != nil || !ok {
		return nil
	}
	var out []analysis.RunReport
	for _, c := range st.Checks {
		if c.Kind == rollout.GateCheck {
			continue
		}
		r := analysis.RunReport{ID: c.ID, Kind: c.Kind, Service: nameOf(ro), Stable: st.Stable, Canary: st.Canary,
			Templates: c.Templates, StartedAt: c.StartedAt, Verdict: string(rollout.Running), Metrics: []analysis.MetricResult{}}
		if c.Last != nil {
			r.Verdict, r.Message = string(c.Last.Phase), c.Last.Message
		}
		for _, cs := range ro.Status.Analysis {
			if cs.ID == c.ID && cs.Phase != "" {
				r.Verdict, r.Message = cs.Phase, cs.Message
			}
		}
		out = append(out, r)
	}
	return out
}

// kubeConfig answers the config endpoints: in Kubernetes mode the Rollouts are the specs.
type kubeConfig struct {
	started time.Time
	now     func() time.Time
}

func (k kubeConfig) Status() api.ConfigStatus {
	return api.ConfigStatus{File: "(none: in Kubernetes mode the Rollout resources are the specs)", LoadedAt: k.started}
}

func (k kubeConfig) Reload() api.ReloadResult {
	return api.ReloadResult{At: k.now(), Errors: []string{errNoConfigFile.Error()}}
}

var errNoConfigFile = errors.New("in Kubernetes mode there is no config file to reload: the controller follows the Rollouts as they change; kubectl apply them")
