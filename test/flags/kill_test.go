//go:build e2e

package flags_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestKillSwitchSurvivesKill9: a flag disabled and a flag set through the API are still so after
// aviary is killed with SIGKILL the moment the API answered, and started again on the same store.
func TestKillSwitchSurvivesKill9(t *testing.T) {
	t.Parallel()
	s := serve(t)
	s.adminAPI(t, "PUT", "/api/v1/flags/string-flag", `{"state":"ENABLED","variants":{"hi":"hello","bye":"goodbye"},"defaultVariant":"hi"}`)
	s.adminAPI(t, "POST", "/api/v1/flags/bool-flag/disable", `{"reason": "kill -9 test"}`)
	s.proc.Kill() // SIGKILL, by the child's own PID, the moment the API answered
	s.start(t)
	for flag, want := range map[string]string{"bool-flag": `"reason":"DISABLED"`, "string-flag": `"value":"hello"`} {
		req, _ := http.NewRequest("POST", s.gw+"/ofrep/v1/evaluate/flags/"+flag, strings.NewReader(`{"context": {}}`))
		req.Header.Set("X-API-Key", evalKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) || !json.Valid(body) {
			t.Errorf("%s after kill -9 and a restart: %d %s, want %s", flag, resp.StatusCode, body, want)
		}
	}
}
