package admin

import (
	"context"
	"fmt"
	"slices"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// pastEvents are the Kubernetes Events the controller recorded on Rollouts before this replica
// started (in namespace, "" for all), oldest first, as the core's events: the kind is the Event's
// reason and the reason its note. They carry no state (phase, versions, weight): an Event does
// not hold it. The list is one call, at start, to the API server (not the cache: Events are not
// watched).
func pastEvents(ctx context.Context, r client.Reader, namespace string) ([]rollout.Event, error) {
	var list eventsv1.EventList
	opts := []client.ListOption{client.MatchingFields{"regarding.kind": "Rollout"}}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := r.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("list the Rollouts' Kubernetes Events: %w", err)
	}
	var out []rollout.Event
	for _, e := range list.Items {
		// Another project's Rollout kind (Argo's) may share the kind's name.
		if gv, err := schema.ParseGroupVersion(e.Regarding.APIVersion); err != nil || gv.Group != v1alpha1.GroupVersion.Group {
			continue
		}
		by := e.ReportingController
		if by == "" {
			by = "controller"
		}
		out = append(out, rollout.Event{Time: k8s.EventTime(e), Service: e.Regarding.Namespace + "/" + e.Regarding.Name,
			Kind: config.EventKind(e.Reason), Reason: e.Note, By: by})
	}
	slices.SortStableFunc(out, func(a, b rollout.Event) int { return a.Time.Compare(b.Time) })
	return out[max(0, len(out)-maxEvents):], nil
}
