package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/admin"
)

// adminFlags are the flags of the controller's admin listener: the dashboard and its API.
type adminFlags struct {
	addr                string
	adminFile, readFile string
	allowedHosts        []string
	opts                *admin.Options // what extra was built with, for tests
}

func (a *adminFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&a.addr, "admin-bind-address", "127.0.0.1:8082",
		`address of the dashboard (/ui/) and the admin API (/api/v1); "0" turns it off`)
	fl.StringVar(&a.adminFile, "admin-token-file", "",
		"file holding the admin token, which may steer rollouts (default $AVIARY_ADMIN_TOKEN)")
	fl.StringVar(&a.readFile, "read-token-file", "",
		"file holding the read token, which may only read (default $AVIARY_READ_TOKEN)")
	fl.StringSliceVar(&a.allowedHosts, "admin-allowed-host", nil,
		"a name (or name:port) the admin API is reached by for changes, such as an Ingress host; repeatable")
}

// extra is what adds the admin listener to the controller's manager (nil when it is off). The
// tokens come from the files, else the environment; they are never logged.
func (a *adminFlags) extra(log *slog.Logger, namespace string) (func(ctrl.Manager, k8s.Reports) error, error) {
	if a.addr == "0" {
		return nil, nil
	}
	adminTok, err := tokenFrom("--admin-token-file", a.adminFile, "AVIARY_ADMIN_TOKEN")
	if err != nil {
		return nil, err
	}
	readTok, err := tokenFrom("--read-token-file", a.readFile, "AVIARY_READ_TOKEN")
	if err != nil {
		return nil, err
	}
	if adminTok != "" && adminTok == readTok {
		return nil, fmt.Errorf("the admin and the read token are the same: give the read token a value of its own")
	}
	o := admin.Options{Addr: a.addr, Namespace: namespace, Tokens: api.Tokens{Admin: adminTok, Read: readTok}, AllowedHosts: a.allowedHosts,
		Logger: log.With("component", "admin")}
	if err := admin.CheckExposure(o.Addr, o.Tokens); err != nil {
		return nil, err
	}
	a.opts = &o
	return admin.Add(o), nil
}

// tokenFrom reads a token from file, or else from the environment variable env.
func tokenFrom(flag, file, env string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(env)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w; mount the Secret that holds the token there, or set %s", flag, err, env)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s %s: the file is empty; put the token in it", flag, file)
	}
	return tok, nil
}
