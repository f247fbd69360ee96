// Command aviary is Aviary's one binary: the gateway and its admin API (serve), the Kubernetes
// controller (controller), config checks (validate), the clients of both (get, rollout, apply),
// and the version.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/config"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module version.
var version = ""

func main() {
	if err := newRoot().Execute(); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec)) // the command printed what was wrong
		}
		fmt.Fprintln(os.Stderr, "aviary:", err)
		os.Exit(1)
	}
}

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "aviary",
		Short:         "Progressive delivery: release a new version to a share of traffic, judge it, promote or roll back",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newController(), newValidate(), newVersion(), newDemo())
	addClientCommands(root) // get, rollout, apply: clients of a running aviary's admin API
	root.AddCommand(newGenDocs())
	return root
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func newValidate() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file and print every error with its field path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d error(s):\n", file, len(errs))
					for _, e := range errs {
						fmt.Fprintln(cmd.ErrOrStderr(), "  "+e.Error())
					}
					return exitCode(1)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d service(s))\n", file, len(cfg.Services))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "aviary.yaml", "config file")
	return cmd
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "aviary", buildVersion())
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		return v
	}
	return "unknown"
}
