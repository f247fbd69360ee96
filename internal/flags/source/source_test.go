package source

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

const fileDoc = `{"flags": {
  "banner":   {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
  "checkout": {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "old"}
}}`

// fixture is a Source over a real store and a flag file in a temporary directory.
type fixture struct {
	t      *testing.T
	dir    string
	file   string
	store  *store.Store
	src    *Source
	events []rollout.Event
}

func newFixture(t *testing.T, doc string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	f.file = filepath.Join(f.dir, "flags.json")
	f.write(doc)
	f.open()
	return f
}

func (f *fixture) write(doc string) {
	f.t.Helper()
	tmp := f.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		f.t.Fatal(err)
	}
}

// open opens the store and the source (again, after close: a restart).
func (f *fixture) open() {
	f.t.Helper()
	st, err := store.Open(filepath.Join(f.dir, "aviary.db"), store.Options{MaxEvents: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { st.Close() })
	f.store = st
	f.src, err = New(Options{Store: st, Files: []string{f.file}, Logger: slog.New(slog.NewTextHandler(f.t.Output(), nil)),
		OnEvents: func(evs []rollout.Event) { f.events = append(f.events, evs...) }})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) restart() {
	f.t.Helper()
	if err := f.store.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

// state is the state and default variant the set in force gives a flag.
func (f *fixture) state(key string) (string, string) {
	fl, ok := f.src.Current().Flag(key)
	if !ok {
		return "", ""
	}
	return string(fl.State), fl.DefaultVariant
}

func TestAPIFlagOverridesFileAndSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fileDoc)
	if v, err := f.src.Get("banner"); err != nil || v.Source != "file:"+f.file {
		t.Fatalf("banner = %+v, %v; want it from the file", v, err)
	}
	v, err := f.src.Set("banner", json.RawMessage(`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`), "api:ann")
	if err != nil || v.Source != "api" || v.DefaultVariant != "on" || v.SetBy != "api:ann" {
		t.Fatalf("set banner = %+v, %v; want the API's definition, by api:ann", v, err)
	}
	f.restart()
	if _, def := f.state("banner"); def != "on" {
		t.Errorf("after a restart banner's default is %q, want the API's on", def)
	}
	if err := f.src.Delete("banner", "api:ann"); err != nil {
		t.Fatal(err)
	}
	if _, def := f.state("banner"); def != "off" {
		t.Errorf("after delete banner's default is %q, want the file's off again", def)
	}
	if err := f.src.Delete("checkout", "api"); err == nil || !strings.Contains(err.Error(), "disable") {
		t.Errorf("delete of a file flag = %v, want a conflict that points at the file and the kill switch", err)
	}
}

func TestKillSwitch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fileDoc)
	before := f.src.Changed()
	etag := f.src.Current().ETag()
	v, err := f.src.Disable("checkout", "errors up", "api:bob")
	if err != nil || v.State != "DISABLED" || v.KillSwitch == nil || v.KillSwitch.By != "api:bob" {
		t.Fatalf("disable = %+v, %v; want DISABLED by api:bob", v, err)
	}
	select {
	case <-before:
	default:
		t.Error("Changed was not closed by the kill switch")
	}
	if f.src.Current().ETag() == etag {
		t.Error("the ETag did not change with the kill switch")
	}
	if len(f.events) != 1 || f.events[0].Kind != config.EventFlagDisabled || f.events[0].Flag != "checkout" ||
		f.events[0].By != "api:bob" || f.events[0].Reason != "errors up" || f.events[0].Seq == 0 {
		t.Errorf("events = %+v, want one stored FlagDisabled of checkout by api:bob", f.events)
	}
	// The file changes the flag meanwhile: the kill switch still holds, and the change is served
	// once the flag is enabled again.
	f.write(strings.Replace(fileDoc, `"defaultVariant": "old"`, `"defaultVariant": "new"`, 1))
	f.src.Reload()
	f.restart()
	if st, def := f.state("checkout"); st != "DISABLED" || def != "new" {
		t.Errorf("after a file change and a restart: %s, default %s; want DISABLED with the file's new default", st, def)
	}
	if v, err = f.src.Enable("checkout", "", "api:bob"); err != nil || v.State != "ENABLED" || v.KillSwitch != nil {
		t.Errorf("enable = %+v, %v; want ENABLED with no switch kept (the definition says ENABLED)", v, err)
	}
	if _, err := f.src.Disable("nope", "", "api"); err == nil || !strings.Contains(err.Error(), "aviary flag list") {
		t.Errorf("disable of an unknown flag = %v, want not found, pointing at aviary flag list", err)
	}
}

// TestInvalidFileIsRefusedAndTheOldKept: a file that does not parse is refused with the parser's
// JSON path, its last good flags stay in force, Status shows why, and a fixed file is taken.
func TestInvalidFileIsRefusedAndTheOldKept(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fileDoc)
	etag := f.src.Current().ETag()
	f.write(strings.Replace(fileDoc, `"defaultVariant": "off"`, `"defaultVariant": "maybe"`, 1))
	f.src.Reload()
	if f.src.Current().ETag() != etag {
		t.Error("an invalid file changed the set in force")
	}
	st := f.src.Status()
	if len(st.Files) != 1 || !strings.Contains(st.Files[0].Error, "banner") || st.Files[0].Flags != 2 {
		t.Errorf("status = %+v, want the file's refusal naming the flag banner, and its 2 good flags kept", st)
	}
	f.write(`{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}`)
	f.src.Reload()
	if st := f.src.Status(); st.Files[0].Error != "" || st.Files[0].Flags != 1 {
		t.Errorf("status after the fix = %+v, want the file taken", st)
	}
	if _, ok := f.src.Current().Flag("checkout"); ok {
		t.Error("checkout is still served after the file dropped it")
	}
}

func TestWatchReadsAChangedFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fileDoc)
	stop, err := f.src.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	changed := f.src.Changed()
	f.write(strings.Replace(fileDoc, `"defaultVariant": "off"`, `"defaultVariant": "on"`, 1))
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the set did not change within 10s of the file's change")
	}
	if _, def := f.state("banner"); def != "on" {
		t.Errorf("banner's default = %q, want on from the changed file", def)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fileDoc)
	bad := `{"flags": {"a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"},
	                   "b": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "y"}}}`
	if _, err := f.src.Apply([]byte(bad), "api"); err == nil {
		t.Fatal("an invalid document was applied")
	}
	if _, ok := f.src.Current().Flag("a"); ok {
		t.Error("a flag of a refused document is served")
	}
	good := `{"flags": {"a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"}}}`
	res, err := f.src.Apply([]byte(good), "api")
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("apply = %+v, %v; want a applied", res, err)
	}
	if res, _ = f.src.Apply([]byte(good), "api"); len(res.Unchanged) != 1 || len(res.Applied) != 0 {
		t.Errorf("apply again = %+v, want a unchanged", res)
	}
}

// TestTargetingThatCannotRunIsRefused: a rule with an unknown operator is refused at load, in a
// file and through the API, rather than served as PARSE_ERROR at every evaluation.
func TestTargetingThatCannotRunIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fileDoc)
	bad := `{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": {"no_such_op": [1]}}`
	f.write(`{"flags": {"banner": ` + bad + `}}`)
	f.src.Reload()
	if st := f.src.Status(); !strings.Contains(st.Files[0].Error, "banner") || st.Files[0].Flags != 2 {
		t.Errorf("status = %+v, want banner's targeting refused and the 2 old flags kept", st)
	}
	if _, err := f.src.Set("other", json.RawMessage(bad), "api"); err == nil {
		t.Error("a flag whose targeting cannot run was set through the API")
	}
}
