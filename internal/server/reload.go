package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/quality"
)

// configFile is the config file: it watches it, reads it once it holds still, and reloads it. A
// reload parses and validates the whole file first; only a valid config reaches the gateway, so an
// invalid one is refused and changes nothing. The config in force is kept in live, which the
// specs applied through the API share.
type configFile struct {
	*live
	path    string
	llm     *llmstats.Registry
	quality *quality.Quality

	// afterRead, when set, is called after each read of the file (a test changes the file there);
	// wait sleeps between reads of a file that changed while it was read (nil: time.Sleep).
	afterRead func()
	wait      func(time.Duration)

	reloading sync.Mutex // one reload at a time, from its read to its end; taken before live.mu

	statusMu sync.Mutex // guards the fields below; taken after live.mu
	seen     []byte     // the file as last read, accepted or not
	loadedAt time.Time
	last     *api.ReloadResult
}

// Status implements api.Config.
func (r *configFile) Status() api.ConfigStatus {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	return api.ConfigStatus{File: r.path, LoadedAt: r.loadedAt, LastReload: r.last}
}

// Reload implements api.Config: read, check, and apply the file, or keep the config in force.
func (r *configFile) Reload() api.ReloadResult {
	r.reloading.Lock()
	defer r.reloading.Unlock()
	data, err := r.readStill() // without live.mu: the API's reads go on while a writer finishes
	r.live.mu.Lock()
	defer r.live.mu.Unlock()
	res := api.ReloadResult{At: time.Now().UTC()}
	r.statusMu.Lock()
	r.seen = data
	r.statusMu.Unlock()
	cfg, errs := r.check(data, err)
	if len(errs) == 0 {
		errs = r.apply(cfg, nil, "config")
	}
	if len(errs) > 0 {
		res.Errors = errs
		r.log.Error("config reload refused; the config in force stays", "file", r.path, "errors", len(errs))
		for _, e := range errs {
			r.log.Error("config error", "error", e)
		}
		r.record(&res, false)
		return res
	}
	r.llm.SetPrices(cfg.LLM.Prices)
	r.llm.SetModels(cfg.LLM.Models)
	r.quality.SetScores(cfg.LLM.FeedbackScores)
	r.quality.SetEvaluators(evaluators(cfg.Services))
	res.Accepted = true
	res.Notes = restartOnly(r.current, cfg)
	for _, n := range res.Notes {
		r.log.Warn("config change needs a restart", "change", n)
	}
	// Settings read at start stay as they were until a restart; keep the record honest.
	cfg.Gateway, cfg.Admin, cfg.Telemetry = r.current.Gateway, r.current.Admin, r.current.Telemetry
	r.current = cfg
	r.record(&res, true)
	r.log.Info("config reloaded", "file", r.path, "services", len(cfg.Services))
	return res
}

// record keeps how a reload ended; loaded: its config is in force now.
func (r *configFile) record(res *api.ReloadResult, loaded bool) {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	r.last = res
	if loaded {
		r.loadedAt = res.At
	}
}

// check parses what was read (or says why it could not be) and applies the reload's guards.
func (r *configFile) check(data []byte, readErr error) (*config.Config, []string) {
	if readErr != nil {
		return nil, []string{readErr.Error()}
	}
	cfg, err := config.Parse(data)
	if err == nil {
		err = massRemoval(r.current, cfg, len(data) == 0)
	}
	if err != nil {
		return nil, errorStrings(err)
	}
	return cfg, nil
}

// stillReads is how many times a file that keeps changing while it is read is read before the
// reload gives up (the next change of the file tries again).
const stillReads = 5

// readStill reads the config file once it holds still: a read during which the file changed
// (its size, modification time or identity; a writer still at work) is read again after debounce.
func (r *configFile) readStill() ([]byte, error) {
	wait := r.wait
	if wait == nil {
		wait = time.Sleep
	}
	for range stillReads {
		before, err := os.Stat(r.path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", r.path, err)
		}
		data, err := os.ReadFile(r.path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", r.path, err)
		}
		if r.afterRead != nil {
			r.afterRead()
		}
		after, err := os.Stat(r.path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", r.path, err)
		}
		if os.SameFile(before, after) && before.Size() == after.Size() && before.ModTime().Equal(after.ModTime()) &&
			int64(len(data)) == after.Size() {
			return data, nil
		}
		wait(debounce)
	}
	return nil, fmt.Errorf("config %s changed while it was read, %d times in a row; the config in force stays, and the file's next change reloads it", r.path, stillReads)
}

// massRemoval refuses a new config that removes every service of the one in force, or more than
// half of them, unless the new file sets reload.allowMassRemoval: an emptied or half-written file
// must not take every service off the gateway.
func massRemoval(old, cfg *config.Config, empty bool) error {
	if cfg.Reload.AllowMassRemoval {
		return nil
	}
	kept := map[string]bool{}
	for _, s := range cfg.Services {
		kept[s.Name] = true
	}
	var gone []string
	for _, s := range old.Services {
		if !kept[s.Name] {
			gone = append(gone, s.Name)
		}
	}
	if len(gone) == 0 || 2*len(gone) <= len(old.Services) {
		return nil
	}
	names := strings.Join(gone[:min(len(gone), 10)], ", ")
	if len(gone) > 10 {
		names += fmt.Sprintf(" and %d more", len(gone)-10)
	}
	what := fmt.Sprintf("the new file removes %d of the %d services in force (%s): is it cut short?", len(gone), len(old.Services), names)
	if empty {
		what = fmt.Sprintf("the new file is empty: it removes all %d services in force (%s)", len(gone), names)
	}
	return config.Errors{{Path: "services", Msg: what + " If that is meant, set reload.allowMassRemoval: true in the file"}}
}

// restartOnly lists changes that a reload cannot apply.
func restartOnly(old, cfg *config.Config) []string {
	var notes []string
	if old.Gateway.Listen != cfg.Gateway.Listen || old.Admin.Listen != cfg.Admin.Listen {
		notes = append(notes, "gateway.listen / admin.listen changed; restart aviary to listen on the new address")
	}
	if (old.Gateway.TLS == nil) != (cfg.Gateway.TLS == nil) ||
		(old.Gateway.TLS != nil && *old.Gateway.TLS != *cfg.Gateway.TLS) {
		notes = append(notes, "gateway.tls changed; restart aviary to use it")
	}
	if !reflect.DeepEqual(old.Telemetry, cfg.Telemetry) {
		notes = append(notes, "telemetry changed; restart aviary to export with the new settings")
	}
	if old.Gateway.Timeouts != cfg.Gateway.Timeouts || old.Gateway.MaxMirrorsInFlight != cfg.Gateway.MaxMirrorsInFlight {
		notes = append(notes, "gateway.timeouts / maxMirrorsInFlight changed; restart aviary to use them")
	}
	return notes
}

// watch reloads when the config file changes. It watches the directory, because editors and config
// management replace a file (rename over it) rather than write it in place; a burst of events within
// debounce is one reload, and an unchanged file is no reload. Events on other names in the directory
// count too: a Kubernetes ConfigMap volume changes the file by swapping the "..data" symlink that its
// path goes through, and the file's own name sees no event at all.
func (r *configFile) watch(enabled bool) (stop func()) {
	if !enabled {
		return func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(r.path))
	}
	if err != nil {
		r.log.Warn("cannot watch the config file; reload with SIGHUP or POST /api/v1/config/reload", "err", err)
		return func() {}
	}
	done := make(chan struct{})
	go (&fileWatcher{r: r, w: w}).run(done)
	return func() { w.Close(); <-done }
}

const debounce = 200 * time.Millisecond

// fileWatcher turns file events into reloads; a named type for readable stack traces.
type fileWatcher struct {
	r *configFile
	w *fsnotify.Watcher
}

func (f *fileWatcher) run(done chan struct{}) {
	defer close(done)
	name := filepath.Clean(f.r.path)
	var timer <-chan time.Time
	for {
		select {
		case ev, ok := <-f.w.Events:
			if !ok {
				return
			}
			// The file itself: wait until its writes settle. Another name: look once, so that a busy
			// neighbour in the directory cannot put the look off for ever.
			changing := ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0
			if changing && (filepath.Clean(ev.Name) == name || timer == nil) {
				timer = time.After(debounce)
			}
		case err, ok := <-f.w.Errors:
			if !ok {
				return
			}
			f.r.log.Warn("config file watch error", "err", err)
		case <-timer:
			timer = nil
			if f.changed() {
				f.r.log.Info("config file changed: reloading", "file", f.r.path)
				f.r.Reload()
			}
		}
	}
}

func (f *fileWatcher) changed() bool {
	data, err := os.ReadFile(f.r.path)
	if err != nil {
		return true // let Reload report it
	}
	f.r.statusMu.Lock()
	defer f.r.statusMu.Unlock()
	return !bytes.Equal(data, f.r.seen)
}
