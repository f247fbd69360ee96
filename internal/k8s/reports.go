package k8s

import (
	"k8s.io/apimachinery/pkg/types"

	"aviary.dev/aviary/internal/analysis"
)

// Reports reads the analysis runs of a Rollout, with their per-metric evidence and measurements,
// as this process judges them (nil when it does not: only the leading controller runs analyses).
type Reports func(key types.NamespacedName) []analysis.RunReport

// Reports are the analysis runs of the Rollout key that this process judges; nil when it judges
// none (it does not lead, or the Rollout has no analysis running since it took over).
func (r *Reconciler) Reports(key types.NamespacedName) []analysis.RunReport {
	r.mu.Lock()
	j, ok := r.judges[key]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return j.analyzer.Reports(key.Name)
}
