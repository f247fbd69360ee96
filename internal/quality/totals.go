package quality

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Totals are the cumulative measurements of one kind for one version, since the process started.
// They only grow, so the analyzer takes the difference between two looks to get what happened in
// between.
//
// For a score: N is how many were recorded, Sum and SumSq their sum and sum of squares (so the
// mean is Sum/N and the variance SumSq/N − mean²). For a count of labels: N is how many
// evaluations (or pieces of feedback) there were, and Labels[l] how many of them carried label l,
// so a label's rate is Labels[l]/N.
type Totals struct {
	N          int64
	Sum, SumSq float64
	Labels     map[string]int64
}

// The keys of the map Totals returns.
//
//	"evaluation"         N: evaluations answered; Labels: the labels they carried
//	"evaluation:<name>"  the evaluator's score <name>
//	"feedback"           N: feedback joined (with a score, a label or both); Labels: their labels
//	"feedback:score"     the scores given as feedback
//
// Evaluations of mirrored (shadow) exchanges are kept apart, under the same keys prefixed with
// MirrorPrefix: "mirror:evaluation", "mirror:evaluation:<name>". Feedback is never mirrored.
const (
	KeyEvaluation    = "evaluation"
	KeyFeedback      = "feedback"
	KeyFeedbackScore = "feedback:score"
	MirrorPrefix     = "mirror:"
)

// EvaluationKey is the key of an evaluator's score with the given name.
func EvaluationKey(name string) string { return KeyEvaluation + ":" + name }

// Bounds on what one version keeps, so that an evaluator or a client cannot grow memory and
// Prometheus series without limit.
const (
	// MaxNameBytes is the longest score name or label kept. A longer feedback label is refused;
	// a longer label from an evaluator is counted as OtherLabel, a longer score name dropped.
	MaxNameBytes = 64
	// maxScoreNames is how many distinct score names a version keeps per role; further names are
	// dropped.
	maxScoreNames = 16
	// maxLabels is how many distinct labels one Totals keeps; further labels are counted as
	// OtherLabel.
	maxLabels = 32
)

// OtherLabel counts the labels beyond the distinct ones a Totals keeps, and labels that are not
// valid text (empty, longer than MaxNameBytes, or not UTF-8).
const OtherLabel = "(other)"

func validName(s string) bool {
	return s != "" && len(s) <= MaxNameBytes && utf8.ValidString(s)
}

type versionKey struct{ service, version string }

// totals holds every version's Totals. Evaluations and feedback arrive far less often than
// requests, so one lock is enough.
type totals struct {
	mu sync.Mutex
	m  map[versionKey]map[string]*Totals
}

func newTotals() *totals { return &totals{m: map[versionKey]map[string]*Totals{}} }

// entry returns the Totals under key, creating it unless it would be a score name beyond
// maxScoreNames for its prefix ("evaluation:", "mirror:evaluation:"). The caller holds mu.
func (t *totals) entry(service, version, key string) *Totals {
	vk := versionKey{service, version}
	byKey := t.m[vk]
	if byKey == nil {
		byKey = map[string]*Totals{}
		t.m[vk] = byKey
	}
	if e := byKey[key]; e != nil {
		return e
	}
	if prefix := scorePrefix(key); prefix != "" {
		names := 0
		for k := range byKey {
			if scorePrefix(k) == prefix {
				names++
			}
		}
		if names >= maxScoreNames {
			return nil
		}
	}
	e := &Totals{}
	byKey[key] = e
	return e
}

// scorePrefix is "evaluation:" or "mirror:evaluation:" for an evaluator's score key, else "".
func scorePrefix(key string) string {
	for _, p := range []string{MirrorPrefix + KeyEvaluation + ":", KeyEvaluation + ":"} {
		if strings.HasPrefix(key, p) {
			return p
		}
	}
	return ""
}

// addScore adds v to the score under key; it reports false when the key is one name too many.
func (t *totals) addScore(service, version, key string, v float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(service, version, key)
	if e == nil {
		return false
	}
	e.N++
	e.Sum += v
	e.SumSq += v * v
	return true
}

// addLabels counts one evaluation or piece of feedback under key and each of its labels (a label
// repeated in one answer counts once). It returns the labels as counted: each itself, or
// OtherLabel.
func (t *totals) addLabels(service, version, key string, labels []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(service, version, key)
	e.N++
	var counted []string
	for _, l := range labels {
		if !validName(l) || (e.Labels[l] == 0 && len(e.Labels) >= maxLabels) {
			l = OtherLabel
		}
		if slices.Contains(counted, l) {
			continue
		}
		counted = append(counted, l)
		if e.Labels == nil {
			e.Labels = map[string]int64{}
		}
		e.Labels[l]++
	}
	return counted
}

// Totals returns a copy of one version's cumulative measurements, by the keys documented at
// KeyEvaluation; an unknown version gives an empty map. A version's totals are never reset while
// the process runs, not even when it is removed from the config and added back.
func (q *Quality) Totals(service, version string) map[string]Totals {
	t := q.totals
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Totals, len(t.m[versionKey{service, version}]))
	for k, e := range t.m[versionKey{service, version}] {
		c := *e
		c.Labels = maps.Clone(e.Labels)
		out[k] = c
	}
	return out
}
