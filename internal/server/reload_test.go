package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/server"
)

// A valid new config moves traffic, whichever way the reload is asked for. Only the file-change case
// watches the file, so that each other case passes only through its own trigger.
func TestValidReloadMovesTraffic(t *testing.T) {
	triggers := []struct {
		name      string
		watchFile bool
		reload    func(t *testing.T, a *aviary)
	}{
		{"file renamed over the config", true, func(*testing.T, *aviary) {}},
		{"POST /api/v1/config/reload", false, func(t *testing.T, a *aviary) {
			if code, res := a.reload(); code != http.StatusOK || !res.Accepted {
				t.Fatalf("reload answered %d %+v, want 200 and accepted", code, res)
			}
		}},
		{"SIGHUP", false, func(t *testing.T, _ *aviary) { sighup(t) }},
	}
	for _, tr := range triggers {
		t.Run(tr.name, func(t *testing.T) {
			v1, v2 := upstream(t, "v1"), upstream(t, "v2")
			a := start(t, shop{v1: []string{v1}, v2: []string{v2}, w1: 100, w2: 0}.YAML(), tr.watchFile)
			a.expectServedBy("v1", 10)
			if st := a.configStatus(); st.LastReload != nil {
				t.Fatalf("lastReload before any reload: %+v", st.LastReload)
			}

			replaceFile(t, a.configPath, shop{v1: []string{v1}, v2: []string{v2}, w1: 0, w2: 100}.YAML())
			tr.reload(t, a)

			eventually(t, 5*time.Second, "traffic to move to v2", func() bool {
				_, body := a.get("/")
				return body == "v2"
			})
			a.expectServedBy("v2", 10)
			st := a.configStatus()
			if st.LastReload == nil || !st.LastReload.Accepted || len(st.LastReload.Errors) > 0 {
				t.Fatalf("GET /api/v1/config: lastReload %+v, want accepted with no errors", st.LastReload)
			}
		})
	}
}

// An invalid new config is refused: the config in force keeps serving, and both the admin API and the
// reload answer say what is wrong and where.
func TestInvalidReloadKeepsTheConfigInForce(t *testing.T) {
	cases := []struct {
		name    string
		traffic string
		want    []string
	}{
		{
			name:    "weight out of range",
			traffic: "[{version: v1, weight: 0}, {version: v2, weight: 140}]",
			want:    []string{"services[0].traffic[1].weight: 140 is not in 0..100", "services[0].traffic: weights add up to 140"},
		},
		{
			name:    "unknown key",
			traffic: "[{version: v1, weight: 0}, {version: v2, wieght: 100}]",
			want:    []string{"services[0].traffic[1].wieght", "unknown field"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v1, v2 := upstream(t, "v1"), upstream(t, "v2")
			a := start(t, shop{v1: []string{v1}, v2: []string{v2}, w1: 100, w2: 0}.YAML(), true)
			a.expectServedBy("v1", 5)
			loadedAt := a.configStatus().LoadedAt

			replaceFile(t, a.configPath, shop{v1: []string{v1}, v2: []string{v2}, traffic: tc.traffic}.YAML())

			var st configStatus
			eventually(t, 5*time.Second, "the file watcher to try the new file", func() bool {
				st = a.configStatus()
				return st.LastReload != nil
			})
			if st.LastReload.Accepted {
				t.Fatalf("invalid config accepted: %+v", st.LastReload)
			}
			if m := missing(st.LastReload.Errors, tc.want...); len(m) > 0 {
				t.Errorf("GET /api/v1/config errors %q lack %q", st.LastReload.Errors, m)
			}
			if !st.LoadedAt.Equal(loadedAt) {
				t.Errorf("loadedAt moved from %v to %v on a refused reload", loadedAt, st.LoadedAt)
			}
			a.expectServedBy("v1", 10)

			code, res := a.reload()
			if code != http.StatusUnprocessableEntity || res.Accepted {
				t.Fatalf("POST /api/v1/config/reload answered %d %+v, want 422 and not accepted", code, res)
			}
			if m := missing(res.Errors, tc.want...); len(m) > 0 {
				t.Errorf("reload errors %q lack %q", res.Errors, m)
			}
			a.expectServedBy("v1", 10)
		})
	}
}

// A config file renamed into place the moment Aviary reports it has started (a deploy that waits for
// "ready", then writes the new config) is reloaded, not missed: the file is watched before Started is
// called. The file is replaced inside Started itself, before Run goes on.
//
// SIGHUP is set up at the same point, but a test cannot show it without risking the test binary: a
// SIGHUP nobody handles kills the process, and a guard handler would make the race invisible.
func TestConfigRenamedOnceStartedIsReloaded(t *testing.T) {
	v1, v2 := upstream(t, "v1"), upstream(t, "v2")
	path := configFile(t, shop{v1: []string{v1}, v2: []string{v2}, w1: 100, w2: 0}.YAML())
	next := shop{v1: []string{v1}, v2: []string{v2}, w1: 0, w2: 100}.YAML()
	var renamed error
	a := run(t, path, server.Options{WatchFile: true, Started: func(string, string) {
		renamed = writeAndRename(path, next)
	}})
	if renamed != nil {
		t.Fatal(renamed)
	}
	eventually(t, 5*time.Second, "traffic to move to v2", func() bool {
		_, body := a.get("/")
		return body == "v2"
	})
}

// A config mounted from a Kubernetes ConfigMap is reloaded when the ConfigMap changes, although the
// file's own name sees no event: the file is a symlink through "..data", which the kubelet swaps.
func TestConfigMapUpdateIsReloaded(t *testing.T) {
	v1, v2 := upstream(t, "v1"), upstream(t, "v2")
	dir := t.TempDir()
	publishConfigMap(t, dir, "..2026_01", shop{v1: []string{v1}, v2: []string{v2}, w1: 100, w2: 0}.YAML())
	path := filepath.Join(dir, "aviary.yaml")
	if err := os.Symlink(filepath.Join("..data", "aviary.yaml"), path); err != nil {
		t.Fatal(err)
	}
	a := run(t, path, server.Options{WatchFile: true})
	a.expectServedBy("v1", 5)

	publishConfigMap(t, dir, "..2026_02", shop{v1: []string{v1}, v2: []string{v2}, w1: 0, w2: 100}.YAML())
	eventually(t, 5*time.Second, "traffic to move to v2", func() bool {
		_, body := a.get("/")
		return body == "v2"
	})
}

// publishConfigMap does what the kubelet does when a ConfigMap changes: it writes the files to a new
// hidden directory, then renames a new "..data" symlink to it over the old one.
func publishConfigMap(t *testing.T, dir, version, config string) {
	t.Helper()
	err := os.Mkdir(filepath.Join(dir, version), 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, version, "aviary.yaml"), []byte(config), 0o644)
	}
	if err == nil {
		err = os.Symlink(version, filepath.Join(dir, "..data_tmp"))
	}
	if err == nil {
		err = os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	}
	if err != nil {
		t.Fatalf("publish ConfigMap version %s: %v", version, err)
	}
}

// threeServices is a config of three services, each at its own path, served by up (v1 of each).
func threeServices(up string, extra string) string {
	var b strings.Builder
	b.WriteString("gateway: {listen: \"127.0.0.1:0\"}\nadmin: {listen: \"127.0.0.1:0\"}\n" + extra + "services:\n")
	for _, name := range []string{"shop", "cart", "search"} {
		fmt.Fprintf(&b, "  - name: %s\n    match: {pathPrefix: /%s}\n    versions: [{name: v1, endpoints: [%q]}]\n", name, name, up)
	}
	return b.String()
}

// An emptied or half-written config file is refused, by the watcher and by an asked-for reload
// alike: the services in force keep serving. The file can say that a mass removal is meant.
func TestEmptiedOrCutConfigIsRefused(t *testing.T) {
	up := upstream(t, "v1")
	whole := threeServices(up, "")
	cut := whole[:strings.Index(whole, "  - name: cart")]
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"emptied", "", []string{"services: the new file is empty: it removes all 3 services in force (shop, cart, search)"}},
		{"cut short", cut, []string{"services: the new file removes 2 of the 3 services in force (cart, search): is it cut short?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, whole, true)
			// In place, as a truncating writer does: the watcher sees the file as it is left.
			if err := os.WriteFile(a.configPath, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			var st configStatus
			eventually(t, 5*time.Second, "the file watcher to try the new file", func() bool {
				st = a.configStatus()
				return st.LastReload != nil
			})
			if st.LastReload.Accepted {
				t.Fatalf("the %s file was accepted: %+v", tc.name, st.LastReload)
			}
			want := append(tc.want, "If that is meant, set reload.allowMassRemoval: true in the file")
			if m := missing(st.LastReload.Errors, want...); len(m) > 0 {
				t.Errorf("errors %q lack %q", st.LastReload.Errors, m)
			}
			if code, res := a.reload(); code != http.StatusUnprocessableEntity || res.Accepted {
				t.Errorf("POST /api/v1/config/reload answered %d %+v, want 422 and not accepted", code, res)
			}
			for _, path := range []string{"/shop", "/cart", "/search"} {
				if code, body := a.get(path); code != http.StatusOK || body != "v1" {
					t.Errorf("GET %s after the refused reload: %d %q, want 200 v1", path, code, body)
				}
			}
		})
	}
	t.Run("allowed", func(t *testing.T) {
		a := start(t, whole, false)
		replaceFile(t, a.configPath, "reload: {allowMassRemoval: true}\n"+cut)
		if code, res := a.reload(); code != http.StatusOK || !res.Accepted {
			t.Fatalf("the reload that is allowed to remove most services answered %d %+v", code, res)
		}
		if code, _ := a.get("/cart"); code != http.StatusNotFound {
			t.Errorf("GET /cart after it was removed: %d, want 404", code)
		}
		if code, body := a.get("/shop"); code != http.StatusOK || body != "v1" {
			t.Errorf("GET /shop, which was kept: %d %q, want 200 v1", code, body)
		}
	})
}
