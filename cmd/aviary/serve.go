package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/server"
)

// serveFlags are the flags of `aviary serve`.
type serveFlags struct {
	file                string
	logLevel, logFormat string
	noWatch             bool
	// Kubernetes source mode: the services come from the Rollouts of a cluster.
	source  string
	gateway string
	kube    kubeOptions
	probe   time.Duration
}

func newServe() *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway and the admin API from a config file, or as a gateway replica of a cluster",
		Long: `Run the gateway and the admin API. The config reloads on SIGHUP and when the file changes;
an invalid new config is refused (errors logged and shown at GET /api/v1/config) and the running one
stays in force. SIGINT or SIGTERM drains in-flight requests, then stops.

With --source kubernetes --gateway NAME, it runs as one replica of Aviary's gateway fleet in a
cluster: it serves the Rollouts whose spec.trafficRouting.aviary.gateway is NAME (in the namespace
-n, or in every namespace), each version on the ready endpoints of its Service, as the Rollout's
status.routing says (aviary controller writes it). It keeps no state and writes nothing to the
cluster. The config file, optional then, gives the gateway, admin and llm settings and no services.
Cut off from the API server, it keeps serving its last snapshot; /readyz and the metric
aviary_source_connected say so. The cluster is found as aviary controller finds it (--kubeconfig,
else $KUBECONFIG, else the in-cluster config, else ~/.kube/config).`,
		Example: `  aviary serve -c aviary.yaml
  # A gateway replica in a pod (see deploy/gateway.yaml):
  aviary serve --source kubernetes --gateway aviary -c /etc/aviary/gateway.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(f.logLevel, f.logFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch f.source {
			case "file":
				if f.gateway != "" || f.kube.set() {
					return fmt.Errorf("--gateway, --namespace, --kubeconfig and --context need --source kubernetes")
				}
				return server.Run(ctx, server.Options{ConfigPath: f.file, Logger: log, WatchFile: !f.noWatch})
			case "kubernetes":
				o, err := f.replicaOptions(cmd.Flags().Changed("config"))
				if err != nil {
					return err
				}
				o.Logger = log
				return server.RunReplica(ctx, o)
			}
			return fmt.Errorf("--source %q: want file (the config file's services) or kubernetes (a gateway replica of a cluster)", f.source)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "config", "c", "aviary.yaml", "config file (with --source kubernetes: optional, and without services)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fl.BoolVar(&f.noWatch, "no-watch", false, "do not reload when the config file changes (SIGHUP still does)")
	fl.StringVar(&f.source, "source", "file", "where the services come from: file (the config file) or kubernetes (the Rollouts of a cluster that name --gateway)")
	fl.StringVar(&f.gateway, "gateway", "", "with --source kubernetes: the gateway fleet's name, as Rollouts give it in spec.trafficRouting.aviary.gateway")
	fl.DurationVar(&f.probe, "probe-interval", 5*time.Second, "with --source kubernetes: how often the connection to the API server is checked")
	addKubeFlags(cmd, false, &f.kube, "with --source kubernetes: serve the Rollouts of this namespace only (default every namespace)")
	return cmd
}

// replicaOptions are the options of a gateway replica; configSet says whether -c was given.
func (f *serveFlags) replicaOptions(configSet bool) (server.ReplicaOptions, error) {
	if f.gateway == "" {
		return server.ReplicaOptions{}, fmt.Errorf("--gateway: name the gateway fleet, as Rollouts give it in spec.trafficRouting.aviary.gateway")
	}
	if f.probe <= 0 {
		return server.ReplicaOptions{}, fmt.Errorf("--probe-interval %s: want a positive duration, such as 5s", f.probe)
	}
	// The namespace is -n alone: a kubeconfig context's namespace does not narrow what is served.
	cfg, _, err := f.kube.load()
	if err != nil {
		return server.ReplicaOptions{}, err
	}
	o := server.ReplicaOptions{Kube: cfg, Namespace: f.kube.namespace, Gateway: f.gateway, Probe: f.probe}
	if configSet {
		o.ConfigPath = f.file
	}
	return o, nil
}
