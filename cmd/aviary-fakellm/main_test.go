package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/polltest"
)

func TestRunServesAndStops(t *testing.T) {
	portFile := filepath.Join(t.TempDir(), "port")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--port-file", portFile, "--name", "v9", "--ttft", "0s", "--token-every", "0s", "--output-tokens", "3"}, io.Discard)
	}()

	var addr string
	polltest.Wait(t, 10*time.Second, "the port file", func() bool {
		b, err := os.ReadFile(portFile)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	})
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Aviary-Upstream") != "v9" || !strings.Contains(string(b), "[q=0.90]") {
		t.Errorf("answer %d %v %s", resp.StatusCode, resp.Header, b)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return after its context was done")
	}
}

func TestFlagsAreValidated(t *testing.T) {
	var stderr strings.Builder
	_, err := parseFlags([]string{"--error-rate", "5", "--quality", "2", "--ttft", "-1s"}, &stderr)
	for _, field := range []string{"--error-rate:", "--quality:", "--ttft:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v, want it to name %s", err, field)
		}
	}
	if _, err := parseFlags([]string{"extra"}, &stderr); err == nil {
		t.Errorf("a stray argument was accepted")
	}
}
