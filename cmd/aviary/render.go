package main

// What the client commands print for people: tables, the status block and one-line results.
// Programs use -o json, which prints the API's own JSON.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// Marks of the steps in the status block.
const (
	markDone    = "✓"
	markCurrent = "▶"
	markAborted = "✗"
)

const barWidth = 20

// progressBar draws a percentage: [#####...............] 25%.
func progressBar(pct int) string {
	pct = min(max(pct, 0), 100)
	filled := (pct*barWidth + 50) / 100
	return fmt.Sprintf("[%s%s] %d%%", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), pct)
}

// renderStatus is the block of `rollout status`: where the rollout is, its steps and checks, and
// the service's recent events.
func renderStatus(st rollout.Status, events []rollout.Event) string {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-10s%s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("Service", "%s", st.Service)
	if !st.Managed {
		line("Phase", "not managed (no release; the config's weights apply)")
		line("Stable", "%s", dash(st.StableVersion))
		renderEvents(&b, events)
		return b.String()
	}
	line("Phase", "%s", withMessage(string(st.Phase), st.Message))
	if st.Strategy != "" {
		line("Strategy", "%s", st.Strategy)
	}
	line("Stable", "%s", dash(st.StableVersion))
	switch {
	case st.CanaryVersion == "":
	case st.Phase == rollout.Degraded:
		line("Canary", "%s (aborted; no traffic)", st.CanaryVersion)
	default:
		line("Canary", "%s %s", st.CanaryVersion, progressBar(st.CanaryWeight))
	}
	if st.Route != nil {
		line("Route", "%s go to the canary", describeMatch(st.Route))
	}
	if st.MirrorPercent > 0 {
		line("Mirror", "%g%% of requests copied to the canary", st.MirrorPercent)
	}
	if st.PreviousVersion != "" && st.WarmUntil != nil {
		line("Previous", "%s (kept routable until %s)", st.PreviousVersion, stamp(*st.WarmUntil))
	}
	if len(st.PauseReasons) > 0 {
		reasons := make([]string, len(st.PauseReasons))
		for i, r := range st.PauseReasons {
			reasons[i] = r.Kind + " since " + stamp(r.Since)
		}
		left := ""
		if st.StepRemaining != nil {
			left = "; " + seconds(*st.StepRemaining) + " left"
		}
		line("Paused", "%s%s", strings.Join(reasons, ", "), left)
	}
	renderSteps(&b, st)
	renderChecks(&b, st.Checks)
	renderEvents(&b, events)
	return b.String()
}

func renderSteps(b *strings.Builder, st rollout.Status) {
	if len(st.Steps) == 0 {
		return
	}
	b.WriteString("Steps:\n")
	for _, s := range st.Steps {
		mark := " "
		switch s.State {
		case "done":
			mark = markDone
		case "current":
			mark = markCurrent
		case "aborted":
			mark = markAborted
		}
		left := ""
		if s.State == "current" && st.StepRemaining != nil {
			left = fmt.Sprintf("  (%s left)", seconds(*st.StepRemaining))
		}
		fmt.Fprintf(b, "  %s %d. %s%s\n", mark, s.Index+1, dash(s.Text), left)
	}
}

func renderChecks(b *strings.Builder, checks []rollout.Check) {
	if len(checks) == 0 {
		return
	}
	b.WriteString("Checks:\n")
	for _, c := range checks {
		verdict := "no verdict yet"
		if c.Last != nil {
			verdict = withMessage(string(c.Last.Phase), c.Last.Message)
		}
		fmt.Fprintf(b, "  %s (step %d): %s\n", describeCheck(c), c.Step+1, verdict)
	}
}

func describeCheck(c rollout.Check) string {
	names := strings.Join(c.Templates, ", ")
	switch c.Kind {
	case rollout.GateCheck:
		if c.Gate != nil {
			return "gate " + c.Gate.URL
		}
		return "gate"
	case rollout.BackgroundAnalysis:
		return "background analysis " + names
	}
	return "analysis " + names
}

// renderEvents writes the last of the events (the API sends them oldest first).
func renderEvents(b *strings.Builder, events []rollout.Event) {
	const shown = 5
	if len(events) == 0 {
		return
	}
	events = events[max(0, len(events)-shown):]
	b.WriteString("Events:\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, e := range events {
		by := ""
		if e.By != "" {
			by = " (by " + e.By + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s%s\n", stamp(e.Time), e.Kind, e.Reason, by)
	}
	_ = tw.Flush() // a strings.Builder does not fail
}

// summary is the one-line result of a rollout command: "shop: Progressing, canary v2 at 5%, step 1/7".
func summary(st rollout.Status) string {
	head := st.Service + ": "
	if !st.Managed {
		return head + "not managed, stable " + dash(st.StableVersion)
	}
	head += string(st.Phase)
	switch st.Phase {
	case rollout.Progressing, rollout.Paused:
		s := fmt.Sprintf("%s, canary %s at %d%%", head, dash(st.CanaryVersion), st.CanaryWeight)
		if n := len(st.Steps); n > 0 {
			s += fmt.Sprintf(", step %d/%d", min(st.CurrentStepIndex+1, n), n)
		}
		if len(st.PauseReasons) > 0 {
			kinds := make([]string, len(st.PauseReasons))
			for i, r := range st.PauseReasons {
				kinds[i] = r.Kind
			}
			s += " (paused: " + strings.Join(kinds, ", ") + ")"
		}
		return s
	case rollout.Degraded:
		s := head + ", stable " + dash(st.StableVersion)
		if st.CanaryVersion != "" {
			s += ", canary " + st.CanaryVersion + " aborted"
		}
		if st.Message != "" {
			s += ": " + st.Message
		}
		return s
	}
	return head + ", stable " + dash(st.StableVersion)
}

// renderServices is the table of `get services`.
func renderServices(w io.Writer, services []serviceInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tSTABLE\tCANARY\tWEIGHT\tVERSIONS")
	for _, s := range services {
		phase, stable, canary, weight := "unmanaged", s.Stable, "-", "-"
		if r := s.Rollout; r != nil && r.Managed {
			phase = string(r.Phase)
			stable = firstSet(r.StableVersion, stable)
			if r.CanaryVersion != "" {
				canary, weight = r.CanaryVersion, fmt.Sprintf("%d%%", r.CanaryWeight)
			}
		}
		versions := make([]string, len(s.Versions))
		for i, v := range s.Versions {
			versions[i] = fmt.Sprintf("%s %d/%d", v.Name, v.Healthy, len(v.Endpoints))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, phase, dash(stable), canary, weight, dash(strings.Join(versions, ", ")))
	}
	return tw.Flush()
}

// renderHistory is the table of `rollout history`.
func renderHistory(w io.Writer, entries []historyEntry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tTIME\tKIND\tSTABLE\tCANARY\tBY\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Revision, stamp(e.Time), dash(e.Kind),
			dash(e.StableVersion), dash(e.CanaryVersion), dash(e.By), e.Reason)
	}
	return tw.Flush()
}

// printJSON prints the API's JSON indented, as the server sent it (fields this CLI does not know
// included).
func printJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("print the answer as JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// describeMatch says which requests a route matches: "requests where header x-canary = "1"".
func describeMatch(m *config.Match) string {
	var parts []string
	for _, k := range []struct {
		what string
		m    *config.KeyMatch
	}{{"header", m.Header}, {"cookie", m.Cookie}, {"query", m.Query}} {
		if k.m != nil {
			parts = append(parts, k.what+" "+k.m.Name+" "+describeString(k.m.StringMatch))
		}
	}
	if m.Path != nil {
		parts = append(parts, "path "+describeString(*m.Path))
	}
	if len(parts) == 0 {
		return "all requests"
	}
	return "requests where " + strings.Join(parts, " and ")
}

func describeString(s config.StringMatch) string {
	switch {
	case s.Prefix != "":
		return fmt.Sprintf("starts with %q", s.Prefix)
	case s.Regex != "":
		return fmt.Sprintf("matches %q", s.Regex)
	}
	return fmt.Sprintf("= %q", s.Value)
}

func withMessage(what, msg string) string {
	if msg == "" {
		return what
	}
	return what + " — " + msg
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("Jan _2 15:04:05")
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
