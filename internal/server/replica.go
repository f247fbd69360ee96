package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/fleet"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/k8s/replica"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// ReplicaOptions configures RunReplica: a gateway replica whose services come from a Kubernetes
// cluster (aviary serve --source kubernetes).
type ReplicaOptions struct {
	// ConfigPath is the replica's own config file: gateway (listen, timeouts, limits), admin and
	// llm settings, and no services. "": the defaults.
	ConfigPath string
	Kube       *rest.Config
	Namespace  string // "": every namespace
	Gateway    string // the fleet's name, as Rollouts give it in spec.trafficRouting.aviary.gateway
	Logger     *slog.Logger
	// Started, when set, is called once both listeners accept connections.
	Started func(gatewayAddr, adminAddr string)
	// Probe is how often the connection to the API server is checked (0: 5 s).
	Probe time.Duration
}

// replicaCore is a replica's gateway with its measurements: the standalone core without a store,
// a rollout controller, flags or experiments, since a replica keeps no state of its own.
type replicaCore struct {
	gw   *gateway.Gateway
	reg  *metrics.Registry
	llm  *llmstats.Registry
	prom *prometheus.Registry
	src  *replica.Source
}

// RunReplica serves the Rollouts of the cluster that name the gateway until ctx is done, then
// drains in-flight requests, as Run does.
func RunReplica(ctx context.Context, o ReplicaOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	// controller-runtime's cache logs through its own global logger: this process's, in slog.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	cfg, err := replicaConfig(o.ConfigPath)
	if err != nil {
		return err
	}
	adminToken, readToken := tokens(cfg.Admin)
	if err := checkExposure(cfg.Admin.Listen, adminToken); err != nil {
		return err
	}
	c, err := newReplicaCore(cfg, o, log)
	if err != nil {
		return err
	}
	defer c.gw.Close()

	ready := &readiness{gw: c.gw}
	adminSrv := c.adminServer(cfg, api.Tokens{Admin: adminToken, Read: readToken}, ready)
	gwSrv := &http.Server{
		Handler:           c.gw,
		ReadHeaderTimeout: cfg.Gateway.Timeouts.ReadHeader.Duration,
		IdleTimeout:       cfg.Gateway.Timeouts.ClientIdle.Duration,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext:       c.gw.ConnContext,
	}
	gwLn, adminLn, err := listen(cfg, c.gw)
	if err != nil {
		return err
	}
	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	errc := make(chan error, 3)
	go func() { errc <- serveGateway(gwSrv, gwLn, cfg.Gateway.TLS) }()
	go func() { errc <- serve(adminSrv, adminLn) }()
	go func() {
		if err := c.src.Run(srcCtx); err != nil && srcCtx.Err() == nil {
			errc <- fmt.Errorf("kubernetes source: %w", err)
		}
	}()
	log.Info("aviary gateway replica serving", "gateway", gwLn.Addr().String(), "admin", adminLn.Addr().String(),
		"fleet", o.Gateway, "namespace", o.Namespace, "cluster", o.Kube.Host)
	ready.serving.Store(true)
	if o.Started != nil {
		o.Started(gwLn.Addr().String(), adminLn.Addr().String())
	}
	select {
	case err := <-errc:
		_, _ = gwSrv.Close(), adminSrv.Close()
		_, _ = gwLn.Close(), adminLn.Close()
		return err
	case <-ctx.Done():
		ready.serving.Store(false)
		return shutdown(log, cfg.Gateway.Timeouts.Shutdown.Duration, gwSrv, adminSrv)
	}
}

// replicaConfig reads a replica's config file (or takes the defaults), which must name no
// services: they come from the cluster.
func replicaConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Parse([]byte("{}"))
	}
	cfg, _, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	if len(cfg.Services) > 0 {
		return nil, fmt.Errorf("config %s: services: a replica in Kubernetes source mode serves the Rollouts of the cluster; remove services (or run aviary serve without --source)", path)
	}
	return cfg, nil
}

func newReplicaCore(cfg *config.Config, o ReplicaOptions, log *slog.Logger) (*replicaCore, error) {
	c := &replicaCore{reg: metrics.NewRegistry(metrics.Options{}), llm: llmstats.New(cfg.LLM.Prices), prom: prometheus.NewRegistry()}
	c.llm.SetModels(cfg.LLM.Models)
	c.gw = gateway.New(gateway.Options{Metrics: c.reg, Logger: log, Gateway: cfg.Gateway, LLM: replicaLLM{c.llm}})
	c.prom.MustRegister(c.reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.prom.MustRegister(c.gw.Collectors()...)
	c.prom.MustRegister(c.llm.Collectors()...)
	var err error
	c.src, err = replica.New(replica.Options{Config: o.Kube, Namespace: o.Namespace, Gateway: o.Gateway, Base: cfg,
		Apply: c.gw.Apply, Registerer: c.prom, Logger: log, Probe: o.Probe})
	if err != nil {
		c.gw.Close()
		return nil, err
	}
	return c, nil
}

// adminServer is a replica's admin API: what the gateway serves, the per-version series,
// /metrics, and /readyz with the source's state. Nothing there changes routing.
func (c *replicaCore) adminServer(cfg *config.Config, t api.Tokens, ready *readiness) *http.Server {
	ready.source = c.src.Ready
	h := (&api.Server{Services: c.gw, Config: replicaConfigStatus{}, Windows: c.reg, Gatherer: c.prom,
		Fleet: fleet.NewCounter(c.reg, c.llm, nil), // what the controller's judge reads (internal/fleet)
		Ready: ready.ready, Source: func() any { return c.src.Status() }, Tokens: t,
		Browser: api.BrowserGuard{Listen: cfg.Admin.Listen, AllowedHosts: cfg.Admin.AllowedHosts}}).Handler()
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}

// replicaLLM takes what the gateway learns of LLM calls to the measurements.
type replicaLLM struct{ stats *llmstats.Registry }

func (s replicaLLM) Served(rec gateway.LLMRecord) { s.stats.Record(rec) }

// replicaConfigStatus answers the admin API's config routes: a replica's services are the
// cluster's, so there is nothing to reload.
type replicaConfigStatus struct{}

func (replicaConfigStatus) Status() api.ConfigStatus { return api.ConfigStatus{} }

func (replicaConfigStatus) Reload() api.ReloadResult {
	return api.ReloadResult{At: time.Now().UTC(), Errors: []string{
		"this replica serves the Rollouts of its cluster (aviary serve --source kubernetes): change them there, or restart the replica to read its config file again"}}
}
