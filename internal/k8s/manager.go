// Package k8s is Aviary's Kubernetes mode: the adapters that let the same controller core
// (internal/rollout) and judge (internal/analysis) drive clusters. A Rollout resource
// (api/v1alpha1) is converted into the core's config types; its status holds the core's state;
// ReplicaSets made from the user's Deployment template are the versions' workloads; a Gateway API
// HTTPRoute (or, without one, replica counts) is the traffic router. The core packages import
// nothing from here, nor any Kubernetes type.
//
// The controller is built on controller-runtime: a manager with leader election through a Lease,
// a metrics endpoint (Prometheus exposition) and health probes.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
)

// Scheme knows the types the controller reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// Options configures the controller.
type Options struct {
	Config *rest.Config
	// Namespace limits the controller to one namespace ("" watches all).
	Namespace string
	// MetricsAddr and ProbeAddr serve /metrics and /healthz, /readyz ("0" turns one off).
	MetricsAddr string
	ProbeAddr   string
	// LeaderElection lets several replicas run with one leading, through the Lease LeaderElectionID
	// in LeaderElectionNamespace. The ID is required with it (`aviary controller` defaults its
	// --leader-election-id flag to aviary-controller).
	LeaderElection          bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election (0: controller-runtime's).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Interval is how often a rollout in flight is looked at again (0: one second).
	Interval time.Duration
	Logger   *slog.Logger
	// Elected, when set, is called once this replica leads (or at once without leader election).
	Elected func()
	// Extra, when set, adds more to the manager before it starts: `aviary controller` adds its
	// admin listener (internal/k8s/admin), which this package cannot import. Reports reads the
	// analysis runs this process judges (those of the Rollouts it reconciles while it leads).
	Extra func(mgr ctrl.Manager, reports Reports) error
}

// Run runs the controller until ctx is done.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.LeaderElection && o.LeaderElectionID == "" {
		return errors.New("leader election needs the name of its Lease: set --leader-election-id (LeaderElectionID), such as aviary-controller")
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	mgr, err := ctrl.NewManager(o.Config, managerOptions(o))
	if err != nil {
		return fmt.Errorf("start the controller manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	if o.MetricsAddr != "0" {
		if err := serveGauges(mgr.GetClient()); err != nil {
			return fmt.Errorf("register the rollout gauges: %w", err)
		}
	}
	r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("aviary"), Logger: log, Interval: o.Interval}
	defer r.Close()
	if o.Extra != nil {
		if err := o.Extra(mgr, r.Reports); err != nil {
			return err
		}
	}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Rollout{}).
		Owns(&appsv1.ReplicaSet{}).
		Watches(&appsv1.Deployment{}, byDeployment(mgr.GetClient())).
		Named("rollout").
		// Several managers may run in one process (tests, replicas in one binary): their
		// controllers share a name on purpose.
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up the rollout controller: %w", err)
	}
	if o.Elected != nil {
		go func() {
			select {
			case <-mgr.Elected():
				o.Elected()
			case <-ctx.Done():
			}
		}()
	}
	log.Info("aviary controller starting", "namespace", orAll(o.Namespace), "leaderElection", o.LeaderElection,
		"metrics", o.MetricsAddr, "probes", o.ProbeAddr)
	return mgr.Start(ctx)
}

// managerOptions are the controller manager's options for o.
func managerOptions(o Options) ctrl.Options {
	mo := ctrl.Options{
		Scheme:                        Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	}
	for _, d := range []struct {
		v   time.Duration
		dst **time.Duration
	}{{o.LeaseDuration, &mo.LeaseDuration}, {o.RenewDeadline, &mo.RenewDeadline}, {o.RetryPeriod, &mo.RetryPeriod}} {
		if d.v > 0 {
			v := d.v
			*d.dst = &v
		}
	}
	if o.Namespace != "" {
		mo.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{o.Namespace: {}}}
	}
	return mo
}

// byDeployment maps a Deployment to the Rollouts that name it, so that a change of its template
// reaches them.
func byDeployment(c client.Client) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list v1alpha1.RolloutList
		if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, ro := range list.Items {
			if ro.Spec.WorkloadRef.Name == obj.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
			}
		}
		return out
	})
}

func orAll(ns string) string {
	if ns == "" {
		return "(all)"
	}
	return ns
}
