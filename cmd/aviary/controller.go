package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
)

// controllerFlags are the flags of `aviary controller`.
type controllerFlags struct {
	kube                    kubeOptions // its namespace is the one watched ("": all)
	metricsAddr, probeAddr  string
	leaderElect             bool
	leaderElectionNamespace string
	leaderElectionID        string
	interval                time.Duration
	logLevel, logFormat     string
	admin                   adminFlags
	fleetTokenFile          string        // the gateway fleet's read token (else $AVIARY_GATEWAY_TOKEN)
	fleetTimeout            time.Duration // how long a look waits for the replicas' counts
	// run runs the controller: k8s.Run, or in tests a function that keeps the options.
	run func(context.Context, k8s.Options) error
}

func newController() *cobra.Command {
	return newControllerWith(&controllerFlags{run: func(ctx context.Context, o k8s.Options) error {
		if err := checkCluster(o.Config); err != nil {
			return err
		}
		return k8s.Run(ctx, o)
	}})
}

// checkCluster fails fast when the cluster cannot be reached or does not know Rollouts: the
// manager would log the same errors again and again, and never start.
func checkCluster(cfg *rest.Config) error {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 15 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("connect to the cluster at %s: %w", cfg.Host, err)
	}
	gv := v1alpha1.GroupVersion.String()
	_, err = dc.ServerResourcesForGroupVersion(gv)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("the cluster at %s does not know Rollouts (%s): install Aviary's CRDs first", cfg.Host, gv)
	case err != nil:
		return fmt.Errorf("reach the cluster at %s: %w; check --kubeconfig and --context", cfg.Host, err)
	}
	return nil
}

func newControllerWith(f *controllerFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Kubernetes controller that carries out Rollouts (aviary.dev/v1alpha1)",
		Long: `Run Aviary's Kubernetes controller. It watches Rollout resources (aviary.dev/v1alpha1) and runs
the same rollout controller and judge as aviary serve on them: the stable and the new version run as
ReplicaSets made from the Deployment's pod template, traffic moves through a Gateway API HTTPRoute
or Aviary's own gateway fleet (aviary serve --source kubernetes, which reads the Rollout's
status.routing), or, without either, by replica counts, and the state is kept in each Rollout's status, so a
restarted or newly elected controller goes on where the last one stopped. The commands of
aviary rollout -n NAMESPACE (promote, abort, ...) reach it through the Rollout's aviary.dev/command
annotation.

The cluster is found from --kubeconfig, else $KUBECONFIG, else the in-cluster config of the
pod's service account, else ~/.kube/config. Several replicas may run: with
--leader-elect (the default) one leads through a Lease and the others wait to take over. Metrics
(Prometheus) are served at --metrics-bind-address/metrics, and the probes /healthz and /readyz at
--health-probe-bind-address; "0" turns either off. SIGINT or SIGTERM gives up the lease and stops.

Every replica serves the dashboard at --admin-bind-address/ui/ and the admin API it uses
(/api/v1, as aviary serve's) over the Rollouts of all namespaces it watches; a service there is
NAMESPACE/NAME. The admin token (AVIARY_ADMIN_TOKEN or --admin-token-file) may steer rollouts,
the read token (AVIARY_READ_TOKEN or --read-token-file) only read; without an admin token the
address must be a loopback one, reached with kubectl port-forward.

Rollouts routed through Aviary's gateway fleet (trafficRouting.aviary) are judged on the sum of the
replicas' counts, read from their admin API with the gateway's read token (--fleet-token-file,
else $AVIARY_GATEWAY_TOKEN). A replica that has not answered within --fleet-timeout is left out
of that look, never read as zero errors; what it counted arrives with its next answer.`,
		Example: `  # In a cluster, as a Deployment's container command:
  aviary controller --log-format json
  # On a laptop, against the current kubeconfig context, one namespace, no leader election:
  aviary controller --namespace shop --leader-elect=false --metrics-bind-address 0
  # The dashboard for everyone who can reach the pod, behind tokens from a Secret's files:
  aviary controller --admin-bind-address :8082 --admin-token-file /etc/aviary/admin --read-token-file /etc/aviary/read`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return f.run(ctx, o)
		},
	}
	fl := cmd.Flags()
	addKubeFlags(cmd, false, &f.kube, "watch only this namespace (default all namespaces)")
	fl.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", `address of the /metrics endpoint; "0" turns it off`)
	fl.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", `address of /healthz and /readyz; "0" turns them off`)
	fl.BoolVar(&f.leaderElect, "leader-elect", true, "let several replicas run with one leading, through a Lease")
	fl.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "",
		`namespace of the Lease (default the pod's namespace, else "default")`)
	fl.StringVar(&f.leaderElectionID, "leader-election-id", "aviary-controller", "name of the Lease")
	fl.DurationVar(&f.interval, "interval", time.Second, "how often a rollout in flight is looked at again")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fl.StringVar(&f.fleetTokenFile, "fleet-token-file", "",
		"file holding the gateway fleet's read token (a Secret's volume; default $AVIARY_GATEWAY_TOKEN)")
	fl.DurationVar(&f.fleetTimeout, "fleet-timeout", 2*time.Second,
		"how long a look at the gateway fleet waits for the replicas' counts; those that have not answered are left out of it")
	f.admin.add(cmd)
	return cmd
}

// options turns the flags into the controller's options; every error names its flag.
func (f *controllerFlags) options() (k8s.Options, error) {
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return k8s.Options{}, err
	}
	if f.interval <= 0 {
		return k8s.Options{}, fmt.Errorf("--interval %s: want a positive duration, such as 1s", f.interval)
	}
	if f.leaderElect && f.leaderElectionID == "" {
		return k8s.Options{}, errors.New("--leader-election-id: name the Lease, such as aviary-controller")
	}
	if f.fleetTimeout <= 0 {
		return k8s.Options{}, fmt.Errorf("--fleet-timeout %s: want a positive duration, such as 2s", f.fleetTimeout)
	}
	fleetToken, err := tokenFrom("--fleet-token-file", f.fleetTokenFile, "AVIARY_GATEWAY_TOKEN")
	if err != nil {
		return k8s.Options{}, err
	}
	// The watched namespace is -n alone: a kubeconfig context's namespace does not narrow it.
	cfg, _, err := f.kube.load()
	if err != nil {
		return k8s.Options{}, err
	}
	// controller-runtime's own defaults for a controller; client-go's (5 per second) are a CLI's.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 20, 30
	}
	extra, err := f.admin.extra(log, f.kube.namespace)
	if err != nil {
		return k8s.Options{}, err
	}
	return k8s.Options{
		Extra:                   extra,
		Config:                  cfg,
		Namespace:               f.kube.namespace,
		MetricsAddr:             f.metricsAddr,
		ProbeAddr:               f.probeAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        f.leaderElectionID,
		LeaderElectionNamespace: firstSet(f.leaderElectionNamespace, f.kube.podNamespace(), "default"),
		Interval:                f.interval,
		Logger:                  log,
		Fleet:                   k8s.FleetOptions{Token: fleetToken, Timeout: f.fleetTimeout},
	}, nil
}
