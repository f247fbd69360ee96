package main

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/flags/source"
	"aviary.dev/aviary/internal/store"
)

// flagAPI is the real admin API over a real flag source, store and flag file: what the flag
// commands talk to.
func flagAPI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(file, []byte(`{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "aviary.db"), store.Options{MaxEvents: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := source.New(source.Options{Store: st, Files: []string{file}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{Flags: src, Gatherer: prometheus.NewRegistry(), Browser: api.BrowserGuard{Listen: "127.0.0.1:0"}}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestFlagCommands(t *testing.T) {
	url := flagAPI(t)
	flag := func(stdin string, args ...string) (string, string, error) {
		t.Helper()
		return aviary(t, time.Minute, stdin, append([]string{"--server", url, "flag"}, args...)...)
	}
	out, _, err := flag("", "list")
	if err != nil || !strings.Contains(out, "banner") || !strings.Contains(out, "ENABLED") || !strings.Contains(out, "file:") {
		t.Fatalf("list: %q, %v; want banner, ENABLED, from its file", out, err)
	}
	def := `{"state":"ENABLED","variants":{"red":"#c00","blue":"#00c"},"defaultVariant":"blue"}`
	if out, _, err = flag(def, "set", "color", "-f", "-"); err != nil || !strings.Contains(out, "Source:   api") {
		t.Errorf("set: %q, %v; want the flag shown, from the API", out, err)
	}
	if out, _, err = flag("", "disable", "banner", "--reason", "incident"); err != nil || out != "banner: DISABLED\n" {
		t.Errorf("disable: %q, %v; want one line", out, err)
	}
	out, _, err = flag("", "get", "banner", "-o", "json")
	var v source.View
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.State != "DISABLED" || v.KillSwitch == nil {
		t.Errorf("get -o json: %q, %v; want banner DISABLED by the kill switch", out, err)
	}
	if out, _, err = flag("", "enable", "banner"); err != nil || out != "banner: ENABLED\n" {
		t.Errorf("enable: %q, %v", out, err)
	}
	doc := `{"flags": {"a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"}, "color": {"state":"ENABLED","variants":{"red":"#c00","blue":"#00c"},"defaultVariant":"blue"}}}`
	if out, _, err = flag(doc, "apply", "-f", "-"); err != nil || out != "a: applied\ncolor: unchanged\n" {
		t.Errorf("apply: %q, %v", out, err)
	}
	_, errOut, err := flag(`{"flags": {"b": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "y"}}}`, "apply", "-f", "-")
	if err == nil || !strings.Contains(errOut, "flags.b.defaultVariant") {
		t.Errorf("apply of an invalid document: %q, %v; want its JSON path and a failure", errOut, err)
	}
	if _, _, err = flag("", "get", "nope"); err == nil || !strings.Contains(err.Error(), "aviary flag list") {
		t.Errorf("get of an unknown flag: %v; want not found, pointing at aviary flag list", err)
	}
	if _, _, err = flag("", "delete", "banner"); err == nil || !strings.Contains(err.Error(), "disable") {
		t.Errorf("delete of a file's flag: %v; want a conflict pointing at disable", err)
	}
	if out, _, err = flag("", "delete", "color"); err != nil || out != "color: deleted\n" {
		t.Errorf("delete: %q, %v", out, err)
	}
}
