package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/server"
)

// serveForCLI runs aviary serve on a config of one service, shop, and returns its admin URL.
func serveForCLI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "aviary.yaml")
	cfg := `gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
			Started: func(_, admin string) { started <- admin }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case admin := <-started:
		return "http://" + admin
	case err := <-done:
		t.Fatalf("serve stopped before it started: %v", err)
	case <-time.After(time.Minute): // a deadline, not a measure: a loaded machine starts slowly
		t.Fatal("serve did not start within a minute")
	}
	return ""
}

// The CLI against a real aviary serve (its browser guard included): apply a service, delete it,
// and be told why a service of the config file cannot be deleted.
func TestDeleteServiceCommand(t *testing.T) {
	srv := serveForCLI(t)
	extra := `services:
  - name: extra
    match: {pathPrefix: /extra}
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
`
	if _, _, err := aviary(t, time.Minute, extra, "--server", srv, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v", err)
	}
	out, err := run(t, "--server", srv, "delete", "service", "extra")
	if err != nil || !strings.Contains(out, "deleted the applied spec of extra; no longer served") {
		t.Fatalf("delete service extra: %q, %v", out, err)
	}
	list, err := run(t, "--server", srv, "get", "services")
	if err != nil || strings.Contains(list, "extra") || !strings.Contains(list, "shop") {
		t.Errorf("get services after the delete: %q, %v; want shop alone", list, err)
	}
	_, err = run(t, "--server", srv, "delete", "service", "shop")
	wantError(t, "delete service shop", err, "delete shop", "comes from the config file", "remove it from the file")
	_, err = run(t, "--server", srv, "delete", "service", "nosuch", "--force")
	wantError(t, "delete service nosuch", err, "no service named nosuch")
}
