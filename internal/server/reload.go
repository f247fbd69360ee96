package server

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags/source"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/quality"
)

// configFile is the config file: it watches it (watch.go), reads it once it holds still, and reloads it. A
// reload parses and validates the whole file first; only a valid config reaches the gateway, so an
// invalid one is refused and changes nothing. The config in force is kept in live, which the
// specs applied through the API share.
type configFile struct {
	*live
	path    string
	llm     *llmstats.Registry
	quality *quality.Quality
	flags   *source.Source

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
func (f *configFile) Status() api.ConfigStatus {
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	return api.ConfigStatus{File: f.path, LoadedAt: f.loadedAt, LastReload: f.last}
}

// Reload implements api.Config: read, check, and apply the file, or keep the config in force.
func (f *configFile) Reload() api.ReloadResult {
	f.reloading.Lock()
	defer f.reloading.Unlock()
	data, err := f.readStill() // without live.mu: the API's reads go on while a writer finishes
	f.live.mu.Lock()
	defer f.live.mu.Unlock()
	res := api.ReloadResult{At: time.Now().UTC()}
	f.statusMu.Lock()
	f.seen = data
	f.statusMu.Unlock()
	cfg, errs := f.check(data, err)
	if len(errs) == 0 {
		errs = f.apply(cfg, nil, "config")
	}
	if len(errs) > 0 {
		res.Errors = errs
		f.log.Error("config reload refused; the config in force stays", "file", f.path, "errors", len(errs))
		for _, e := range errs {
			f.log.Error("config error", "error", e)
		}
		f.record(&res, false)
		return res
	}
	f.llm.SetPrices(cfg.LLM.Prices)
	f.llm.SetModels(cfg.LLM.Models)
	f.quality.SetScores(cfg.LLM.FeedbackScores)
	f.quality.SetEvaluators(evaluators(cfg.Services))
	f.flags.SetFiles(flagFiles(cfg, f.path))
	f.flags.Reload() // a SIGHUP reads the flag files again too
	res.Accepted = true
	res.Notes = restartOnly(f.current, cfg)
	for _, n := range res.Notes {
		f.log.Warn("config change needs a restart", "change", n)
	}
	// Settings read at start stay as they were until a restart; keep the record honest.
	cfg.Gateway, cfg.Admin, cfg.Telemetry, cfg.Flags.OFREP = f.current.Gateway, f.current.Admin, f.current.Telemetry, f.current.Flags.OFREP
	f.current = cfg
	f.record(&res, true)
	f.log.Info("config reloaded", "file", f.path, "services", len(cfg.Services))
	return res
}

// record keeps how a reload ended; loaded: its config is in force now.
func (f *configFile) record(res *api.ReloadResult, loaded bool) {
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	f.last = res
	if loaded {
		f.loadedAt = res.At
	}
}

// check parses what was read (or says why it could not be) and applies the reload's guards.
func (f *configFile) check(data []byte, readErr error) (*config.Config, []string) {
	if readErr != nil {
		return nil, []string{readErr.Error()}
	}
	cfg, err := config.Parse(data)
	if err == nil {
		err = massRemoval(f.current, cfg, len(data) == 0)
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
func (f *configFile) readStill() ([]byte, error) {
	wait := f.wait
	if wait == nil {
		wait = time.Sleep
	}
	for range stillReads {
		before, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", f.path, err)
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", f.path, err)
		}
		if f.afterRead != nil {
			f.afterRead()
		}
		after, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", f.path, err)
		}
		if os.SameFile(before, after) && before.Size() == after.Size() && before.ModTime().Equal(after.ModTime()) &&
			int64(len(data)) == after.Size() {
			return data, nil
		}
		wait(debounce)
	}
	return nil, fmt.Errorf("config %s changed while it was read, %d times in a row; the config in force stays, and the file's next change reloads it", f.path, stillReads)
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
	if !reflect.DeepEqual(old.Flags.OFREP, cfg.Flags.OFREP) {
		notes = append(notes, "flags.ofrep changed; restart aviary to serve OFREP with the new prefix and keys")
	}
	if old.Gateway.Timeouts != cfg.Gateway.Timeouts || old.Gateway.MaxMirrorsInFlight != cfg.Gateway.MaxMirrorsInFlight {
		notes = append(notes, "gateway.timeouts / maxMirrorsInFlight changed; restart aviary to use them")
	}
	return notes
}
