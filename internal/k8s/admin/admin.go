// Package admin is the admin listener of `aviary controller`: the dashboard (internal/web) and
// the admin API it calls, over every Rollout the controller watches, in all namespaces. It serves
// internal/api's own handlers (the same JSON, tokens and browser guard as `aviary serve`) over
// source, which reads Rollouts from the controller manager's cache: a Rollout ns/name is the
// service "ns/name", its status is the state, and a command is written into its
// aviary.dev/command annotation exactly as `aviary rollout -n NS ACTION NAME` writes it. The live
// event stream comes from the cache's watch on Rollouts (transitions).
//
// Every replica serves it, leader or not: reads come from the replica's cache, and commands go
// through the annotation, which only the leader carries out. This package must never change a
// Rollout in any other way, nor write its status: the controller is the one writer.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/web"
)

// DefaultCommandTimeout is how long a command waits for the controller to take it, as the CLI.
const DefaultCommandTimeout = 30 * time.Second

// Options configure the admin listener.
type Options struct {
	// Addr is host:port to listen on.
	Addr string
	// Namespace is the one the controller watches ("" all): the past events are read from it.
	Namespace string
	// Tokens guard the API as in `aviary serve`: the admin token may change, the read token only
	// read; with neither, Addr must be a loopback address (CheckExposure).
	Tokens api.Tokens
	// AllowedHosts are more names (or name:port) the API is reached by for changes, e.g. an
	// Ingress host (api.BrowserGuard).
	AllowedHosts []string
	// CommandTimeout bounds the wait for the controller to take a command (0: DefaultCommandTimeout).
	CommandTimeout time.Duration
	Logger         *slog.Logger
	// Gatherer is served at /metrics (nil: controller-runtime's registry, the controller's metrics).
	Gatherer prometheus.Gatherer
	Now      func() time.Time
}

// CheckExposure refuses an API that anyone on the network could change: with no admin token the
// address must be a loopback one, as `aviary serve` requires of admin.listen.
func CheckExposure(addr string, t api.Tokens) error {
	if t.Admin != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin-bind-address %q is not host:port, such as 127.0.0.1:8082", addr)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--admin-bind-address %s is not a loopback address and there is no admin token: anyone who can reach it "+
		"could steer rollouts; set AVIARY_ADMIN_TOKEN or --admin-token-file (from a Secret), or listen on 127.0.0.1:8082 "+
		"and reach it with kubectl port-forward, or turn it off with 0", addr)
}

// Add returns what adds the admin listener to a controller manager (k8s.Options.Extra); reports
// are the analysis runs the process judges, shown with their evidence while it leads. It listens
// at once, so that a taken address is an error before the manager starts.
func Add(o Options) func(ctrl.Manager, k8s.Reports) error {
	return func(mgr ctrl.Manager, reports k8s.Reports) error {
		if err := CheckExposure(o.Addr, o.Tokens); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", o.Addr)
		if err != nil {
			return fmt.Errorf("admin listener on %s: %w; choose a free address with --admin-bind-address, or 0 to turn it off", o.Addr, err)
		}
		srv := newServer(mgr, reports, o)
		if err := mgr.Add(&runner{srv: srv, ln: ln, mgr: mgr, namespace: o.Namespace}); err != nil {
			ln.Close()
			return err
		}
		return nil
	}
}

// server is the admin listener's parts.
type server struct {
	src  *source
	hub  *api.Hub
	http *http.Server
	log  *slog.Logger
	now  func() time.Time
	// tokens says which tokens guard the API, for the log.
	tokens string
}

func newServer(mgr ctrl.Manager, reports k8s.Reports, o Options) *server {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	timeout := o.CommandTimeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	g := o.Gatherer
	if g == nil {
		g = ctrlmetrics.Registry
	}
	src := &source{c: mgr.GetClient(), local: reports, log: &eventLog{}, now: now, timeout: timeout}
	hub := api.NewHub()
	h := (&api.Server{Services: src, Config: kubeConfig{started: now(), now: now}, Rollouts: src, Analyses: src, Hub: hub,
		Tokens: o.Tokens, Browser: api.BrowserGuard{Listen: o.Addr, AllowedHosts: o.AllowedHosts}, Gatherer: g,
		UI: web.Handler()}).Handler()
	return &server{src: src, hub: hub, log: log, now: now, tokens: tokensNote(o.Tokens),
		http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
}

// publish numbers events, keeps them for the API, and streams them.
func (s *server) publish(evs []rollout.Event) {
	if len(evs) > 0 {
		s.hub.Publish(s.src.log.add(evs))
	}
}

// runner serves the admin listener as one of the manager's runnables, on every replica.
type runner struct {
	srv       *server
	ln        net.Listener
	mgr       ctrl.Manager
	namespace string
}

// NeedLeaderElection: every replica serves the dashboard.
func (r *runner) NeedLeaderElection() bool { return false }

// Start reads the past events, watches Rollouts for new ones, then serves until ctx ends.
func (r *runner) Start(ctx context.Context) error {
	defer r.ln.Close()
	// Without them the pages still work, from the events to come: a refusal is logged, not fatal.
	if past, err := pastEvents(ctx, r.mgr.GetAPIReader(), r.namespace); err != nil {
		r.srv.log.Warn("the dashboard starts without the past events; give the controller list on events.k8s.io events "+
			"(deploy/rbac.yaml)", "err", err)
	} else {
		r.srv.src.log.add(past)
	}
	inf, err := r.mgr.GetCache().GetInformer(ctx, &v1alpha1.Rollout{})
	if err != nil {
		return fmt.Errorf("watch Rollouts for the admin listener: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{UpdateFunc: func(oldObj, newObj any) {
		old, ok1 := oldObj.(*v1alpha1.Rollout)
		cur, ok2 := newObj.(*v1alpha1.Rollout)
		if ok1 && ok2 {
			r.srv.publish(transitions(old, cur, r.srv.now()))
		}
	}})
	if err != nil {
		return fmt.Errorf("watch Rollouts for the admin listener: %w", err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	r.srv.log.Info("admin listener serving the dashboard and the API", "address", r.ln.Addr().String(), "ui", "/ui/",
		"tokens", r.srv.tokens)
	errc := make(chan error, 1)
	go func() { errc <- r.srv.http.Serve(r.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin listener: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Event streams never end by themselves: cut them after the grace period.
	if err := r.srv.http.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_ = r.srv.http.Close()
	return nil
}

// tokensNote says which tokens guard the API, never the tokens.
func tokensNote(t api.Tokens) string {
	switch {
	case t.Admin != "" && t.Read != "":
		return "admin and read"
	case t.Admin != "":
		return "admin"
	case t.Read != "":
		return "read"
	}
	return "none (open, on a loopback address)"
}
