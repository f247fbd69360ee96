package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// Options configure a Source.
type Options struct {
	Store *store.Store
	// Files are the flag files, in order (later ones override earlier ones); absolute paths.
	Files  []string
	Logger *slog.Logger
	// OnEvents receives the events of each change once they are stored (the event stream, webhooks).
	OnEvents func([]rollout.Event)
	// Now is the clock of events and file records (nil: time.Now).
	Now func() time.Time
}

// Source is the flag set in force and its sources. It is safe for concurrent use.
type Source struct {
	store    *store.Store
	log      *slog.Logger
	onEvents func([]rollout.Event)
	now      func() time.Time

	cur atomic.Pointer[snapshot]

	mu     sync.Mutex // guards what follows, and orders every change
	files  []*file
	api    map[string]store.StoredFlag
	apiSet *flags.Set
	states map[string]store.FlagState
	layers map[string]*flags.Set
	// overlays: what Aviary adds to flags (a service binding, a flag rollout's share), applied last.
	overlays map[string]flags.Overlay

	watcher *fsnotify.Watcher // nil unless Watch runs
}

// snapshot is one published set and the channel closed when it is replaced.
type snapshot struct {
	set     *flags.Set
	base    *flags.Set        // set without the kill switch: the states the definitions give
	origin  map[string]string // flag key → "file:PATH", "api" or "layer:NAME"
	changed chan struct{}
}

// file is one flag file: its last good set, and how its last read went.
type file struct {
	path     string
	set      *flags.Set // nil until it has been read once without error
	data     []byte     // as last read, good or not
	loadedAt time.Time
	err      string // the last read's refusal, "" when it was taken
}

// New reads the stored flags and the files and publishes the first set. A stored flag that no
// longer parses is an error (the store holds only what was accepted); a bad file is not: it is
// refused and shown in Status, and serving starts without it.
func New(o Options) (*Source, error) {
	s := &Source{store: o.Store, log: o.Logger, onEvents: o.OnEvents, now: o.Now, layers: map[string]*flags.Set{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onEvents == nil {
		s.onEvents = func([]rollout.Event) {}
	}
	api, states, err := s.store.Flags()
	if err != nil {
		return nil, fmt.Errorf("read the flags set through the API: %w", err)
	}
	s.api, s.states = api, states
	if s.apiSet, err = apiSet(api); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFiles(o.Files)
	if err := s.publish(); err != nil {
		return nil, err
	}
	return s, nil
}

// Current is the set in force.
func (s *Source) Current() *flags.Set { return s.cur.Load().set }

// Changed is closed when a set other than Current's is in force.
func (s *Source) Changed() <-chan struct{} { return s.cur.Load().changed }

// apiSet parses the flags set through the API into one set.
func apiSet(api map[string]store.StoredFlag) (*flags.Set, error) {
	doc := map[string]json.RawMessage{}
	for k, f := range api {
		doc[k] = f.Flag
	}
	set, err := parseFlags(doc)
	if err != nil {
		return nil, fmt.Errorf("the flags set through the API do not parse any more: %w; fix them with aviary flag set, or delete them", err)
	}
	return set, nil
}

// parseFlags parses a flagd document holding the given flags.
func parseFlags(defs map[string]json.RawMessage) (*flags.Set, error) {
	data, err := json.Marshal(map[string]any{"flags": defs})
	if err != nil {
		return nil, err
	}
	return parseStrict(data)
}

// parseStrict parses a flagd document and also refuses flags whose targeting cannot run (an
// unknown operator, a $ref to no evaluator). flagd would keep them and answer PARSE_ERROR at each
// evaluation; refusing them keeps the flags in force and says at once what to fix.
func parseStrict(data []byte) (*flags.Set, error) {
	set, err := flags.Parse(data)
	if err != nil {
		return nil, err
	}
	if p := set.Problems(); len(p) > 0 {
		return nil, fmt.Errorf("%s; fix the targeting", strings.Join(p, "; "))
	}
	return set, nil
}

// publish builds the set from the sources and puts it in force, waking the readers of the last
// one. s.mu must be held.
func (s *Source) publish() error {
	var sets []*flags.Set
	origin := map[string]string{}
	for _, f := range s.files {
		if f.set != nil {
			sets = append(sets, f.set)
			for _, k := range f.set.Keys() {
				origin[k] = "file:" + f.path
			}
		}
	}
	sets = append(sets, s.apiSet)
	for _, k := range s.apiSet.Keys() {
		origin[k] = "api"
	}
	for _, name := range slices.Sorted(maps.Keys(s.layers)) {
		sets = append(sets, s.layers[name])
		for _, k := range s.layers[name].Keys() {
			origin[k] = "layer:" + name
		}
	}
	base := flags.Merge(sets...)
	switched, err := s.switched(base)
	if err != nil {
		return err
	}
	merged := base
	if switched != nil {
		merged = flags.Merge(base, switched)
	}
	merged = merged.WithOverlays(s.overlays)
	old := s.cur.Load()
	if old != nil && old.set.ETag() == merged.ETag() {
		// Same flags served; where they come from may have moved. Readers hold the old snapshot,
		// so a new one takes over the old channel rather than editing the old one.
		s.cur.Store(&snapshot{set: old.set, base: base, origin: origin, changed: old.changed})
		return nil
	}
	s.cur.Store(&snapshot{set: merged, base: base, origin: origin, changed: make(chan struct{})})
	if old != nil {
		close(old.changed)
	}
	return nil
}

// switched is a set of the flags whose kill-switch state differs from their definition's, with that
// state; nil when there are none. It edits merged's own JSON, so that $ref evaluators and set
// metadata stay as they are.
func (s *Source) switched(merged *flags.Set) (*flags.Set, error) {
	var keys []string
	for k, st := range s.states {
		if f, ok := merged.Flag(k); ok && f.State != st.State {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	data, err := merged.JSON()
	if err != nil {
		return nil, fmt.Errorf("encode the flag set: %w", err)
	}
	var doc map[string]json.RawMessage
	var defs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode the flag set: %w", err)
	}
	if err := json.Unmarshal(doc["flags"], &defs); err != nil {
		return nil, fmt.Errorf("decode the flag set's flags: %w", err)
	}
	only := map[string]map[string]json.RawMessage{}
	for _, k := range keys {
		def := defs[k]
		def["state"], _ = json.Marshal(s.states[k].State)
		only[k] = def
	}
	doc["flags"], _ = json.Marshal(only)
	data, _ = json.Marshal(doc)
	set, err := flags.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("apply the kill switch: %w", err)
	}
	return set, nil
}

// SetLayer puts set on top of the files and the API flags, under name (nil removes the layer).
// Layers apply in the order of their names; the kill switch still wins over them.
func (s *Source) SetLayer(name string, set *flags.Set) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set == nil {
		delete(s.layers, name)
	} else {
		s.layers[name] = set
	}
	return s.publish()
}

// setFiles makes paths the flag files, keeping what is known of those already read, and reads
// the new ones. s.mu must be held.
func (s *Source) setFiles(paths []string) {
	known := map[string]*file{}
	for _, f := range s.files {
		known[f.path] = f
	}
	s.files = s.files[:0:0]
	for _, p := range paths {
		f := known[p]
		if f == nil {
			f = &file{path: p}
			s.read(f)
		}
		s.files = append(s.files, f)
	}
}

// read reads and parses one file; a refusal keeps its last good set. s.mu must be held. It
// reports whether the file's content changed.
func (s *Source) read(f *file) bool {
	data, err := os.ReadFile(f.path)
	if err == nil && (f.set != nil || f.err != "") && string(data) == string(f.data) {
		return false // unchanged since the last read, taken or refused
	}
	f.data = data
	var set *flags.Set
	if err == nil {
		set, err = parseStrict(data)
	}
	if err != nil {
		f.err = fmt.Sprintf("flag file %s refused: %v", f.path, err)
		kept := "no flags from it are served"
		if f.set != nil {
			kept = "its last good flags stay in force"
		}
		s.log.Error("flag file refused; fix it and save it again", "file", f.path, "error", err.Error(), "kept", kept)
		return true
	}
	f.set, f.err, f.loadedAt = set, "", s.now().UTC()
	s.log.Info("flag file loaded", "file", f.path, "flags", len(set.Keys()))
	return true
}

// SetFiles makes paths the flag files (a config reload) and publishes the result.
func (s *Source) SetFiles(paths []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFiles(paths)
	s.watchDirs()
	if err := s.publish(); err != nil {
		s.log.Error("flag set not updated", "err", err)
	}
}

// Reload reads every flag file again and publishes what changed.
func (s *Source) Reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, f := range s.files {
		changed = s.read(f) || changed
	}
	if !changed {
		return
	}
	if err := s.publish(); err != nil {
		s.log.Error("flag set not updated", "err", err)
	}
}

// Paths are the flag files in force.
func (s *Source) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.path
	}
	return out
}

// ErrNotFound is a flag that no source has.
var ErrNotFound = errors.New("no such flag")

// NotFound is the error for a flag key that the set in force does not have.
func NotFound(key string) error {
	return fmt.Errorf("no flag %q: %w; aviary flag list shows the flags", key, ErrNotFound)
}

// event makes a flag event.
func (s *Source) event(kind config.EventKind, key, reason, by string) rollout.Event {
	return rollout.Event{Time: s.now().UTC(), Flag: key, Kind: kind, Reason: reason, By: by}
}
