package main

// The commands that talk to a running aviary's admin API: get services, rollout (status, start,
// the actions, history) and apply. They change nothing themselves; the server decides. With
// -n/--namespace, --kubeconfig or --context they talk to a cluster instead (kube.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/rollout"
)

// eventsShown is how many of a service's events rollout status shows.
const eventsShown = 5

// addClientCommands adds get, rollout and apply to the root, with the --server and --token
// flags they share, and the Kubernetes mode's flags.
func addClientCommands(root *cobra.Command) {
	addClientCommandsWith(root, &clientOptions{watchEvery: 2 * time.Second})
}

func addClientCommandsWith(root *cobra.Command, o *clientOptions) {
	f := root.PersistentFlags()
	f.StringVar(&o.server, "server", "", "admin API URL (default $AVIARY_SERVER, else "+defaultServer+")")
	f.StringVar(&o.token, "token", "", "admin API bearer token (default $AVIARY_TOKEN)")
	root.AddCommand(newGet(o), newRollout(o), newApply(o), newDelete(o), newFlag(o), newExperiment(o))
}

const nsUsage = `Kubernetes mode: the Rollout's namespace (default the kubeconfig context's, else "default")`

func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "text", "text, or json for the API's JSON")
}

func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("--output %q: use text or json", output)
	}
	return nil
}

// oneService accepts exactly one argument, the service's name.
func oneService(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one argument, the service's name (got %d); see %s --help",
			cmd.CommandPath(), len(args), cmd.CommandPath())
	}
	return nil
}

func newGet(o *clientOptions) *cobra.Command {
	get := &cobra.Command{
		Use:   "get",
		Short: "List what a running aviary serves",
		Args:  cobra.NoArgs, // with RunE: an unknown subcommand is an error, not help
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// Only to refuse: Kubernetes mode has no services to list.
	addKubeFlags(get, true, &o.kube, nsUsage)
	var output string
	services := &cobra.Command{
		Use:     "services",
		Aliases: []string{"service", "svc"},
		Short:   "List the services with their rollout phase, versions and endpoint health",
		Long: `List the services of a running aviary: the phase of each one's rollout (unmanaged when no
release manages it), its stable and canary versions, the canary's weight, and for every version how
many of its endpoints are healthy.`,
		Example: `  aviary get services
  aviary get services -o json --server http://gateway-admin:9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.refuseInKube(kubeGetServicesRefused); err != nil {
				return err
			}
			c, err := clientFor(o, output)
			if err != nil {
				return err
			}
			list, raw, err := c.services(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return renderServices(cmd.OutOrStdout(), list)
		},
	}
	addOutputFlag(services, &output)
	get.AddCommand(services)
	return get
}

// refuseInKube is the refusal of a command that has no Kubernetes form, in Kubernetes mode.
func (o *clientOptions) refuseInKube(refusal func(*kubeOptions) error) error {
	kube, err := o.kubeMode()
	if err != nil {
		return err
	}
	if kube {
		return refusal(&o.kube)
	}
	return nil
}

func clientFor(o *clientOptions, output string) (*apiClient, error) {
	if err := checkOutput(output); err != nil {
		return nil, err
	}
	return o.client()
}

func newRollout(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Watch and steer the rollout of a service",
		Long: `Watch and steer the rollout of a service on a running aviary: status shows where it is, start
releases a version, promote, pause, resume, abort, retry, undo and restart steer it, history lists
its revisions. Each command asks the admin API; a command that does not fit the rollout's phase is
refused with what to do instead.

Kubernetes mode: with -n/--namespace, --kubeconfig or --context the same commands work on a Rollout
resource (aviary.dev/v1alpha1) in a cluster, which aviary controller carries out. status reads the
Rollout's status and its Kubernetes Events; promote, pause, resume, abort, retry, undo and restart
go through the Rollout's aviary.dev/command annotation and wait (up to 30s) until the controller
took them, or refused them with what to do; history lists the Rollout's ReplicaSets. A rollout
starts when the Deployment's pod template changes (kubectl set image, kubectl apply), so start
has no Kubernetes form. The cluster is found from --kubeconfig, else $KUBECONFIG, else the
in-cluster config, else ~/.kube/config; the namespace defaults to the kubeconfig context's.`,
		Example: `  aviary rollout status shop --server http://gateway-admin:9090
  aviary rollout status shop -n prod --watch
  aviary rollout promote shop -n prod --context staging`,
		Args: cobra.NoArgs, // with RunE: an unknown subcommand is an error, not help
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addKubeFlags(cmd, true, &o.kube, nsUsage)
	cmd.AddCommand(newRolloutStatus(o), newRolloutStart(o), newRolloutHistory(o))
	for _, a := range rolloutActions {
		cmd.AddCommand(newRolloutAction(o, a))
	}
	return cmd
}

func newRolloutStatus(o *clientOptions) *cobra.Command {
	var (
		output string
		watch  bool
	)
	cmd := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show where a service's rollout is: phase, weights, steps, checks and recent events",
		Long: `Show where a service's rollout is: its phase and message, the stable and canary versions and
the canary's share of traffic, the steps (✓ done, ▶ current, ✗ aborted), why it is paused and for
how long still, its checks with their last verdicts, and the service's last events (in Kubernetes
mode, the Rollout's last Kubernetes Events).

With --watch the status is shown again on every event and at least every 2 seconds, until no
rollout is in flight (Healthy or Degraded) or Ctrl-C. On a terminal it redraws in place; otherwise
each change is printed after a blank line. With -o json each change is one line of JSON. In
Kubernetes mode the watch reads the Rollout every 2 seconds.`,
		Example: `  aviary rollout status shop
  aviary rollout status shop --watch
  aviary rollout status shop -o json | jq .canaryWeight
  aviary rollout status shop -n prod --watch`,
		Args: oneService,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx, out, asJSON := cmd.Context(), cmd.OutOrStdout(), output == "json"
			if watch {
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			if done, err := o.inKube(func(c client.Client, ns string) error {
				if watch {
					return kubeWatch(ctx, c, ns, args[0], out, asJSON, o.watchEvery)
				}
				return kubeStatus(ctx, c, ns, args[0], out, asJSON)
			}); done {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			w := &watcher{src: &apiRollout{c: c, svc: args[0], retry: o.watchEvery}, name: args[0], out: out, json: asJSON,
				every: o.watchEvery}
			if !watch {
				return w.once(ctx)
			}
			w.watching, w.tty = true, isTerminal(out)
			return w.run(ctx)
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "show the status again on every change until no rollout is in flight")
	return cmd
}

func newRolloutStart(o *clientOptions) *cobra.Command {
	var (
		output    string
		req       startRequest
		endpoints []string
	)
	cmd := &cobra.Command{
		Use:   "start SERVICE --version VERSION [--endpoint URL]...",
		Short: "Release a version: start a rollout towards it",
		Long: `Start a rollout of the service towards a version, following the service's strategy. With
--endpoint the version is added to the service first (a new version needs at least one endpoint);
without, the version must already be one of the service's.`,
		Example: `  aviary rollout start shop --version v2
  aviary rollout start shop --version v3 --endpoint http://10.0.0.7:8080 --endpoint http://10.0.0.8:8080`,
		Args: oneService,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.refuseInKube(func(k *kubeOptions) error { return kubeStartRefused(k, args[0]) }); err != nil {
				return err
			}
			if req.Version == "" {
				return errors.New("--version: name the version to release, e.g. --version v2")
			}
			c, err := clientFor(o, output)
			if err != nil {
				return err
			}
			req.Endpoints = endpoints
			st, raw, err := c.start(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return printResult(cmd.OutOrStdout(), output, st, raw)
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&req.Version, "version", "", "the version to release (required)")
	cmd.Flags().StringArrayVar(&endpoints, "endpoint", nil, "an endpoint URL of a new version; repeat for more")
	return cmd
}

// rolloutAction documents one command of rollout.Commands.
type rolloutAction struct {
	name                 rollout.CommandKind
	short, long, example string
}

var rolloutActions = []rolloutAction{
	{rollout.Promote, "End the current step, or with --full release the canary to everyone at once",
		`End the current step (a pause, an analysis, a gate) and go on with the next. With --full the
canary becomes stable at once: the remaining steps and checks are skipped.`,
		`  aviary rollout promote shop
  aviary rollout promote shop --full --reason "hotfix, verified by hand"`},
	{rollout.PauseCmd, "Hold the rollout where it is until resume",
		`Hold the rollout at its current step and weights until resume. A timed pause keeps its remaining
time; a check that fails meanwhile still aborts the rollout.`,
		`  aviary rollout pause shop --reason "investigating latency"`},
	{rollout.Resume, "Go on with a paused rollout",
		`Go on with a rollout paused by a person, or one waiting for a person after an inconclusive
analysis.`,
		`  aviary rollout resume shop`},
	{rollout.Abort, "Stop the rollout and send all traffic back to stable",
		`Stop the rollout: the canary gets no more traffic and the rollout is Degraded. retry starts it
again from its first step.`,
		`  aviary rollout abort shop --reason "error rate up in eu-west"`},
	{rollout.Retry, "Start an aborted rollout again from its first step",
		`Start an aborted (Degraded) rollout again from its first step, with fresh checks.`,
		`  aviary rollout retry shop`},
	{rollout.Undo, "Go back to the previous stable version after a completed rollout",
		`Make the previous stable version stable again after a completed rollout.`,
		`  aviary rollout undo shop --reason "v2 breaks the mobile app"`},
	{rollout.Restart, "Start the rollout in flight again from its first step",
		`Start the rollout in flight again from its first step, with fresh checks.`,
		`  aviary rollout restart shop`},
}

// rolloutTarget is what a rollout command names: a service, or a flag (whose rollout is flag:KEY).
type rolloutTarget struct {
	arg  string                  // SERVICE or KEY, for the usage line
	args cobra.PositionalArgs    // checks the one argument
	name func(arg string) string // the rollout's name in the API
	kube bool                    // the command has a Kubernetes form
	what string                  // "rollout" or "flag rollout", for the help
	full string                  // what promote --full does
	why  string                  // what --reason is for
}

var serviceTarget = rolloutTarget{arg: "SERVICE", args: oneService, name: func(s string) string { return s }, kube: true,
	what: "rollout", full: "skip the remaining steps: the canary takes all traffic and becomes stable",
	why: "why, recorded in the service's history and events"}

func newRolloutAction(o *clientOptions, a rolloutAction) *cobra.Command {
	return newActionFor(o, a, serviceTarget)
}

func newActionFor(o *clientOptions, a rolloutAction, t rolloutTarget) *cobra.Command {
	var (
		output string
		req    actionRequest
	)
	cmd := &cobra.Command{
		Use:     string(a.name) + " " + t.arg,
		Short:   a.short,
		Long:    a.long + "\n\nIt prints the " + t.what + "'s state after the command; -o json prints its whole status.",
		Example: a.example,
		Args:    t.args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if t.kube {
				kubeCmd := rollout.Command{Kind: a.name, Full: req.Full, Reason: req.Reason}
				if done, err := o.inKube(func(c client.Client, ns string) error {
					return kubeAction(cmd.Context(), c, ns, args[0], kubeCmd, cmd.OutOrStdout(), output == "json")
				}); done {
					return err
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			st, raw, err := c.act(cmd.Context(), t.name(args[0]), string(a.name), req)
			if err != nil {
				return err
			}
			return printResult(cmd.OutOrStdout(), output, st, raw)
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&req.Reason, "reason", "", t.why)
	if a.name == rollout.Promote {
		cmd.Flags().BoolVar(&req.Full, "full", false, t.full)
	}
	return cmd
}

func printResult(w io.Writer, output string, st rollout.Status, raw []byte) error {
	if output == "json" {
		return printJSON(w, raw)
	}
	_, err := fmt.Fprintln(w, summary(st))
	return err
}

func newRolloutHistory(o *clientOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history SERVICE",
		Short: "List the revisions of a service: releases, promotions, aborts and undos",
		Long: `List the revisions of a service: releases, promotions, aborts and undos, with who made them
and why. In Kubernetes mode: the Rollout's ReplicaSets, one per pod template it has released, with
their pods and images, and which is stable and which the canary.`,
		Example: `  aviary rollout history shop
  aviary rollout history shop -n prod`,
		Args: oneService,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if done, err := o.inKube(func(c client.Client, ns string) error {
				return kubeHistory(cmd.Context(), c, ns, args[0], cmd.OutOrStdout(), output == "json")
			}); done {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			entries, raw, err := c.history(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return renderHistory(cmd.OutOrStdout(), entries)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newApply(o *clientOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Send service specs to a running aviary",
		Long: `Send a file of service specs (YAML) to a running aviary. It prints which services changed and
which were unchanged; a spec whose release changed starts a rollout. An invalid file changes
nothing: every error is printed with its field path and the command exits with status 1.`,
		Example: `  aviary apply -f shop.yaml
  sed s/v2/v3/ shop.yaml | aviary apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.refuseInKube(func(k *kubeOptions) error { return kubeApplyRefused(k, firstSet(file, "FILE")) }); err != nil {
				return err
			}
			body, c, err := inputAndClient(cmd, o, file, "the file to apply")
			if err != nil {
				return err
			}
			res, err := c.apply(cmd.Context(), file, body)
			var apiErr *apiError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnprocessableEntity && len(apiErr.Errors) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d error(s), nothing applied:\n", file, len(apiErr.Errors))
				for _, e := range apiErr.Errors {
					fmt.Fprintln(cmd.ErrOrStderr(), "  "+e)
				}
				return exitCode(1)
			}
			if err != nil {
				return err
			}
			return printApplied(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the YAML file to apply; - reads stdin")
	addKubeFlags(cmd, false, &o.kube, nsUsage) // only to refuse: Rollouts are applied with kubectl
	return cmd
}

// inputAndClient reads -f FILE (- for stdin; what says what the file is) and makes the API client.
func inputAndClient(cmd *cobra.Command, o *clientOptions, file, what string) ([]byte, *apiClient, error) {
	if file == "" {
		return nil, nil, fmt.Errorf("-f: name %s, or - for stdin", what)
	}
	body, err := readInput(cmd.InOrStdin(), file)
	if err != nil {
		return nil, nil, err
	}
	c, err := o.client()
	return body, c, err
}

func readInput(stdin io.Reader, file string) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return b, nil
}

func printApplied(w io.Writer, res applyResult) error {
	if len(res.Applied)+len(res.Unchanged) == 0 {
		_, err := fmt.Fprintln(w, "no services in the file")
		return err
	}
	for _, s := range res.Applied {
		fmt.Fprintln(w, s+": applied")
	}
	for _, s := range res.Unchanged {
		fmt.Fprintln(w, s+": unchanged")
	}
	return nil
}

// rolloutSource is where rollout status reads a rollout: a running aviary's admin API
// (apiRollout), or a Rollout resource in a cluster (kubeRollout).
type rolloutSource interface {
	// status reads the rollout's status, and its JSON for -o json.
	status(ctx context.Context) (rollout.Status, []byte, error)
	// recentEvents returns the last n events, oldest first, given have, the last ones read before
	// (maybe none). On an error it returns have.
	recentEvents(ctx context.Context, have []rollout.Event, n int) ([]rollout.Event, error)
	// follow calls kick on every change it hears of until ctx is done. A source that cannot hear
	// of changes returns at once: the watch then reads on its clock alone.
	follow(ctx context.Context, kick func())
}

// apiRollout is a service's rollout on a running aviary.
type apiRollout struct {
	c     *apiClient
	svc   string
	retry time.Duration // how long follow waits before it connects to the event stream again
}

func (a *apiRollout) status(ctx context.Context) (rollout.Status, []byte, error) {
	return a.c.status(ctx, a.svc)
}

func (a *apiRollout) recentEvents(ctx context.Context, have []rollout.Event, n int) ([]rollout.Event, error) {
	return a.c.recentEvents(ctx, a.svc, have, n)
}

// follow turns the service's event stream into kicks. When the stream ends or fails it connects
// again after a while; the watch's ticker keeps the status fresh meanwhile, and the status reads
// report errors that matter (an event stream error alone is no reason to stop watching).
func (a *apiRollout) follow(ctx context.Context, kick func()) {
	for {
		_ = a.c.stream(ctx, a.svc, func(rollout.Event) { kick() })
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.retry):
		}
	}
}

// watcher shows a rollout's status once, or on every change for --watch.
type watcher struct {
	src      rolloutSource
	name     string // the service's or the Rollout's, for errors
	out      io.Writer
	json     bool          // print the status's JSON (when watching, one line per change)
	watching bool          // --watch
	tty      bool          // when watching, redraw in place; otherwise print each change after a blank line
	every    time.Duration // when watching, read the status at least this often

	// What the last fetch read and what was printed last.
	status     rollout.Status
	raw        []byte
	events     []rollout.Event
	eventsErr  error
	printedKey string
	printed    bool
}

// run shows the status until no rollout is in flight or ctx ends (Ctrl-C, which is no error).
func (w *watcher) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	kicks := make(chan struct{}, 1)
	following := make(chan struct{})
	go func() {
		defer close(following)
		w.src.follow(ctx, func() {
			select {
			case kicks <- struct{}{}:
			default: // a kick is pending already
			}
		})
	}()
	defer func() { cancel(); <-following }()
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		done, key, err := w.fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		redraw := w.tty && !w.json // on a terminal, redraw even if only time passed (a pause's time left)
		if redraw {
			if _, err := io.WriteString(w.out, "\x1b[H\x1b[2J"); err != nil {
				return err
			}
			w.printed = false
		}
		if redraw || key != w.printedKey {
			if err := w.print(); err != nil {
				return err
			}
			w.printedKey = key
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kicks:
		case <-tick.C:
		}
	}
}

// once shows the status one time.
func (w *watcher) once(ctx context.Context) error {
	if _, _, err := w.fetch(ctx); err != nil {
		return err
	}
	return w.print()
}

// fetch reads the status (and, for text, the recent events). done: no rollout is in flight. key
// changes when something other than the passing of time changed.
func (w *watcher) fetch(ctx context.Context) (done bool, key string, err error) {
	st, raw, err := w.src.status(ctx)
	if err != nil {
		return false, "", err
	}
	w.status, w.raw = st, raw
	key = stableKey(raw)
	if !w.json {
		w.events, w.eventsErr = w.src.recentEvents(ctx, w.events, eventsShown)
		if n := len(w.events); n > 0 {
			// A Kubernetes Event has no seq: its time and kind tell a new one.
			e := w.events[n-1]
			key += fmt.Sprintf("\nevent %d %s %s", e.Seq, e.Time.Format(time.RFC3339Nano), e.Kind)
		}
	}
	done = !st.Managed || (st.Phase != rollout.Progressing && st.Phase != rollout.Paused)
	return done, key, nil
}

// print writes what fetch read.
func (w *watcher) print() error {
	if w.json && !w.watching {
		return printJSON(w.out, w.raw)
	}
	if w.json {
		var b bytes.Buffer
		if err := json.Compact(&b, w.raw); err != nil {
			return fmt.Errorf("print the status of %s as JSON: %w", w.name, err)
		}
		b.WriteByte('\n')
		_, err := w.out.Write(b.Bytes())
		return err
	}
	block := renderStatus(w.status, w.events)
	if w.eventsErr != nil {
		block += "Events:   unavailable: " + w.eventsErr.Error() + "\n"
	}
	if w.printed {
		block = "\n" + block
	}
	w.printed = true
	_, err := io.WriteString(w.out, block)
	return err
}

// stableKey is the status's JSON without what changes by itself (the time left of a pause).
func stableKey(raw []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	delete(m, "stepRemainingSeconds")
	b, _ := json.Marshal(m) // sorted keys: equal statuses give equal keys
	return string(b)
}

// isTerminal reports whether w is a terminal (a character device), where --watch redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
