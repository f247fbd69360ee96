// Package replica is the Kubernetes source of `aviary serve --source kubernetes --gateway NAME`:
// it turns a gateway replica into a reader of the cluster. It watches the Rollouts that name its
// gateway (spec.trafficRouting.aviary.gateway) and the EndpointSlices of their namespaces, and
// gives the gateway the services they make — k8s.GatewayService, that is the standalone
// gateway's own rollout.Plan.Service over the Rollout's spec.gateway settings, its
// status.routing, and the ready endpoints of its stable and canary Services.
//
// A replica is stateless: it never writes to the cluster (the controller is the one writer, and
// the replica's RBAC grants reads only), runs no rollout controller and keeps no rollout state.
// Every replica derives the same services from the same objects, and a sticky user's bucket is a
// function of the service name and the key alone, so a user gets the same version whichever
// replica serves it.
//
// Cut off from the API server, a replica keeps serving the last services it built, and stays
// ready: routing that may be a little stale is far better than none, and when the API server
// itself is away, nobody moves the weights meanwhile anyway. Status says so, and the metrics
// aviary_source_connected and aviary_source_last_sync_timestamp_seconds too.
package replica

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
)

// Options configures a Source. Config, Gateway, Base and Apply are required.
type Options struct {
	Config *rest.Config
	// Namespace is the one namespace whose Rollouts are served ("": every namespace).
	Namespace string
	// Gateway is the fleet's name, which Rollouts give in spec.trafficRouting.aviary.gateway.
	Gateway string
	// Base is the replica's own config (gateway, admin, llm; no services), defaults applied: the
	// services built from the cluster are validated together under it before Apply sees them.
	Base *config.Config
	// Apply makes services the gateway's routing (gateway.Gateway.Apply); it is called only
	// with a valid set that differs from the last one.
	Apply func([]config.Service)
	// Registerer gets the source's metrics; nil: none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Probe is how often the connection to the API server is checked (0: 5 s).
	Probe time.Duration
	Now   func() time.Time
}

// Status is what a replica knows of its source, for /readyz and the admin API.
type Status struct {
	Source    string `json:"source"` // "kubernetes"
	Gateway   string `json:"gateway"`
	Namespace string `json:"namespace,omitempty"`
	// Synced: the first full read of the cluster is done and its services applied.
	Synced bool `json:"synced"`
	// Connected: the last contact with the API server succeeded.
	Connected bool `json:"connected"`
	// LastSync is the last time the API server answered; Error is why it did not since.
	LastSync time.Time `json:"lastSync,omitzero"`
	Error    string    `json:"error,omitempty"`
	// Rollouts are the Rollouts that name the gateway; a refused one is served as it last was
	// (if ever), and its error says why.
	Rollouts []RolloutStatus `json:"rollouts"`
	Note     string          `json:"note,omitempty"`
}

// RolloutStatus is one Rollout the replica serves.
type RolloutStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Service   string `json:"service"`
	Served    bool   `json:"served"`
	Error     string `json:"error,omitempty"`
}

// Source feeds a gateway from the cluster.
type Source struct {
	o     Options
	log   *slog.Logger
	cache cache.Cache
	probe client.Client
	kick  chan struct{}
	m     sourceMetrics

	mu       sync.Mutex
	synced   bool
	conn     bool
	lastSync time.Time
	lastErr  string
	good     map[string]config.Service // by Rollout namespace/name: the last service that validated
	logged   map[string]string         // by Rollout namespace/name: the error last logged
	rollouts []RolloutStatus
	applied  []config.Service
}

// New prepares a source; Run starts it.
func New(o Options) (*Source, error) {
	if o.Config == nil || o.Gateway == "" || o.Base == nil || o.Apply == nil {
		return nil, fmt.Errorf("replica source: Config, Gateway, Base and Apply are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Probe <= 0 {
		o.Probe = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Source{o: o, log: o.Logger.With("source", "kubernetes", "gateway", o.Gateway), kick: make(chan struct{}, 1),
		good: map[string]config.Service{}}
	co := cache.Options{Scheme: k8s.Scheme(), DefaultWatchErrorHandler: s.watchError}
	if o.Namespace != "" {
		co.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
	}
	var err error
	if s.cache, err = cache.New(o.Config, co); err != nil {
		return nil, fmt.Errorf("watch the cluster at %s: %w", o.Config.Host, err)
	}
	pc := rest.CopyConfig(o.Config)
	pc.Timeout = min(o.Probe, 5*time.Second)
	if s.probe, err = client.New(pc, client.Options{Scheme: k8s.Scheme()}); err != nil {
		return nil, fmt.Errorf("connect to the cluster at %s: %w", o.Config.Host, err)
	}
	s.m = newSourceMetrics(o.Registerer)
	return s, nil
}

// Run watches the cluster and applies what it reads until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	for _, obj := range []client.Object{&v1alpha1.Rollout{}, &discoveryv1.EndpointSlice{}} {
		inf, err := s.cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.poke() },
			UpdateFunc: func(any, any) { s.poke() },
			DeleteFunc: func(any) { s.poke() },
		}); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.cache.Start(ctx) }()
	go s.probeLoop(ctx)
	s.log.Info("reading the cluster", "host", s.o.Config.Host, "namespace", s.o.Namespace)
	if !s.cache.WaitForCacheSync(ctx) {
		return <-errc // ctx ended, or the cache failed
	}
	s.contact(nil)
	s.build(ctx)
	s.mu.Lock()
	s.synced = true
	s.mu.Unlock()
	s.log.Info("first snapshot built from the cluster", "rollouts", len(s.Status().Rollouts))
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return err
		case <-s.kick:
			s.contact(nil)
			s.build(ctx)
		}
	}
}

// poke asks for a rebuild; a burst of changes makes one.
func (s *Source) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// watchError hears the informers' failed lists and watches: the API server is out of reach.
func (s *Source) watchError(_ context.Context, _ *toolscache.Reflector, err error) {
	s.contact(err)
}

// probeLoop checks the connection now and then: a watch that is quiet because nothing changes
// looks the same as one whose server is gone, until the server is asked.
func (s *Source) probeLoop(ctx context.Context) {
	t := time.NewTicker(s.o.Probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var list v1alpha1.RolloutList
		opts := []client.ListOption{client.Limit(1)}
		if s.o.Namespace != "" {
			opts = append(opts, client.InNamespace(s.o.Namespace))
		}
		s.contact(s.probe.List(ctx, &list, opts...))
	}
}

// contact records a contact with the API server: err nil, it answered.
func (s *Source) contact(err error) {
	s.mu.Lock()
	was, hadErr := s.conn, s.lastErr != ""
	if err == nil {
		s.conn, s.lastSync, s.lastErr = true, s.o.Now(), ""
	} else {
		s.conn, s.lastErr = false, err.Error()
	}
	conn, last := s.conn, s.lastSync
	s.mu.Unlock()
	s.m.observe(conn, last)
	switch {
	case was && !conn:
		s.log.Warn("cut off from the API server; serving the last snapshot until it is back", "err", err)
	case !conn && last.IsZero() && !hadErr:
		s.log.Warn("cannot reach the API server yet; not ready until the first read of the cluster (check --kubeconfig, the network, and the RBAC of the replica's ServiceAccount)", "err", err)
	case !was && conn && !last.IsZero():
		s.log.Info("connected to the API server")
	}
}

// build reads the Rollouts that name the gateway and their endpoints from the cache, and applies
// the services they make when they differ from the last.
func (s *Source) build(ctx context.Context) {
	var list v1alpha1.RolloutList
	if err := s.cache.List(ctx, &list); err != nil {
		s.log.Warn("list Rollouts from the cache", "err", err)
		return
	}
	var mine []*v1alpha1.Rollout
	for i := range list.Items {
		ro := &list.Items[i]
		if t := ro.Spec.TrafficRouting; t != nil && t.Aviary != nil && t.Aviary.Gateway == s.o.Gateway {
			mine = append(mine, ro)
		}
	}
	slices.SortFunc(mine, func(a, b *v1alpha1.Rollout) int {
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var services []config.Service
	var states []RolloutStatus
	seen := map[string]bool{}
	for _, ro := range mine {
		key := ro.Namespace + "/" + ro.Name
		seen[key] = true
		st := RolloutStatus{Namespace: ro.Namespace, Name: ro.Name, Service: k8s.GatewayServiceName(ro.Namespace, ro.Name)}
		svc, err := s.serviceOf(ctx, ro)
		if err == nil {
			err = s.check(append(slices.Clone(services), svc))
		}
		if err != nil {
			st.Error = err.Error()
			s.mu.Lock()
			last, ok := s.good[key]
			s.mu.Unlock()
			// The last good service of the Rollout goes on, unless it no longer fits beside the others.
			if ok && s.check(append(slices.Clone(services), last)) == nil {
				svc, err = last, nil
			}
		}
		if err == nil {
			services = append(services, svc)
			st.Served = true
			s.mu.Lock()
			s.good[key] = svc
			s.mu.Unlock()
		}
		states = append(states, st)
	}
	s.mu.Lock()
	for k := range s.good {
		if !seen[k] {
			delete(s.good, k) // a Rollout deleted, or moved to another gateway
		}
	}
	s.rollouts = states
	changed := !reflect.DeepEqual(services, s.applied)
	if changed {
		s.applied = services
	}
	s.mu.Unlock()
	s.m.rollouts(states)
	if changed {
		s.o.Apply(services)
		s.log.Info("snapshot applied", "services", len(services))
	}
	s.logChanges(states)
}

// logChanges logs a Rollout's refusal when it starts or changes, and its end: a rebuild follows
// every EndpointSlice change in the namespaces watched, too often to log each time.
func (s *Source) logChanges(states []RolloutStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := map[string]string{}
	for _, st := range states {
		key := st.Namespace + "/" + st.Name
		now[key] = st.Error
		switch before := s.logged[key]; {
		case st.Error != "" && st.Error != before:
			s.log.Warn("rollout not served as the cluster says", "rollout", key, "servedAsLastGood", st.Served, "err", st.Error)
		case st.Error == "" && before != "":
			s.log.Info("rollout served as the cluster says again", "rollout", key)
		}
	}
	s.logged = now
}

// check validates services as the gateway requires, under the replica's own config.
func (s *Source) check(services []config.Service) error {
	cfg := *s.o.Base
	cfg.Services = services
	if errs := cfg.Validate(); len(errs) > 0 {
		return errs
	}
	return nil
}

// serviceOf is the service of one Rollout, with its Services' ready endpoints.
func (s *Source) serviceOf(ctx context.Context, ro *v1alpha1.Rollout) (config.Service, error) {
	eps := map[string][]k8s.Endpoint{}
	for _, name := range []string{ro.Spec.StableService, ro.Spec.CanaryService} {
		if name == "" {
			continue
		}
		var list discoveryv1.EndpointSliceList
		if err := s.cache.List(ctx, &list, client.InNamespace(ro.Namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
			return config.Service{}, fmt.Errorf("list the EndpointSlices of Service %s/%s: %w", ro.Namespace, name, err)
		}
		eps[name] = ReadyEndpoints(list.Items)
	}
	return k8s.GatewayService(ro, eps)
}

// ReadyEndpoints are the ready endpoints of a Service's EndpointSlices (URL and pod), sorted by
// URL and without duplicates. A slice's port is the one named http, else its first; an endpoint
// whose ready condition is unknown counts as ready, as the EndpointSlice API asks of consumers.
func ReadyEndpoints(list []discoveryv1.EndpointSlice) []k8s.Endpoint {
	var out []k8s.Endpoint
	for _, sl := range list {
		port := slicePort(sl)
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			// The addresses of one endpoint are one pod: its first is enough.
			u := url.URL{Scheme: "http", Host: net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))}
			e := k8s.Endpoint{URL: u.String()}
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
				e.Pod = ref.Name
			}
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b k8s.Endpoint) int { return cmp.Compare(a.URL, b.URL) })
	return slices.CompactFunc(out, func(a, b k8s.Endpoint) bool { return a.URL == b.URL })
}

func slicePort(sl discoveryv1.EndpointSlice) int32 {
	var first int32
	for i, p := range sl.Ports {
		if p.Port == nil {
			continue
		}
		if p.Name != nil && *p.Name == "http" {
			return *p.Port
		}
		if i == 0 || first == 0 {
			first = *p.Port
		}
	}
	return first
}

// Ready reports whether the replica has a snapshot from the cluster to serve: true from the
// first full read on, also while it is cut off (see the package comment).
func (s *Source) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// Status reports the source's state.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Source: "kubernetes", Gateway: s.o.Gateway, Namespace: s.o.Namespace, Synced: s.synced,
		Connected: s.conn, LastSync: s.lastSync, Error: s.lastErr, Rollouts: slices.Clone(s.rollouts)}
	if st.Rollouts == nil {
		st.Rollouts = []RolloutStatus{}
	}
	switch {
	case !s.synced:
		st.Note = "reading the cluster; no snapshot yet"
	case !s.conn:
		st.Note = fmt.Sprintf("cut off from the API server since after %s; serving the last snapshot (still ready: routing that may be a little stale beats no routing)",
			s.lastSync.UTC().Format(time.RFC3339))
	}
	return st
}
