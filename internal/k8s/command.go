package k8s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// Command asks the controller to run cmd (promote, pause, resume, abort, retry, undo, restart) on a
// Rollout: it writes the command into the aviary.dev/command annotation, then waits until the
// controller has taken it (status.lastCommand) and returns the Rollout as it is then. The
// controller runs the same rollout.Do as the standalone API, so the answers are the same.
func Command(ctx context.Context, c client.Client, key types.NamespacedName, cmd rollout.Command) (*v1alpha1.Rollout, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	raw, err := json.Marshal(command{ID: id, Command: cmd})
	if err != nil {
		return nil, err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		v1alpha1.CommandAnnotation: string(raw)}}})
	ro := &v1alpha1.Rollout{}
	ro.Namespace, ro.Name = key.Namespace, key.Name
	if err := c.Patch(ctx, ro, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, fmt.Errorf("send %s to rollout %s: %w", cmd.Kind, key, err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.Get(ctx, key, ro); err != nil {
			return nil, fmt.Errorf("read rollout %s: %w", key, err)
		}
		if last := ro.Status.LastCommand; last != nil && last.ID == id {
			if last.Error != "" {
				return ro, errors.New(last.Error)
			}
			return ro, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the controller has not taken %s on %s yet (%w): is `aviary controller` running and leading? "+
				"The command stays in the %s annotation until it is", cmd.Kind, key, ctx.Err(), v1alpha1.CommandAnnotation)
		case <-tick.C:
		}
	}
}

// StateOf reads the core's state from a Rollout's status (false: the controller has not seen it).
func StateOf(ro *v1alpha1.Rollout) (rollout.State, bool, error) { return stateOf(ro) }

// View is a Rollout's status as the standalone API shows a service's (`aviary rollout status`):
// the core's state rendered by rollout.StatusOf, with the running checks' latest verdicts from
// status.analysis.
func View(ro *v1alpha1.Rollout, now time.Time) (rollout.Status, error) {
	st, ok, err := stateOf(ro)
	if err != nil {
		return rollout.Status{}, err
	}
	if !ok {
		return rollout.Status{}, fmt.Errorf("rollout %s/%s has no status yet: is `aviary controller` running? (%s)",
			ro.Namespace, ro.Name, ro.Status.Message)
	}
	for i, ch := range st.Checks {
		for _, c := range ro.Status.Analysis {
			if c.ID == ch.ID && ch.Last == nil && c.Phase != "" {
				st.Checks[i].Last = &rollout.Verdict{Phase: rollout.VerdictPhase(c.Phase), Message: c.Message}
			}
		}
	}
	view := rollout.StatusOf(st, ro.Status.ReleaseVersion, now)
	switch {
	case !st.InFlight() || ro.Status.Traffic == "":
	case !routed(ro):
		view.Message += "; the weight is " + ro.Status.Traffic
	case ro.Status.Traffic != routerOf(ro): // held back while canary pods start
		view.Message += "; " + ro.Status.Traffic
	}
	if f := ro.Status.Fleet; f != nil && st.InFlight() {
		view.Message += "; judged on " + f.Message
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, "SpecValid"); c != nil && c.Status == metav1.ConditionFalse {
		view.Message = "spec refused, the last good one stays in force: " + c.Message
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, HandoverCondition); c != nil && !ro.DeletionTimestamp.IsZero() {
		view.Message = "deleted; " + c.Message
	}
	return view, nil
}
