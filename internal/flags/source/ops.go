package source

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// View is one flag as the admin API shows it: its definition in force, where it comes from, and
// the kill switch's state when one is set.
type View struct {
	Key            string          `json:"key"`
	Source         string          `json:"source"` // file:PATH, api, or layer:NAME
	State          flags.State     `json:"state"`  // the state served (the kill switch's, when set)
	Variants       map[string]any  `json:"variants"`
	DefaultVariant string          `json:"defaultVariant,omitempty"`
	Targeting      json.RawMessage `json:"targeting,omitempty"`
	Metadata       map[string]any  `json:"metadata,omitempty"`
	// KillSwitch is set when Disable or Enable decided the state.
	KillSwitch *store.FlagState `json:"killSwitch,omitempty"`
	// SetAt and SetBy tell when and by whom a flag of source api was set.
	SetAt *time.Time `json:"setAt,omitempty"`
	SetBy string     `json:"setBy,omitempty"`
}

// Status is the flag set in force and how each file's last read went.
type Status struct {
	ETag  string       `json:"etag"`
	Flags int          `json:"flags"`
	Files []FileStatus `json:"files"`
}

// FileStatus is one flag file. Error is set while its last read is refused (its last good flags,
// if any, stay in force).
type FileStatus struct {
	Path     string     `json:"path"`
	Flags    int        `json:"flags"`
	LoadedAt *time.Time `json:"loadedAt,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// InvalidError is a flag definition or document that does not parse; nothing was changed.
type InvalidError struct{ Errors []string }

func (e *InvalidError) Error() string { return strings.Join(e.Errors, "; ") }

// ConflictError is a change that the flag's source does not allow (deleting a file's flag).
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// ApplyResult says which flags of a document were set and which were already so.
type ApplyResult struct {
	Applied   []string `json:"applied"`
	Unchanged []string `json:"unchanged"`
}

// List is every flag in force, by key.
func (s *Source) List() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.cur.Load()
	out := []View{}
	for _, k := range snap.set.Keys() {
		out = append(out, s.view(snap, k))
	}
	return out
}

// Get is one flag in force.
func (s *Source) Get(key string) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.cur.Load()
	if _, ok := snap.set.Flag(key); !ok {
		return View{}, NotFound(key)
	}
	return s.view(snap, key), nil
}

// view makes the View of a flag that snap's set has. s.mu must be held.
func (s *Source) view(snap *snapshot, key string) View {
	f, _ := snap.set.Flag(key)
	v := View{Key: key, Source: snap.origin[key], State: f.State, Variants: f.Variants,
		DefaultVariant: f.DefaultVariant, Targeting: f.Targeting, Metadata: f.Metadata}
	if st, ok := s.states[key]; ok {
		v.KillSwitch = &st
	}
	if a, ok := s.api[key]; ok && v.Source == "api" {
		at := a.SetAt
		v.SetAt, v.SetBy = &at, a.By
	}
	return v
}

// Status reports the set in force and the files.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.cur.Load().set
	st := Status{ETag: set.ETag(), Flags: len(set.Keys()), Files: []FileStatus{}}
	for _, f := range s.files {
		fs := FileStatus{Path: f.path, Error: f.err}
		if f.set != nil {
			at := f.loadedAt
			fs.Flags, fs.LoadedAt = len(f.set.Keys()), &at
		}
		st.Files = append(st.Files, fs)
	}
	return st
}

// Set sets one flag through the API: def is its definition in flagd's JSON (the value of
// "flags": {KEY: ...}). It overrides a file flag of the same key.
func (s *Source) Set(key string, def json.RawMessage, by string) (View, error) {
	if key == "" || len(key) > 256 || strings.ContainsAny(key, "/?#") {
		return View{}, &InvalidError{Errors: []string{fmt.Sprintf("flag key %q: use 1 to 256 characters without / ? #", key)}}
	}
	if _, err := s.put(map[string]json.RawMessage{key: def}, by); err != nil {
		return View{}, err
	}
	return s.Get(key)
}

// Apply sets every flag of a flagd document through the API (flags it does not name stay).
func (s *Source) Apply(doc []byte, by string) (ApplyResult, error) {
	set, err := parseStrict(doc)
	if err != nil {
		return ApplyResult{}, &InvalidError{Errors: []string{err.Error()}}
	}
	data, err := set.JSON()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("encode the applied flags: %w", err)
	}
	var parsed struct {
		Flags map[string]json.RawMessage `json:"flags"`
	}
	if err := json.Unmarshal(data, &parsed); err != nil {
		return ApplyResult{}, fmt.Errorf("decode the applied flags: %w", err)
	}
	return s.put(parsed.Flags, by)
}

// put stores and publishes flag definitions set through the API.
func (s *Source) put(defs map[string]json.RawMessage, by string) (ApplyResult, error) {
	res := ApplyResult{Applied: []string{}, Unchanged: []string{}}
	if len(defs) == 0 {
		return res, &InvalidError{Errors: []string{`flags: the document has no flags; write {"flags": {"KEY": {...}}}`}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	api := map[string]store.StoredFlag{}
	for k, v := range s.api {
		api[k] = v
	}
	var change store.FlagChange
	now := s.now().UTC()
	for _, k := range sortedKeys(defs) {
		def, err := compact(defs[k])
		if err != nil {
			return res, &InvalidError{Errors: []string{fmt.Sprintf("flags.%s: not JSON: %v", k, err)}}
		}
		if old, ok := s.api[k]; ok && string(old.Flag) == string(def) {
			res.Unchanged = append(res.Unchanged, k)
			continue
		}
		sf := store.StoredFlag{Key: k, Flag: def, SetAt: now, By: by}
		api[k] = sf
		change.Put = append(change.Put, sf)
		change.Events = append(change.Events, s.event(config.EventFlagChanged, k, "flag set through the API", by))
		res.Applied = append(res.Applied, k)
	}
	set, err := parseFlags(rawDefs(api))
	if err != nil {
		return res, &InvalidError{Errors: []string{err.Error() + "; a flag set through the API stands alone: it may not $ref the $evaluators of a file"}}
	}
	if len(change.Put) == 0 {
		return res, nil
	}
	return res, s.commit(change, func() { s.api, s.apiSet = api, set })
}

// Delete removes a flag set through the API; a file flag of the same key is served again.
func (s *Source) Delete(key, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.api[key]; !ok {
		if origin, ok := s.cur.Load().origin[key]; ok {
			return &ConflictError{Msg: fmt.Sprintf("flag %q comes from %s, not from the API; remove it there, or disable it with aviary flag disable", key, origin)}
		}
		return NotFound(key)
	}
	api := map[string]store.StoredFlag{}
	for k, v := range s.api {
		if k != key {
			api[k] = v
		}
	}
	set, err := parseFlags(rawDefs(api))
	if err != nil {
		return err
	}
	change := store.FlagChange{Delete: []string{key},
		Events: []rollout.Event{s.event(config.EventFlagDeleted, key, "flag deleted through the API", by)}}
	return s.commit(change, func() { s.api, s.apiSet = api, set })
}

// Disable is the kill switch: the flag is served disabled (reason DISABLED, each SDK's code
// default) whatever its source says, until Enable.
func (s *Source) Disable(key, reason, by string) (View, error) {
	return s.switchState(key, flags.StateDisabled, reason, by)
}

// Enable serves the flag enabled again.
func (s *Source) Enable(key, reason, by string) (View, error) {
	return s.switchState(key, flags.StateEnabled, reason, by)
}

func (s *Source) switchState(key string, state flags.State, reason, by string) (View, error) {
	s.mu.Lock()
	snap := s.cur.Load()
	f, ok := snap.base.Flag(key)
	if !ok {
		s.mu.Unlock()
		return View{}, NotFound(key)
	}
	old, had := s.states[key]
	st := store.FlagState{Key: key, State: state, At: s.now().UTC(), By: by, Reason: reason}
	if f.State == state {
		st.State = "" // the definition says so already: no switch to keep
	}
	if (!had && st.State == "") || (had && old.State == st.State) {
		if cur, _ := snap.set.Flag(key); cur.State == state {
			defer s.mu.Unlock()
			return s.view(snap, key), nil // nothing to change
		}
	}
	kind, what := config.EventFlagDisabled, "disabled"
	if state == flags.StateEnabled {
		kind, what = config.EventFlagEnabled, "enabled"
	}
	if reason == "" {
		reason = "flag " + what + " through the API"
	}
	states := map[string]store.FlagState{}
	for k, v := range s.states {
		states[k] = v
	}
	if st.State == "" {
		delete(states, key)
	} else {
		states[key] = st
	}
	change := store.FlagChange{States: []store.FlagState{st}, Events: []rollout.Event{s.event(kind, key, reason, by)}}
	err := s.commit(change, func() { s.states = states })
	s.mu.Unlock()
	if err != nil {
		return View{}, err
	}
	return s.Get(key)
}

// commit writes change to the store, then applies it in memory and publishes the new set; a
// store error changes nothing. s.mu must be held.
func (s *Source) commit(change store.FlagChange, apply func()) error {
	evs, err := s.store.ChangeFlags(change)
	if err != nil {
		return fmt.Errorf("store the flag change: %w; nothing was changed", err)
	}
	apply()
	if err := s.publish(); err != nil {
		s.log.Error("flag set not updated after a stored change", "err", err)
		return err
	}
	s.onEvents(evs)
	return nil
}

func rawDefs(api map[string]store.StoredFlag) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, f := range api {
		out[k] = f.Flag
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// compact is a definition without insignificant white space, so that equal ones compare equal.
func compact(def json.RawMessage) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(def, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
