//go:build e2e

// Package demo_test runs `aviary demo` as a user would, from a fresh build of the binary, and
// checks that it tells the story it promises: one rollout promoted, one rolled back by the judge,
// with the evidence.
package demo_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemoPromotesOneRolloutAndRollsBackTheOther(t *testing.T) {
	t.Parallel()
	runDemo(t, []string{"dashboard: http://127.0.0.1:", "/ui/", "=> promoted: v2 is stable", "=> rolled back by itself", "evidence", "v2 serves everyone"}, "demo")
}

func TestLLMDemoPromotesOneModelAndRollsBackTheOther(t *testing.T) {
	t.Parallel()
	runDemo(t, []string{"dashboard: http://127.0.0.1:", "=> promoted: v2 is stable", "=> rolled back by itself", "first tokens slower than", "evaluation quality"}, "demo", "llm")
}

func TestFlagsDemoReleasesByFlagRollsBackAndKills(t *testing.T) {
	t.Parallel()
	runDemo(t, []string{`"variant":"on"`, "=> promoted: on is stable", "=> rolled back by itself", `"reason":"DISABLED"`,
		"exposures kept for experiments"}, "demo", "flags")
}

// runDemo builds aviary, runs it with args, and checks its output says each of wants.
func runDemo(t *testing.T, wants []string, args ...string) {
	bin := filepath.Join(t.TempDir(), "aviary")
	build := exec.Command("go", "build", "-o", bin, "aviary.dev/aviary/cmd/aviary")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build aviary: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("aviary demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, text)
		}
	}
	t.Logf("demo output:\n%s", text)
}
