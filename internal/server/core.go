package server

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/flags/exposure"
	"aviary.dev/aviary/internal/flags/ofrep"
	"aviary.dev/aviary/internal/flags/source"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/notify"
	"aviary.dev/aviary/internal/quality"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
	"aviary.dev/aviary/internal/telemetry"
)

// core is everything behind the listeners: the store, the gateway and its measurements, the
// analyzer, the notifiers, and the rollout controller with its loop running.
type core struct {
	store *store.Store
	gw    *gateway.Gateway
	prom  *prometheus.Registry
	reg   *metrics.Registry // the gateway's per-version windows
	hub   *api.Hub
	hooks *notify.Webhooks
	gates *notify.Gates
	judge *analysis.Analyzer
	llm   *llmstats.Registry
	qual  *quality.Quality
	tel   *telemetry.Telemetry
	ctrl  *rollout.Controller
	live  *live       // the config in force, and the services it makes with the applied specs
	file  *configFile // the config file: watch, read, reload
	specs *specs      // the specs applied through the API, and the rollouts: the API's backend
	flags *source.Source
	ofrep *ofrep.Metrics
	eval  *flags.Evaluator // every evaluation's: OFREP and the gateway's per-request flags
	// flagRolls binds the services' flags to the gateway and the flag rollouts to the flags.
	flagRolls *flagRollouts
	exposures *exposure.Recorder          // who was given which variant first
	exps      *experiment.Manager         // experiments: state, tracked events, results
	expPlace  *experimentPlacer           // places the experiments' units, judges their guardrails
	reqs      *experiment.RequestRecorder // the units' requests, for the experiments' builtin metrics

	stopCtrl func()
}

// startCore opens the store, builds the parts, serves the stored plans (before any listener
// accepts a request) and starts the controller's loop. On error it leaves nothing open.
func startCore(cfg *config.Config, data []byte, o Options, log *slog.Logger) (*core, error) {
	c := &core{stopCtrl: func() {}}
	if err := c.start(cfg, data, o, log); err != nil {
		c.close() // c, not nil: close stops what start had opened
		return nil, err
	}
	return c, nil
}

// start opens and starts c's parts in order; on error, the parts opened so far are set in c for
// close to stop.
func (c *core) start(cfg *config.Config, data []byte, o Options, log *slog.Logger) (err error) {
	if c.store, err = store.Open(cfg.StorePath(o.ConfigPath), store.Options{MaxEvents: cfg.Storage.MaxEvents}); err != nil {
		return err
	}
	reg := metrics.NewRegistry(metrics.Options{})
	c.reg = reg
	c.reqs = experiment.NewRequestRecorder(time.Now())
	c.llm = llmstats.New(cfg.LLM.Prices)
	c.llm.SetModels(cfg.LLM.Models)
	c.prom = prometheus.NewRegistry()
	if c.tel, err = telemetry.New(context.Background(), telemetryOptions(cfg.Telemetry, log)); err != nil {
		return fmt.Errorf("telemetry.otlp: %w", err)
	}
	c.qual = quality.New(quality.Options{Window: cfg.LLM.FeedbackWindow.Duration, MaxEntries: cfg.LLM.FeedbackEntries, Scores: cfg.LLM.FeedbackScores,
		Evaluators: evaluators(cfg.Services), Logger: log, Metrics: c.prom, OnScore: c.tel.Evaluation})
	c.gw = gateway.New(gateway.Options{Metrics: reg, Logger: log, Gateway: cfg.Gateway,
		LLM: llmSink{stats: c.llm, quality: c.qual, tel: c.tel, reqs: c.reqs}, Placed: c.versionExposed, Served: c.unitServed})
	c.prom.MustRegister(reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.prom.MustRegister(c.gw.Collectors()...)
	c.prom.MustRegister(c.llm.Collectors()...)
	c.hub = api.NewHub()
	c.hooks = notify.NewWebhooks(notify.WebhookOptions{Hooks: cfg.Notifications.Webhooks, Logger: log, Metrics: c.prom})
	c.gates = notify.NewGates(notify.GateOptions{Logger: log})
	c.judge = analysis.New(analysis.Options{Metrics: reg, LLM: c.llm, Quality: c.qual, Templates: analysisTemplates(cfg), History: cfg.Analysis.History, Logger: log,
		Evidence: c.store}) // the rollouts' tests resume after a restart
	publish := func(evs []rollout.Event) { c.hub.Publish(evs); c.hooks.Send(evs) }
	if c.flags, err = source.New(source.Options{Store: c.store, Files: flagFiles(cfg, o.ConfigPath), Logger: log, OnEvents: publish}); err != nil {
		return err
	}
	c.exposures = exposure.New(exposure.Options{Sink: c.store, Logger: log, Registry: c.prom, Track: c.trackOf})
	c.eval = &flags.Evaluator{Now: time.Now, Exposed: c.exposures.Exposed}
	c.flagRolls = &flagRollouts{gw: c.gw, src: c.flags, ev: c.eval, log: log}
	c.ctrl, err = rollout.NewController(rollout.Options{
		Store: c.store, Router: flagRouter{gw: c.gw, fr: c.flagRolls}, Health: flagHealth{gw: gatewayHealth{c.gw}, src: c.flags},
		Gates: c.gates, Analysis: c.judge, Logger: log, OnEvents: publish,
	})
	if err != nil {
		return err
	}
	c.eval.Placer = placer{gw: c.gw, ctrl: c.ctrl}
	c.prom.MustRegister(rolloutCollector{c.ctrl})
	c.ofrep = ofrep.NewMetrics(c.prom)
	c.live = &live{log: log, ctrl: c.ctrl, store: c.store, judge: c.judge, flags: c.flags, current: cfg}
	c.file = &configFile{live: c.live, path: o.ConfigPath, llm: c.llm, quality: c.qual, flags: c.flags, seen: data, loadedAt: time.Now().UTC()}
	c.specs = &specs{live: c.live, file: o.ConfigPath}
	c.exps = experiment.New(experiment.Options{Store: c.store, Specs: c.live.experiments, Now: time.Now,
		Ship: func(service, version, by string) error {
			_, err := c.specs.Start(service, api.StartRequest{Version: version}, by)
			return err
		},
		ShipFlag: c.specs.ShipFlag, Judge: c.judge, OnChange: c.experimentsChanged(publish)})
	c.expPlace = &experimentPlacer{exps: c.exps, gw: c.gw, flags: c.flagRolls, log: log, reqs: c.reqs, reg: reg,
		flagService: func(flag string) string {
			f, _ := c.flags.Current().Flag(flag)
			if f == nil {
				return ""
			}
			return f.Service
		}}
	if err := c.exps.StartAll(); err != nil { // the config's experiments run from the first start that reads them
		return fmt.Errorf("start the config's experiments: %w", err)
	}
	c.live.mu.Lock()
	errs := c.live.apply(cfg, nil, "config")
	c.live.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("config %s does not fit the stored rollouts:\n%s", o.ConfigPath, strings.Join(errs, "\n"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.ctrl.Run(ctx, cmp.Or(o.TickInterval, 250*time.Millisecond)) }()
	expDone := make(chan struct{})
	go func() { defer close(expDone); c.expPlace.run(ctx, time.Second) }()
	stopFlags := c.followFlags()
	c.stopCtrl = func() { stopFlags(); cancel(); <-done; <-expDone }
	return nil
}

// versionExposed records a sticky unit's first request on a version, for experiments over
// versions. The recorder exists before any listener accepts a request.
func (c *core) versionExposed(service, version, key string) {
	if c.exposures != nil {
		c.exposures.Exposed(experiment.VersionExposures(service), key, version)
	}
}

// analysisTemplates are the config's analysis templates and its experiments' guardrail templates.
func analysisTemplates(cfg *config.Config) []config.AnalysisTemplate {
	return append(slices.Clone(cfg.Analysis.Templates), config.GuardrailTemplates(cfg.Experiments)...)
}

// unitServed records a sticky unit's finished request, for the experiments' builtin metrics.
func (c *core) unitServed(r gateway.UnitRequest) {
	if c.reqs != nil {
		c.reqs.Record(r.Service, r.Key, r.Failed, r.Latency, r.End)
	}
}

// close stops the parts in the reverse order of their start.
func (c *core) close() {
	if c == nil {
		return
	}
	c.stopCtrl()
	if c.judge != nil {
		c.judge.Close()
	}
	if c.gates != nil {
		c.gates.Close()
	}
	if c.hooks != nil {
		c.hooks.Close()
	}
	if c.gw != nil {
		c.gw.Close()
	}
	if c.qual != nil {
		c.qual.Close()
	}
	if c.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.tel.Shutdown(ctx) // flushes what is left; a collector that is gone was logged already
		cancel()
	}
	if c.exposures != nil {
		c.exposures.Close() // before the store: it writes there
	}
	if c.store != nil {
		_ = c.store.Close()
	}
}

// llmSink takes what the gateway learns of LLM calls to the measurements, and answered calls to
// the feedback join and the evaluators.
type llmSink struct {
	stats   *llmstats.Registry
	quality *quality.Quality
	tel     *telemetry.Telemetry
	reqs    *experiment.RequestRecorder // the units' time to first token and cost; nil: none
}

func (s llmSink) Served(rec gateway.LLMRecord) {
	s.stats.Record(rec)
	for _, f := range rec.Flags { // measured under each flag variant the user had too
		byVariant := rec
		byVariant.Service, byVariant.Version, byVariant.Flags = flags.RolloutSalt+f.Flag, f.Variant, nil
		s.stats.Record(byVariant)
	}
	cost, priced := s.stats.Cost(rec.Exchange)
	if s.reqs != nil && rec.Key != "" && !rec.Mirror {
		s.reqs.RecordLLM(rec.Service, rec.Key, rec.Exchange.FirstToken, cost, priced, rec.Start.Add(rec.Duration))
	}
	request, response := s.stats.ModelLabels(rec.Exchange)
	s.tel.Exchange(rec, telemetry.Cost{Value: cost, Priced: priced, RequestModel: request, ResponseModel: response})
	if rec.Status >= 200 && rec.Status < 300 && rec.Exchange.StreamError == "" {
		s.quality.Served(quality.Served{RequestID: rec.RequestID, Service: rec.Service, Version: rec.Version, Mirror: rec.Mirror,
			Model: rec.Exchange.ResponseModel, Input: rec.Input, Output: rec.Output})
	}
}

// telemetryOptions are the telemetry settings of the config (off without an OTLP endpoint).
func telemetryOptions(t config.Telemetry, log *slog.Logger) telemetry.Options {
	if t.OTLP == nil {
		return telemetry.Options{Logger: log}
	}
	return telemetry.Options{Endpoint: t.OTLP.Endpoint, Headers: t.OTLP.Headers, Interval: t.OTLP.Interval.Duration,
		ServiceName: t.OTLP.ServiceName, Logger: log}
}

// evaluators are the services' evaluators, by service.
func evaluators(services []config.Service) map[string]config.Evaluator {
	out := map[string]config.Evaluator{}
	for _, s := range services {
		if s.LLM != nil && s.LLM.Evaluator != nil {
			out[s.Name] = *s.LLM.Evaluator
		}
	}
	return out
}
