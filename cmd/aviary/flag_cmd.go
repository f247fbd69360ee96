package main

// aviary flag: the feature flags of a running aviary, through its admin API (/api/v1/flags). The
// rollout commands of a flag (promote, pause, resume, abort, rollout status) come with flag
// rollouts.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/flags/source"
)

func flagPath(key, rest string) string { return "/api/v1/flags/" + url.PathEscape(key) + rest }

// oneFlag accepts exactly one argument, the flag's key.
func oneFlag(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one argument, the flag's key (got %d); see %s --help", cmd.CommandPath(), len(args), cmd.CommandPath())
	}
	return nil
}

func newFlag(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flag",
		Short: "List, set, apply, enable and disable the feature flags of a running aviary, and steer their rollouts",
		Long: `The feature flags a running aviary serves over OFREP: from the flag files of its config
(flags.files) and set through its API. A flag set here overrides a file's flag of the same key;
disable is the kill switch: every SDK gets the default in its code within a second, whatever the
flag's source, until enable. promote, pause, resume, abort and rollout status steer the rollout of a
flag's variant (services[].flags[].release in the config; see docs/flag-rollouts.md). See
docs/flags.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newFlagList(o), newFlagGet(o), newFlagSet(o), newFlagApply(o), newFlagDelete(o),
		newFlagSwitch(o, "disable", "Turn a flag off everywhere (the kill switch): every SDK gets its code default"),
		newFlagSwitch(o, "enable", "Turn a flag on again after disable"))
	cmd.AddCommand(flagRolloutCommands(o)...)
	return cmd
}

func newFlagList(o *clientOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the flags in force with their state, source and default variant",
		Long: `List the flags a running aviary serves: key, state (DISABLED when the kill switch or the
definition says so), where the flag comes from (a flag file, or api), its default variant and its
variants. Flag files that were refused are listed after the flags, with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			return getAndPrint(cmd, c, "list flags", "/api/v1/flags", output, printFlags)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printFlags(w io.Writer, list api.FlagList) error {
	if len(list.Flags) == 0 {
		fmt.Fprintln(w, "no flags: name flag files in flags.files, or set one with aviary flag set")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(list.Flags) > 0 {
		fmt.Fprintln(tw, "KEY\tSTATE\tSOURCE\tDEFAULT\tVARIANTS")
	}
	for _, f := range list.Flags {
		state := string(f.State)
		if f.KillSwitch != nil {
			state += " (by " + f.KillSwitch.By + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Key, state, f.Source, firstSet(f.DefaultVariant, "-"), strings.Join(variantNames(f), ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, file := range list.Status.Files {
		if file.Error != "" {
			fmt.Fprintf(w, "refused: %s\n", file.Error)
		}
	}
	return nil
}

func variantNames(f source.View) []string {
	names := make([]string, 0, len(f.Variants))
	for n := range f.Variants {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func newFlagGet(o *clientOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Show one flag: its definition in force, source and kill-switch state",
		Args:  oneFlag,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			return getAndPrint(cmd, c, "read flag "+args[0], flagPath(args[0], ""), output, printFlag)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printFlag(w io.Writer, v source.View) error {
	fmt.Fprintf(w, "Flag:     %s\nState:    %s\nSource:   %s\nDefault:  %s\n", v.Key, v.State, v.Source, firstSet(v.DefaultVariant, "- (the code default)"))
	if v.KillSwitch != nil {
		fmt.Fprintf(w, "Switched: %s by %s at %s%s\n", v.KillSwitch.State, v.KillSwitch.By, v.KillSwitch.At.Format("2006-01-02 15:04:05Z07:00"),
			reasonSuffix(v.KillSwitch.Reason))
	}
	if v.SetBy != "" && v.SetAt != nil {
		fmt.Fprintf(w, "Set:      by %s at %s\n", v.SetBy, v.SetAt.Format("2006-01-02 15:04:05Z07:00"))
	}
	fmt.Fprintln(w, "Variants:")
	for _, n := range variantNames(v) {
		b, _ := json.Marshal(v.Variants[n])
		fmt.Fprintf(w, "  %s: %s\n", n, b)
	}
	if len(v.Targeting) > 0 && string(v.Targeting) != "{}" && string(v.Targeting) != "null" {
		var buf bytes.Buffer
		if json.Indent(&buf, v.Targeting, "  ", "  ") == nil {
			fmt.Fprintf(w, "Targeting:\n  %s\n", buf.String())
		}
	}
	return nil
}

func newFlagSet(o *clientOptions) *cobra.Command {
	var file, output string
	cmd := &cobra.Command{
		Use:   "set KEY -f FILE",
		Short: "Set one flag from its definition in flagd's JSON",
		Long: `Set one flag through the API from its definition in flagd's JSON: the value of
"flags": {KEY: ...}, with state, variants, defaultVariant, and optionally targeting and metadata.
It is stored (it survives restarts) and overrides a flag of the same key from the flag files. An
invalid definition changes nothing; the error names the JSON path.`,
		Example: `  aviary flag set new-checkout -f new-checkout.json
  echo '{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}' | aviary flag set new-checkout -f -`,
		Args: oneFlag,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			body, c, err := inputAndClient(cmd, o, file, "the file with the flag's definition")
			if err != nil {
				return err
			}
			raw, err := c.send(cmd.Context(), "set flag "+args[0], http.MethodPut, flagPath(args[0], ""), "application/json", bytes.NewReader(body))
			return printFlagAnswer(cmd, raw, err, output)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the JSON file with the flag's definition; - reads stdin")
	addOutputFlag(cmd, &output)
	return cmd
}

// printFlagAnswer prints the flag an API call answered with, or its validation errors.
func printFlagAnswer(cmd *cobra.Command, raw []byte, err error, output string) error {
	if err := validationErrors(cmd, err); err != nil {
		return err
	}
	return printAnswer(cmd, raw, output, "a flag", printFlag)
}

// validationErrors prints a 422's errors and turns it into exit status 1; other errors pass.
func validationErrors(cmd *cobra.Command, err error) error {
	var apiErr *apiError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnprocessableEntity && len(apiErr.Errors) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d error(s), nothing changed:\n", apiErr.Op, len(apiErr.Errors))
		for _, e := range apiErr.Errors {
			fmt.Fprintln(cmd.ErrOrStderr(), "  "+e)
		}
		return exitCode(1)
	}
	return err
}

func newFlagApply(o *clientOptions) *cobra.Command {
	var file, output string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Set every flag of a flagd JSON document",
		Long: `Set every flag of a flagd JSON document ({"flags": {...}}) through the API, in one change: all
of them, or none when one is invalid. Flags the document does not name stay as they are. It prints
which flags changed and which were unchanged.`,
		Example: `  aviary flag apply -f flags.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			body, c, err := inputAndClient(cmd, o, file, "the flagd JSON file to apply")
			if err != nil {
				return err
			}
			raw, err := c.send(cmd.Context(), "apply "+file, http.MethodPost, "/api/v1/flags", "application/json", bytes.NewReader(body))
			if err := validationErrors(cmd, err); err != nil {
				return err
			}
			return printAnswer(cmd, raw, output, "an apply result", printApplyResult)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the flagd JSON file to apply; - reads stdin")
	addOutputFlag(cmd, &output)
	return cmd
}

func newFlagDelete(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a flag set through the API (a flag file's flag of the same key is served again)",
		Args:  oneFlag,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			if _, err := c.send(cmd.Context(), "delete flag "+args[0], http.MethodDelete, flagPath(args[0], ""), "application/json", nil); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), args[0]+": deleted")
			return err
		},
	}
}

func newFlagSwitch(o *clientOptions, action, short string) *cobra.Command {
	var reason, output string
	cmd := &cobra.Command{
		Use:   action + " KEY",
		Short: short,
		Long: short + `. The state is stored (it survives restarts), holds whatever the flag's
source says until changed again, and is recorded as an event with who did it.`,
		Example: fmt.Sprintf("  aviary flag %s new-checkout --reason \"checkout errors\"", action),
		Args:    oneFlag,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var v source.View
			raw, err := c.call(cmd.Context(), action+" flag "+args[0], http.MethodPost, flagPath(args[0], "/"+action), api.SwitchRequest{Reason: reason}, &v)
			if err != nil {
				return err
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", v.Key, v.State)
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the event")
	addOutputFlag(cmd, &output)
	return cmd
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// getAndPrint reads path from the API and prints it: the API's own JSON with -o json, else print's
// text.
func getAndPrint[T any](cmd *cobra.Command, c *apiClient, op, path, output string, print func(io.Writer, T) error) error {
	raw, err := c.send(cmd.Context(), op, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	return printAnswer(cmd, raw, output, op+"'s answer", print)
}

// printAnswer prints an API answer: its own JSON with -o json, else print's text of it decoded
// (what names what it should be, for the error of an answer that is not).
func printAnswer[T any](cmd *cobra.Command, raw []byte, output, what string, print func(io.Writer, T) error) error {
	if output == "json" {
		_, err := cmd.OutOrStdout().Write(raw)
		return err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("the answer is not %s (%w); is the server the same version as the CLI?", what, err)
	}
	return print(cmd.OutOrStdout(), v)
}

// printApplyResult says which flags a document changed.
func printApplyResult(w io.Writer, res source.ApplyResult) error {
	for _, k := range res.Applied {
		fmt.Fprintln(w, k+": applied")
	}
	for _, k := range res.Unchanged {
		fmt.Fprintln(w, k+": unchanged")
	}
	return nil
}
