package analysis

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/rollout"
)

// Options configures an Analyzer. Metrics is required.
type Options struct {
	Metrics *metrics.Registry
	// LLM holds the measurements of LLM services (nil: no LLM metrics can be judged).
	LLM *llmstats.Registry
	// Quality gives evaluation and feedback scores (nil: those metrics see no data).
	Quality   QualitySource
	Templates []config.AnalysisTemplate
	Providers provider.Options
	// History bounds the measurements kept per metric of a run: analysis.history as config gives
	// it, defaults applied (at least 1).
	History int
	// Look is how often runs look at their metrics (0: one second).
	Look   time.Duration
	Now    func() time.Time
	Logger *slog.Logger
	// Finished bounds the reports of finished runs kept for the API, per service.
	Finished int
	// Evidence keeps the sequential tests of the rollouts in flight across restarts (nil: they
	// live in memory only, and a restart starts them afresh).
	Evidence EvidenceStore
}

// Analyzer runs analyses for the rollout controller: it implements rollout.Judge.
type Analyzer struct {
	o Options

	mu        sync.Mutex
	templates map[string]config.AnalysisTemplate
	runs      map[string]*active
	done      map[string][]RunReport // finished runs, newest last, per service
	// evidence holds the sequential tests of the rollouts in flight, shared by their runs: one
	// e-process per rollout and metric (see rolloutSequential).
	evidence map[string]*sequential
	// proms are the Prometheus count tests among them, by the same key: the reader of the
	// counters around the shared test (see rolloutPromCount).
	proms map[string]*promCount
	// llm holds the LLM metrics' tests of the rollouts in flight, by the same key: one per rollout
	// and metric as well (see rolloutLLM).
	llm map[string]llmTest
	// saved is what Options.Evidence kept of the rollouts in flight when the process last stopped,
	// by service, until their runs resume it.
	saved  map[string]savedRollout
	closed bool
	// saveMu orders the writes of evidence to the store, so that an older state never replaces a
	// newer one, nor outlives its rollout's end.
	saveMu sync.Mutex
}

type active struct {
	r    *runner
	stop context.CancelFunc
	wait chan struct{}
}

// New makes an Analyzer with the templates of the config (and the default template unless the
// config replaces it).
func New(o Options) *Analyzer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Look == 0 {
		o.Look = time.Second
	}
	if o.Finished == 0 {
		o.Finished = 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Providers.Metrics = o.Metrics
	a := &Analyzer{o: o, runs: map[string]*active{}, done: map[string][]RunReport{}, evidence: map[string]*sequential{}, proms: map[string]*promCount{},
		llm: map[string]llmTest{}, saved: map[string]savedRollout{}}
	a.loadEvidence()
	a.SetTemplates(o.Templates)
	return a
}

// SetTemplates replaces the templates (on a config reload). Runs in flight keep theirs.
func (a *Analyzer) SetTemplates(ts []config.AnalysisTemplate) {
	m := map[string]config.AnalysisTemplate{config.DefaultTemplateName: config.DefaultTemplate()}
	for _, t := range ts {
		m[t.Name] = t
	}
	a.mu.Lock()
	a.templates = m
	a.mu.Unlock()
}

// Verdict implements rollout.Judge: the run's latest verdict, starting it on the first call.
func (a *Analyzer) Verdict(r rollout.Run) rollout.Verdict {
	a.mu.Lock()
	act, ok := a.runs[r.ID]
	if !ok && !a.closed {
		rn := newRunner(a, r, a.templates)
		ctx, cancel := context.WithCancel(context.Background())
		act = &active{r: rn, stop: cancel, wait: make(chan struct{})}
		a.runs[r.ID] = act
		go func() { defer close(act.wait); rn.loop(ctx, a.o.Look) }()
		a.o.Logger.Info("analysis started", "service", r.Service, "check", r.ID, "templates", r.Templates, "canary", r.Canary, "stable", r.Stable)
	}
	a.mu.Unlock()
	if act == nil {
		return rollout.Verdict{Phase: rollout.Running, Message: "the analyzer is shutting down"}
	}
	act.r.setWeight(r.Weight, a.o.Now())
	act.r.shadow.Store(r.Shadow)
	v, _ := act.r.latest()
	return v
}

// Forget implements rollout.Judge: the check is over; stop its run and keep its report.
func (a *Analyzer) Forget(id string) {
	a.mu.Lock()
	act, ok := a.runs[id]
	delete(a.runs, id)
	a.mu.Unlock()
	if !ok {
		return
	}
	act.stop()
	<-act.wait
	act.r.persist()
	_, rep := act.r.latest()
	a.mu.Lock()
	defer a.mu.Unlock()
	list := append(a.done[rep.Service], rep)
	if len(list) > a.o.Finished {
		list = list[len(list)-a.o.Finished:]
	}
	a.done[rep.Service] = list
}

// Reports lists a service's runs, finished ones first, then those running.
func (a *Analyzer) Reports(service string) []RunReport {
	a.mu.Lock()
	out := slices.Clone(a.done[service])
	var live []*runner
	for _, act := range a.runs {
		if act.r.run.Service == service {
			live = append(live, act.r)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(live, func(x, y *runner) int { return x.run.StartedAt.Compare(y.run.StartedAt) })
	for _, rn := range live {
		_, rep := rn.latest()
		out = append(out, rep)
	}
	return out
}

// Close stops every run.
func (a *Analyzer) Close() {
	a.mu.Lock()
	a.closed = true
	runs := a.runs
	a.runs = map[string]*active{}
	a.mu.Unlock()
	for _, act := range runs {
		act.stop()
		<-act.wait
	}
	a.persistAll() // what the runs saw last, for the process that takes over
}
