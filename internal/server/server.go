// Package server runs Aviary standalone: it loads the config, starts the gateway and admin listeners,
// reloads on SIGHUP and on file changes (refusing an invalid config and keeping the one in force), and
// drains in-flight requests on shutdown.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/notify"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// Options configures Run.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// Started, when set, is called once both listeners accept connections, with their addresses
	// (useful with port 0).
	Started func(gatewayAddr, adminAddr string)
	// WatchFile reloads when the config file changes (SIGHUP always reloads).
	WatchFile bool
	// TickInterval is how often the rollout controller looks at its rollouts (0: 250 ms).
	TickInterval time.Duration
}

// Run serves until ctx is done, then drains in-flight requests (up to gateway.timeouts.shutdown).
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	data, err := os.ReadFile(o.ConfigPath)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return fmt.Errorf("config %s is not valid:\n%w", o.ConfigPath, err)
	}
	adminToken, readToken := tokens(cfg.Admin)
	if err := checkExposure(cfg.Admin.Listen, adminToken); err != nil {
		return err
	}
	st, err := store.Open(storePath(cfg, o.ConfigPath), store.Options{MaxEvents: cfg.Storage.MaxEvents})
	if err != nil {
		return err
	}
	defer st.Close()
	reg := metrics.NewRegistry(metrics.Options{})
	gw := gateway.New(gateway.Options{Metrics: reg, Logger: log, Gateway: cfg.Gateway})
	defer gw.Close()

	prom := prometheus.NewRegistry()
	prom.MustRegister(reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prom.MustRegister(gw.Collectors()...)

	hub := api.NewHub()
	hooks := notify.NewWebhooks(notify.WebhookOptions{Hooks: cfg.Notifications.Webhooks, Logger: log, Metrics: prom})
	defer hooks.Close()
	gates := notify.NewGates(notify.GateOptions{Logger: log})
	defer gates.Close()
	judge := analysis.New(analysis.Options{Metrics: reg, Templates: cfg.Analysis.Templates, History: cfg.Analysis.History, Logger: log})
	defer judge.Close()
	ctrl, err := rollout.NewController(rollout.Options{
		Store: st, Router: gw, Health: gatewayHealth{gw}, Gates: gates, Analysis: judge, Logger: log,
		OnEvents: func(evs []rollout.Event) { hub.Publish(evs); hooks.Send(evs) },
	})
	if err != nil {
		return err
	}
	prom.MustRegister(rolloutCollector{ctrl})
	rl := &reloader{path: o.ConfigPath, log: log, gw: gw, ctrl: ctrl, store: st, judge: judge, current: cfg, seen: data, loadedAt: time.Now().UTC()}
	// The persisted plans are served from the first request on.
	rl.mu.Lock()
	errs := rl.applyServices(cfg, nil, "config")
	rl.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("config %s does not fit the stored rollouts:\n%s", o.ConfigPath, strings.Join(errs, "\n"))
	}
	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	ctrlDone := make(chan struct{})
	go func() { defer close(ctrlDone); ctrl.Run(ctrlCtx, cmp.Or(o.TickInterval, 250*time.Millisecond)) }()
	defer func() { stopCtrl(); <-ctrlDone }()

	var ready atomic.Bool
	adminSrv := &http.Server{
		Handler: (&api.Server{Services: gw, Config: rl, Rollouts: rl, Analyses: judge, Hub: hub, Gatherer: prom, Ready: ready.Load,
			Tokens: api.Tokens{Admin: adminToken, Read: readToken}}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	gwSrv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: cfg.Gateway.Timeouts.ReadHeader.Duration,
		IdleTimeout:       cfg.Gateway.Timeouts.ClientIdle.Duration,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	gwLn, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		return fmt.Errorf("gateway listener on %s: %w; choose a free address in gateway.listen", cfg.Gateway.Listen, err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		gwLn.Close()
		return fmt.Errorf("admin listener on %s: %w; choose a free address in admin.listen", cfg.Admin.Listen, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- serveGateway(gwSrv, gwLn, cfg.Gateway.TLS) }()
	go func() { errc <- serve(adminSrv, adminLn) }()
	log.Info("aviary serving", "gateway", gwLn.Addr().String(), "admin", adminLn.Addr().String(),
		"services", len(cfg.Services), "config", o.ConfigPath)

	// Reload triggers are in place before anyone learns that Aviary has started: a SIGHUP sent the
	// moment after would otherwise kill the process, and a file renamed into place would be missed.
	stopWatch := rl.watch(o.WatchFile)
	defer stopWatch()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ready.Store(true)
	if o.Started != nil {
		o.Started(gwLn.Addr().String(), adminLn.Addr().String())
	}
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading config", "file", o.ConfigPath)
			rl.Reload()
		case err := <-errc:
			// One server failed: close both, and both listeners (ServeTLS gives up on a bad certificate
			// before it takes its listener over), so that a failed Run leaves nothing listening.
			_, _ = gwSrv.Close(), adminSrv.Close()
			_, _ = gwLn.Close(), adminLn.Close()
			return err
		case <-ctx.Done():
			ready.Store(false) // load balancers in front stop sending while in-flight requests drain
			return shutdown(log, rl.timeout(), gwSrv, adminSrv)
		}
	}
}

// serveGateway serves plain HTTP/1.1, or with TLS both HTTP/2 and HTTP/1.1 (negotiated by ALPN).
func serveGateway(s *http.Server, ln net.Listener, t *config.TLS) error {
	if t == nil {
		return serve(s, ln)
	}
	s.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	err := s.ServeTLS(ln, t.CertFile, t.KeyFile)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("serve TLS with gateway.tls certFile %q and keyFile %q: %w", t.CertFile, t.KeyFile, err)
	}
	return nil
}

func serve(s *http.Server, ln net.Listener) error {
	err := s.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdown stops accepting, lets in-flight requests finish (up to the timeout), then closes.
func shutdown(log *slog.Logger, timeout time.Duration, gw, admin *http.Server) error {
	log.Info("shutting down: draining in-flight requests", "timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := gw.Shutdown(ctx)
	_ = admin.Close()
	if err != nil {
		_ = gw.Close()
		return fmt.Errorf("drain in-flight requests: %w", err)
	}
	log.Info("stopped")
	return nil
}
