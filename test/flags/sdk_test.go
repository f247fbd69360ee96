//go:build e2e

package flags_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"aviary.dev/aviary/test/e2e"
)

// TestNodeServerSDK runs server.test.mjs (node's test runner) against a running aviary: every
// flag type, targeting, FLAG_NOT_FOUND and TYPE_MISMATCH, keys, a change through the API, and the
// kill switch with its event.
func TestNodeServerSDK(t *testing.T) {
	needNode(t)
	t.Parallel()
	sdk := filepath.Join(e2e.ModuleRoot(t), "test", "flags", "sdk")
	e2e.NpmCI(t, sdk)
	s := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "server.test.mjs")
	node.Dir = sdk
	node.Env = append(os.Environ(), "AVIARY_GW="+s.gw, "AVIARY_ADMIN="+s.admin, "AVIARY_KEY="+evalKey, "AVIARY_TOKEN="+adminToken)
	out, err := node.CombinedOutput()
	t.Logf("node --test server.test.mjs:\n%s", out)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "aviary.log"))
		t.Fatalf("the Node server SDK suite failed: %v\naviary's log:\n%s", err, log)
	}
}
