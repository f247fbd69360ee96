package main

// aviary experiment: the experiments of a running aviary, through its admin API
// (/api/v1/experiments). See docs/experiments.md.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/store"
)

func experimentPath(name, rest string) string {
	return "/api/v1/experiments/" + url.PathEscape(name) + rest
}

func oneExperiment(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one argument, the experiment's name (got %d); aviary experiment list shows them", cmd.CommandPath(), len(args))
	}
	return nil
}

func newExperiment(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "experiment",
		Short: "List, start and stop the experiments of a running aviary, and read their results",
		Long: `The experiments of a running aviary's config (experiments:): A/B tests whose arms are variants
of a flag or versions of a service. A unit is counted in an arm at its first exposure; apps send
outcome events to POST /api/v1/track. Results are anytime-valid: read them as often as you like.
See docs/experiments.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newExperimentList(o), newExperimentChange(o, "start", "Start an experiment (one in the config file starts with the server)"),
		newExperimentChange(o, "stop", "Stop an experiment: later units and events no longer count, and it stays stopped"),
		newExperimentConclude(o),
		newExperimentResults(o, "status", "Show an experiment's phase, units per arm and decision"),
		newExperimentResults(o, "results", "Show an experiment's results: every metric and arm against control"))
	return cmd
}

// jsonOr runs the call and prints the raw JSON, or hands the decoded value to text.
func jsonOr[T any](o *clientOptions, cmd *cobra.Command, output, what, method, path string, text func(io.Writer, T) error) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var v T
	var body any
	if method == http.MethodPost {
		body = struct{}{} // a change carries a JSON body, even an empty one
	}
	raw, err := c.call(cmd.Context(), what, method, path, body, &v)
	if err != nil {
		return err
	}
	if output == "json" {
		_, err := cmd.OutOrStdout().Write(raw)
		return err
	}
	return text(cmd.OutOrStdout(), v)
}

func newExperimentList(o *clientOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the experiments with their phases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return jsonOr(o, cmd, output, "list experiments", http.MethodGet, "/api/v1/experiments", printExperiments)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printExperiments(w io.Writer, list struct {
	Experiments []experiment.Summary `json:"experiments"`
}) error {
	if len(list.Experiments) == 0 {
		_, err := fmt.Fprintln(w, "no experiments: add one under experiments: in the config (docs/experiments.md)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tON\tARMS\tPHASE\tSTARTED")
	for _, e := range list.Experiments {
		on := "flag " + e.Flag
		if e.Service != "" {
			on = "service " + e.Service
		}
		started := "-"
		if !e.Started.IsZero() {
			started = e.Started.Format("2006-01-02 15:04Z07:00")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, on, strings.Join(e.Arms, ","), firstSet(string(e.Phase), "not started"), started)
	}
	return tw.Flush()
}

func newExperimentChange(o *clientOptions, action, short string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     action + " NAME",
		Short:   short,
		Example: "  aviary experiment " + action + " checkout-button",
		Args:    oneExperiment,
		RunE: func(cmd *cobra.Command, args []string) error {
			return jsonOr(o, cmd, output, action+" experiment "+args[0], http.MethodPost, experimentPath(args[0], "/"+action),
				func(w io.Writer, st store.ExperimentState) error {
					_, err := fmt.Fprintf(w, "%s: %s\n", st.Name, st.Phase)
					return err
				})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newExperimentConclude(o *clientOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "conclude NAME ARM",
		Short: "Conclude an experiment by shipping one arm: a rollout of its version or flag variant, judged like any other",
		Long: `Conclude an experiment by shipping one arm: the experiment ends, and for arms that are versions
of a service a rollout of the arm's version starts, with the service's strategy and analysis; for
arms that are variants of a flag, a flag rollout of the variant to every user starts in the service
the flag is bound to (services[].flags), by the flag's strategy. Shipping control starts nothing.`,
		Example: "  aviary experiment conclude checkout-button green",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("%s takes two arguments, the experiment and the arm to ship (got %d)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var st store.ExperimentState
			raw, err := c.call(cmd.Context(), "conclude experiment "+args[0], http.MethodPost, experimentPath(args[0], "/conclude"), api.ConcludeRequest{Arm: args[1]}, &st)
			if err != nil {
				return err
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, shipping %s\n", st.Name, st.Phase, st.Shipped)
			return err
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newExperimentResults(o *clientOptions, use, short string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  oneExperiment,
		RunE: func(cmd *cobra.Command, args []string) error {
			print := printStatus
			if use == "results" {
				print = printResults
			}
			return jsonOr(o, cmd, output, "read the results of experiment "+args[0], http.MethodGet, experimentPath(args[0], "/results"), print)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printStatus(w io.Writer, r experiment.Results) error {
	fmt.Fprintf(w, "Experiment: %s\nPhase:      %s since %s\n", r.Experiment, r.Phase, r.Started.Format("2006-01-02 15:04Z07:00"))
	for _, a := range r.Arms {
		fmt.Fprintf(w, "Arm:        %s, %d units (weight %g)\n", a.Name, a.Units, a.Weight)
		if a.Stopped != nil {
			fmt.Fprintf(w, "STOPPED:    %s at %s\n", a.Stopped.Reason, a.Stopped.At.Format("2006-01-02 15:04:05Z07:00"))
		}
	}
	if r.SRM != nil && r.SRM.Mismatch {
		fmt.Fprintln(w, "SAMPLE RATIO MISMATCH: the split is not the configured one; no winner until it is explained")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note:       %s\n", n)
	}
	_, err := fmt.Fprintf(w, "Decision:   %s\n", r.Decision.Text)
	return err
}

func printResults(w io.Writer, r experiment.Results) error {
	if err := printStatus(w, r); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nMETRIC\tARM\tUNITS\tCONTROL\tARM MEAN\tEFFECT\tANYTIME-VALID\tFIXED-HORIZON\tP (SEQ, ADJ)\tCUPED")
	for _, m := range r.Metrics {
		name := m.Metric
		if m.Guardrail {
			name += " (guardrail)"
		}
		for _, a := range m.Arms {
			eff, seq, fixed := fmt.Sprintf("%+.4g", a.Absolute.Estimate), span(a.Absolute.Sequential.Lo, a.Absolute.Sequential.Hi, "%+.4g"), span(a.Absolute.Fixed.Lo, a.Absolute.Fixed.Hi, "%+.4g")
			if a.Relative != nil {
				eff, seq, fixed = fmt.Sprintf("%+.2f%%", 100*a.Relative.Estimate), span(100*a.Relative.Sequential.Lo, 100*a.Relative.Sequential.Hi, "%+.2f%%"), span(100*a.Relative.Fixed.Lo, 100*a.Relative.Fixed.Hi, "%+.2f%%")
			}
			cuped := "-"
			if a.CUPED != nil {
				cuped = fmt.Sprintf("variance -%.0f%%", 100*a.CUPED.VarianceReduction)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.4g\t%.4g\t%s\t%s\t%s\t%.3g\t%s\n", name, a.Arm, a.ArmUnits, a.ControlMean, a.ArmMean, eff, seq, fixed, a.PSequentialAdjusted, cuped)
		}
	}
	return tw.Flush()
}

func span(lo, hi float64, f string) string { return fmt.Sprintf(f+" to "+f, lo, hi) }
