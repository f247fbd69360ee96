package main

// The commands of a flag's rollout: status, promote, pause, resume and abort. A flag rollout is a
// rollout of the controller like a service's, named flag:KEY, so these ask the same admin API as
// `aviary rollout` does.

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/rollout"
)

// flagRolloutName is the rollout of a flag's variant (gateway.FlagSeriesPrefix + KEY).
func flagRolloutName(key string) string { return "flag:" + key }

// flagRolloutActions are the commands that steer a flag rollout.
var flagRolloutActions = []rolloutAction{
	{rollout.Promote, "End the current step of a flag's rollout, or with --full give the variant to everyone",
		`End the current step of the flag's rollout (a pause, an analysis, a gate) and go on with the next.
With --full the variant goes to every user at once.`,
		`  aviary flag promote new-checkout
  aviary flag promote new-checkout --full --reason "verified by hand"`},
	{rollout.PauseCmd, "Hold a flag's rollout where it is until resume",
		`Hold the flag's rollout at its current step and share of users until resume.`,
		`  aviary flag pause new-checkout --reason "checking the conversion dip"`},
	{rollout.Resume, "Go on with a paused flag rollout", `Go on with a flag rollout that a person paused.`,
		`  aviary flag resume new-checkout`},
	{rollout.Abort, "Stop a flag's rollout: every user is back on the flag's own evaluation",
		`Stop the flag's rollout: no user gets the rolled-out variant any more; each gets what the flag's
definition gives (its default variant, or its targeting), as before the rollout.`,
		`  aviary flag abort new-checkout --reason "errors up in checkout"`},
}

// flagRolloutCommands are added to aviary flag.
func flagRolloutCommands(o *clientOptions) []*cobra.Command {
	var cmds []*cobra.Command
	for _, a := range flagRolloutActions {
		cmds = append(cmds, newActionFor(o, a, flagTarget))
	}
	return append(cmds, newFlagRolloutGroup(o))
}

var flagTarget = rolloutTarget{arg: "KEY", args: oneFlag, name: flagRolloutName, what: "flag rollout",
	full: "skip the remaining steps: every user gets the variant", why: "why, recorded in the flag rollout's events"}

func newFlagRolloutGroup(o *clientOptions) *cobra.Command {
	group := &cobra.Command{
		Use:   "rollout",
		Short: "Watch a flag's rollout",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		output string
		watch  bool
	)
	status := &cobra.Command{
		Use:   "status KEY",
		Short: "Show where a flag's rollout is: phase, share of users, steps, checks and recent events",
		Long: `Show where the rollout of a flag's variant is: its phase and message, the default variant
(stable) and the variant rolled out (canary) with its share of users, the steps, its checks with the
judge's last verdicts on the variants' measurements, and the last events. A flag's rollout is
started by services[].flags[].release in the config (see docs/flags.md).

With --watch the status is shown again on every event until no rollout is in flight.`,
		Example: `  aviary flag rollout status new-checkout
  aviary flag rollout status new-checkout --watch`,
		Args: oneFlag,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			if watch {
				var stop func()
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			name := flagRolloutName(args[0])
			w := &watcher{src: &apiRollout{c: c, svc: name, retry: o.watchEvery}, name: name, out: cmd.OutOrStdout(),
				json: output == "json", every: o.watchEvery}
			if !watch {
				return w.once(ctx)
			}
			w.watching, w.tty = true, isTerminal(cmd.OutOrStdout())
			return w.run(ctx)
		},
	}
	addOutputFlag(status, &output)
	status.Flags().BoolVarP(&watch, "watch", "w", false, "show the status again on every change until no rollout is in flight")
	group.AddCommand(status)
	return group
}
