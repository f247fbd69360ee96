// Package server runs Aviary standalone: it loads the config, starts the gateway and admin listeners,
// reloads on SIGHUP and on file changes (refusing an invalid config and keeping the one in force), and
// drains in-flight requests on shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/fleet"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/web"
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
	cfg, data, err := readConfig(o.ConfigPath)
	if err != nil {
		return err
	}
	adminToken, readToken := tokens(cfg.Admin)
	if err := checkExposure(cfg.Admin.Listen, adminToken); err != nil {
		return err
	}
	c, err := startCore(cfg, data, o, log)
	if err != nil {
		return err
	}
	defer c.close()

	ready := &readiness{gw: c.gw}
	adminSrv, gwSrv := c.servers(cfg, api.Tokens{Admin: adminToken, Read: readToken}, ready, log)
	gwLn, adminLn, err := listen(cfg, c.gw)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- serveGateway(gwSrv, gwLn, cfg.Gateway.TLS) }()
	go func() { errc <- serve(adminSrv, adminLn) }()
	log.Info("aviary serving", "gateway", gwLn.Addr().String(), "admin", adminLn.Addr().String(),
		"services", len(cfg.Services), "config", o.ConfigPath)

	// Reload triggers are in place before anyone learns that Aviary has started: a SIGHUP sent the
	// moment after would otherwise kill the process, and a file renamed into place would be missed.
	defer c.watch(o.WatchFile, log)()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ready.serving.Store(true)
	if o.Started != nil {
		o.Started(gwLn.Addr().String(), adminLn.Addr().String())
	}
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading config", "file", o.ConfigPath)
			c.file.Reload()
		case err := <-errc:
			// One server failed: close both, and both listeners (ServeTLS gives up on a bad certificate
			// before it takes its listener over), so that a failed Run leaves nothing listening.
			_, _ = gwSrv.Close(), adminSrv.Close()
			_, _ = gwLn.Close(), adminLn.Close()
			return err
		case <-ctx.Done():
			ready.serving.Store(false) // load balancers in front stop sending while in-flight requests drain
			return shutdown(log, c.live.shutdownTimeout(), gwSrv, adminSrv)
		}
	}
}

// watch watches the config file and, with watchFile, the flag files too; the function it returns
// stops both.
func (c *core) watch(watchFile bool, log *slog.Logger) (stop func()) {
	stopWatch := c.file.watch(watchFile)
	if !watchFile {
		return stopWatch
	}
	stopFlags, err := c.flags.Watch()
	if err != nil {
		log.Warn("cannot watch the flag files; reload the config (SIGHUP) to read them again", "err", err)
		return stopWatch
	}
	return func() { stopFlags(); stopWatch() }
}

// readConfig reads and parses the config file, defaults applied; data is the file as read.
func readConfig(path string) (*config.Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("config %s is not valid:\n%w", path, err)
	}
	return cfg, data, nil
}

// servers are the admin API's HTTP server and the gateway's, over the core c.
func (c *core) servers(cfg *config.Config, t api.Tokens, ready *readiness, log *slog.Logger) (adminSrv, gwSrv *http.Server) {
	ofrepGW, ofrepAdmin := ofrepHandlers(cfg, c, t.Admin, t.Read, log)
	adminSrv = &http.Server{
		Handler: (&api.Server{Services: c.gw, Config: c.file, Rollouts: c.specs, Analyses: c.judge, Windows: c.reg, Fleet: fleet.NewCounter(c.reg, c.llm, nil), UI: web.Handler(),
			Feedback: c.qual, Hub: c.hub, Gatherer: c.prom,
			Flags: c.flags, OFREP: ofrepAdmin, OFREPPrefix: cfg.Flags.OFREP.Prefix, Exposures: c.store, Experiments: c.exps,
			Ready: ready.ready, Tokens: t, Log: log,
			Browser: api.BrowserGuard{Listen: cfg.Admin.Listen, AllowedHosts: cfg.Admin.AllowedHosts}}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	gwSrv = &http.Server{
		Handler:           withOFREP(ofrepGW, c.gw),
		ReadHeaderTimeout: cfg.Gateway.Timeouts.ReadHeader.Duration,
		IdleTimeout:       cfg.Gateway.Timeouts.ClientIdle.Duration,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext:       c.gw.ConnContext,
	}
	gwSrv.RegisterOnShutdown(ofrepGW.Shutdown) // browsers' change streams must not hold the drain
	return adminSrv, gwSrv
}

// listen opens the gateway's and the admin API's listeners, or neither.
func listen(cfg *config.Config, gw *gateway.Gateway) (gwLn, adminLn net.Listener, err error) {
	rawLn, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway listener on %s: %w; choose a free address in gateway.listen", cfg.Gateway.Listen, err)
	}
	gwLn = gw.Listener(rawLn, cfg.Gateway.TLS == nil)
	adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		gwLn.Close()
		return nil, nil, fmt.Errorf("admin listener on %s: %w; choose a free address in admin.listen", cfg.Admin.Listen, err)
	}
	return gwLn, adminLn, nil
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

// readiness is what /readyz answers: ready once serving and once every actively checked endpoint
// has had its first check (then for good: an endpoint added by a reload does not make the whole
// gateway unready).
type readiness struct {
	gw               *gateway.Gateway
	serving, checked atomic.Bool
	// source, when set, must hold too: a gateway replica has read its services from the cluster.
	source func() bool
}

func (r *readiness) ready() bool {
	if r.source != nil && !r.source() {
		return false // no snapshot yet; its endpoints' first checks come after it
	}
	if r.serving.Load() && !r.checked.Load() && r.gw.HealthChecked() {
		r.checked.Store(true)
	}
	return r.serving.Load() && r.checked.Load()
}
