package main

// Kubernetes mode of the client commands. With -n/--namespace, --kubeconfig or --context, rollout
// status, the actions and history read and steer a Rollout resource (aviary.dev/v1alpha1) through
// the Kubernetes API instead of a running aviary's admin API; `aviary controller` carries the
// commands out. What they print is the same: k8s.View renders a Rollout as the standalone API's
// rollout.Status.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// commandTimeout bounds how long an action waits for the controller to take it.
const commandTimeout = 30 * time.Second

// kubeMode reports whether the flags choose Kubernetes mode. --server with a Kubernetes flag is
// an error: which of the two was meant is not for the CLI to guess.
func (o *clientOptions) kubeMode() (bool, error) {
	if !o.kube.set() {
		return false, nil
	}
	if o.server != "" {
		return true, errors.New("--server names a running aviary serve, -n/--namespace, --kubeconfig and --context a cluster: " +
			"give one or the other")
	}
	return true, nil
}

// kubeClient connects to the cluster the flags name, and says which namespace they name in it.
func (o *clientOptions) kubeClient() (client.Client, string, error) {
	cfg, ns, err := o.kube.load()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		return nil, "", fmt.Errorf("connect to the cluster at %s: %w", cfg.Host, err)
	}
	return c, ns, nil
}

// inKube runs fn with a client of the cluster and the namespace in Kubernetes mode; done is false
// in standalone mode, where fn does not run.
func (o *clientOptions) inKube(fn func(c client.Client, ns string) error) (done bool, err error) {
	kube, err := o.kubeMode()
	if err != nil || !kube {
		return err != nil, err
	}
	c, ns, err := o.kubeClient()
	if err != nil {
		return true, err
	}
	return true, fn(c, ns)
}

// nsArg is the -n argument for the commands a refusal suggests.
func (o *kubeOptions) nsArg() string {
	if o.namespace == "" {
		return ""
	}
	return " -n " + o.namespace
}

// The client commands that have no Kubernetes form say what to do instead.

func kubeStartRefused(o *kubeOptions, name string) error {
	return fmt.Errorf("in Kubernetes mode a rollout starts when the Deployment's template changes: "+
		"kubectl set image deployment/DEPLOYMENT CONTAINER=IMAGE%s (DEPLOYMENT is the Rollout's spec.workloadRef.name), "+
		"or kubectl apply the changed Deployment; then aviary rollout status %s%s --watch follows it",
		o.nsArg(), name, o.nsArg())
}

func kubeGetServicesRefused(o *kubeOptions) error {
	return fmt.Errorf("in Kubernetes mode there is no aviary serve to list services: kubectl get rollouts.aviary.dev%s "+
		"lists the Rollouts with their phase, versions and weight; aviary rollout status NAME%s shows one", o.nsArg(), o.nsArg())
}

func kubeApplyRefused(o *kubeOptions, file string) error {
	return fmt.Errorf("in Kubernetes mode Rollouts are Kubernetes resources: kubectl apply -f %s%s applies them "+
		"(aviary apply sends service specs to aviary serve)", file, o.nsArg())
}

// kubeStatus prints the status of the Rollout ns/name once, as rollout status does: the block
// with the Rollout's last Kubernetes Events, or with asJSON the rollout.Status as JSON.
func kubeStatus(ctx context.Context, c client.Client, ns, name string, out io.Writer, asJSON bool) error {
	w := &watcher{src: &kubeRollout{c: c, key: types.NamespacedName{Namespace: ns, Name: name}}, name: name, out: out, json: asJSON}
	return w.once(ctx)
}

// kubeWatch prints the status of the Rollout ns/name, and again on every change (it reads it
// every `every`), until no rollout is in flight or ctx is done; with asJSON one line per change.
func kubeWatch(ctx context.Context, c client.Client, ns, name string, out io.Writer, asJSON bool, every time.Duration) error {
	w := &watcher{src: &kubeRollout{c: c, key: types.NamespacedName{Namespace: ns, Name: name}}, name: name, out: out,
		json: asJSON, watching: true, tty: isTerminal(out), every: every}
	return w.run(ctx)
}

// kubeAction sends cmd to the Rollout ns/name through its aviary.dev/command annotation, waits
// (up to commandTimeout) until the controller has taken it, and prints the rollout's state after
// it in one line (with asJSON its whole status). A command that does not fit the rollout's phase
// is an error that says what to do, as in standalone mode. cmd.By defaults to the local user.
func kubeAction(ctx context.Context, c client.Client, ns, name string, cmd rollout.Command, out io.Writer, asJSON bool) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if cmd.By == "" {
		cmd.By = cliUser()
	}
	ro, err := k8s.Command(ctx, c, types.NamespacedName{Namespace: ns, Name: name}, cmd)
	if err != nil && ro != nil { // the controller refused it
		return fmt.Errorf("%s %s: %w", cmd.Kind, name, err)
	}
	if err != nil {
		return kubeHint(ns, err)
	}
	st, err := k8s.View(ro, time.Now())
	if err != nil {
		return err
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("print the status of %s as JSON: %w", name, err)
	}
	return printResult(out, outputOf(asJSON), st, raw)
}

func outputOf(asJSON bool) string {
	if asJSON {
		return "json"
	}
	return "text"
}

// cliUser is who a command comes from, for the events and status.lastCommand: cli:USER.
func cliUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// kubeHint adds what to do to an error of the Kubernetes API.
func kubeHint(ns string, err error) error {
	var status apierrors.APIStatus
	var uerr *url.Error
	switch {
	case apierrors.IsNotFound(err) && errors.As(err, &status) && status.Status().Details != nil &&
		status.Status().Details.Kind == "rollouts":
		return fmt.Errorf("%w; kubectl get rollouts.aviary.dev -n %s lists the Rollouts", err, ns)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("%w; the cluster does not know Rollouts (aviary.dev/v1alpha1): install Aviary's CRDs", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w; log in to the cluster again, or check --kubeconfig and --context", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w; ask for access to rollouts.aviary.dev in namespace %s", err, ns)
	case errors.As(err, &status) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &uerr):
		return fmt.Errorf("%w; is the cluster reachable? check --kubeconfig and --context", err)
	}
	return err
}

// kubeRollout is a Rollout in a cluster, as rollout status reads it. It hears of no change by
// itself: a watch reads it on its clock.
type kubeRollout struct {
	c   client.Client
	key types.NamespacedName
}

func (k *kubeRollout) status(ctx context.Context) (rollout.Status, []byte, error) {
	ro := &v1alpha1.Rollout{}
	if err := k.c.Get(ctx, k.key, ro); err != nil {
		return rollout.Status{}, nil, kubeHint(k.key.Namespace, fmt.Errorf("read rollout %s: %w", k.key, err))
	}
	st, err := k8s.View(ro, time.Now())
	if err != nil {
		return rollout.Status{}, nil, err
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return rollout.Status{}, nil, fmt.Errorf("print the status of %s as JSON: %w", k.key, err)
	}
	return st, raw, nil
}

// recentEvents lists the Rollout's Kubernetes Events: the controller records each of the core's
// events as one (reason: the event's kind; note: its reason).
func (k *kubeRollout) recentEvents(ctx context.Context, have []rollout.Event, n int) ([]rollout.Event, error) {
	var list eventsv1.EventList
	err := k.c.List(ctx, &list, client.InNamespace(k.key.Namespace),
		client.MatchingFields{"regarding.kind": "Rollout", "regarding.name": k.key.Name})
	if err != nil {
		return have, fmt.Errorf("list the events of rollout %s: %w", k.key, err)
	}
	return rolloutEvents(k.key.Name, list.Items, n), nil
}

func (k *kubeRollout) follow(context.Context, func()) {}

// rolloutEvents are the last n of a Rollout's Events, oldest first, as the core's events.
func rolloutEvents(name string, list []eventsv1.Event, n int) []rollout.Event {
	var out []rollout.Event
	for _, e := range list {
		// Another project's Rollout kind (Argo's) may share the name.
		if gv, err := schema.ParseGroupVersion(e.Regarding.APIVersion); err != nil || gv.Group != v1alpha1.GroupVersion.Group ||
			e.Regarding.Kind != "Rollout" || e.Regarding.Name != name {
			continue
		}
		out = append(out, rollout.Event{Time: k8s.EventTime(e), Service: name, Kind: config.EventKind(e.Reason), Reason: e.Note})
	}
	slices.SortStableFunc(out, func(a, b rollout.Event) int { return a.Time.Compare(b.Time) })
	return out[max(0, len(out)-n):]
}

// kubeRevision is one ReplicaSet of a Rollout, as rollout history lists it in Kubernetes mode.
type kubeRevision struct {
	Revision int64     `json:"revision"`
	Version  string    `json:"version"`        // the pod-template-hash
	Role     string    `json:"role,omitempty"` // stable or canary
	Created  time.Time `json:"created"`
	Replicas int32     `json:"replicas"`
	Ready    int32     `json:"readyReplicas"`
	Images   []string  `json:"images"`
}

// kubeHistory lists the revisions of the Rollout ns/name: its ReplicaSets, one per pod template
// it has released, oldest first (with asJSON as {"history": [...]}).
func kubeHistory(ctx context.Context, c client.Client, ns, name string, out io.Writer, asJSON bool) error {
	key := types.NamespacedName{Namespace: ns, Name: name}
	ro := &v1alpha1.Rollout{}
	if err := c.Get(ctx, key, ro); err != nil {
		return kubeHint(ns, fmt.Errorf("read rollout %s: %w", key, err))
	}
	var list appsv1.ReplicaSetList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{k8s.RolloutLabel: name}); err != nil {
		return kubeHint(ns, fmt.Errorf("list the ReplicaSets of rollout %s: %w", key, err))
	}
	revs := revisionsOf(ro, list.Items)
	if asJSON {
		raw, err := json.Marshal(map[string]any{"history": revs})
		if err != nil {
			return err
		}
		return printJSON(out, raw)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tVERSION\tROLE\tCREATED\tPODS\tIMAGES")
	for _, r := range revs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%s\n", r.Revision, r.Version, dash(r.Role), stamp(r.Created),
			r.Ready, r.Replicas, dash(strings.Join(r.Images, ", ")))
	}
	return tw.Flush()
}

// revisionsOf are the ReplicaSets the Rollout owns, by revision.
func revisionsOf(ro *v1alpha1.Rollout, sets []appsv1.ReplicaSet) []kubeRevision {
	revs := []kubeRevision{}
	for _, rs := range sets {
		if !metav1.IsControlledBy(&rs, ro) {
			continue
		}
		r := kubeRevision{Version: rs.Labels[k8s.HashLabel], Created: rs.CreationTimestamp.Time,
			Ready: rs.Status.ReadyReplicas, Images: []string{}}
		r.Revision, _ = strconv.ParseInt(rs.Annotations[k8s.RevisionAnnotation], 10, 64)
		if rs.Spec.Replicas != nil {
			r.Replicas = *rs.Spec.Replicas
		}
		switch r.Version {
		case "":
		case ro.Status.StableVersion:
			r.Role = "stable"
		case ro.Status.CanaryVersion:
			r.Role = "canary"
		}
		for _, c := range rs.Spec.Template.Spec.Containers {
			r.Images = append(r.Images, c.Image)
		}
		revs = append(revs, r)
	}
	slices.SortFunc(revs, func(a, b kubeRevision) int { return int(a.Revision - b.Revision) })
	return revs
}
