package k8s

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/fleet"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// The judge reads Aviary's gateway fleet (internal/fleet): a Rollout routed through a gateway
// (spec.trafficRouting.aviary.gateway) is judged on the sum of the replicas' counts, read at each
// look from the replicas' admin API, into a metrics registry of the Rollout's own.

// GatewayLabel marks the Service of a gateway fleet; its value is the fleet's name, as Rollouts give
// it in spec.trafficRouting.aviary.gateway. The controller finds the replicas as that Service's
// EndpointSlices' ready (or still serving, while they terminate) endpoints.
const GatewayLabel = "aviary.dev/gateway"

// AdminPortName is the name of the gateway Service's port of the replicas' admin API.
const AdminPortName = "admin"

// FleetOptions say how the controller reads gateway fleets.
type FleetOptions struct {
	// Token is the replicas' read token (their admin.readToken); empty only when they serve their
	// admin API without one.
	Token string
	// Look is how often the replicas are read (0: one second); Timeout bounds one look (0: 2s).
	Look, Timeout time.Duration
}

// gatewayReader reads one gateway fleet for every Rollout in flight here that names it.
type gatewayReader struct {
	r     *fleet.Reader
	stop  context.CancelFunc
	done  chan struct{}
	sinks map[types.NamespacedName]bool
}

// fleetJudge is a Rollout's share of a gateway fleet: the registries its analyzer reads.
type fleetJudge struct {
	gateway string
	metrics *metrics.Registry
	llm     *llmstats.Registry
}

// fleetFor makes the registries of a Rollout routed through a gateway fleet, and has the fleet's
// reader add the Rollout's counts into them from its next look.
func (r *Reconciler) fleetFor(key types.NamespacedName, gateway string) *fleetJudge {
	fj := &fleetJudge{gateway: gateway, metrics: metrics.NewRegistry(metrics.Options{Now: r.Now}), llm: llmstats.New(nil)}
	r.fleetMu.Lock()
	defer r.fleetMu.Unlock()
	if r.fleets == nil {
		r.fleets = map[string]*gatewayReader{}
	}
	g := r.fleets[gateway]
	if g == nil {
		o := r.Fleet
		g = &gatewayReader{sinks: map[types.NamespacedName]bool{}, done: make(chan struct{}),
			r: fleet.New(fleet.Options{Token: o.Token, Timeout: o.Timeout, Now: r.Now, Logger: r.Logger.With("gateway", gateway)})}
		ctx, cancel := context.WithCancel(context.Background())
		g.stop = cancel
		look := o.Look
		if look <= 0 {
			look = time.Second
		}
		go func() {
			defer close(g.done)
			g.r.Run(ctx, look, func(ctx context.Context) ([]fleet.Replica, error) { return r.replicasOf(ctx, gateway) })
		}()
		r.fleets[gateway] = g
	}
	g.sinks[key] = true
	g.r.SetSink(GatewayServiceName(key.Namespace, key.Name), fleet.Sink{Metrics: fj.metrics, LLM: fj.llm, As: key.Name})
	return fj
}

// dropFleet stops adding a Rollout's counts, and the fleet's reader when no Rollout is left.
func (r *Reconciler) dropFleet(key types.NamespacedName, fj *fleetJudge) {
	r.fleetMu.Lock()
	g := r.fleets[fj.gateway]
	if g == nil {
		r.fleetMu.Unlock()
		return
	}
	delete(g.sinks, key)
	g.r.DropSink(GatewayServiceName(key.Namespace, key.Name))
	last := len(g.sinks) == 0
	if last {
		delete(r.fleets, fj.gateway)
	}
	r.fleetMu.Unlock()
	if last {
		g.stop()
		<-g.done
	}
}

// coverage is the fleet's coverage for a Rollout's status (nil: not routed through a fleet, or no
// look yet).
func (r *Reconciler) coverage(fj *fleetJudge) *v1alpha1.FleetStatus {
	if fj == nil {
		return nil
	}
	r.fleetMu.Lock()
	g := r.fleets[fj.gateway]
	r.fleetMu.Unlock()
	if g == nil {
		return nil
	}
	c := g.r.Coverage()
	if c.Looks == 0 {
		return nil
	}
	return &v1alpha1.FleetStatus{Replicas: int32(c.Replicas), Answered: int32(c.Answered), Ended: c.Ended, Lost: c.Lost, Message: c.String()}
}

// replicasOf finds a gateway fleet's replicas: the Services labelled GatewayLabel=gateway, and the
// endpoints of their EndpointSlices that are ready, or still serving while they terminate (their
// last counts are worth reading), on the port named AdminPortName.
func (r *Reconciler) replicasOf(ctx context.Context, gateway string) ([]fleet.Replica, error) {
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs, client.MatchingLabels{GatewayLabel: gateway}); err != nil {
		return nil, fmt.Errorf("list the Services labelled %s=%s: %w", GatewayLabel, gateway, err)
	}
	if len(svcs.Items) == 0 {
		return nil, fmt.Errorf("no Service is labelled %s=%s: label the gateway fleet's Service so (deploy/gateway.yaml does)", GatewayLabel, gateway)
	}
	var out []fleet.Replica
	seen := map[string]bool{}
	for _, svc := range svcs.Items {
		var slices discoveryv1.EndpointSliceList
		if err := r.apiReader().List(ctx, &slices, client.InNamespace(svc.Namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
			return nil, fmt.Errorf("list the EndpointSlices of Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		for _, sl := range slices.Items {
			for _, rep := range sliceReplicas(&sl) {
				if !seen[rep.URL] {
					seen[rep.URL] = true
					out = append(out, rep)
				}
			}
		}
	}
	return out, nil
}

// sliceReplicas are a slice's replicas on its admin port.
func sliceReplicas(sl *discoveryv1.EndpointSlice) []fleet.Replica {
	var port int32
	for _, p := range sl.Ports {
		if p.Name != nil && *p.Name == AdminPortName && p.Port != nil {
			port = *p.Port
		}
	}
	if port == 0 {
		return nil
	}
	var out []fleet.Replica
	for _, ep := range sl.Endpoints {
		c := ep.Conditions
		ready := c.Ready == nil || *c.Ready
		draining := c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating
		if (!ready && !draining) || len(ep.Addresses) == 0 {
			continue
		}
		addr := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
		name := addr
		if ep.TargetRef != nil && ep.TargetRef.Name != "" {
			name = ep.TargetRef.Name
		}
		out = append(out, fleet.Replica{Name: name, URL: "http://" + addr})
	}
	return out
}

func (r *Reconciler) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// closeFleets stops every fleet reader.
func (r *Reconciler) closeFleets() {
	r.fleetMu.Lock()
	gs := r.fleets
	r.fleets = nil
	r.fleetMu.Unlock()
	for _, g := range gs {
		g.stop()
		<-g.done
	}
}
