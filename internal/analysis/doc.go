// Package analysis judges checks of rollouts: it implements rollout.Judge for analysis steps,
// background analysis and blue-green pre/post-promotion analysis.
//
// A check names templates; each template's metrics are measured in a run of their own goroutine:
// builtin metrics without conditions go to the sequential judge (package judge), which compares
// the canary with the stable version, as measured by Aviary's own gateway in the same looks; every
// other metric is a threshold metric in the style users know (interval, count, success and failure
// conditions written in expr, failure / inconclusive / consecutive-error limits, dry run), its
// values from a provider in the registry (package provider). A failed query is a measurement with
// an error, never a zero.
//
// Verdicts are honest: too little traffic is Inconclusive (the step waits, up to maxWait), never a
// pass; a canary with weight that gets no requests while the baseline does is a routing failure;
// every verdict carries its evidence, metric by metric, in numbers and in words.
//
// The builtin metrics of a rollout, its comparative Prometheus metrics and its LLM metrics are
// judged by one test per metric for the whole rollout, shared by its runs (rolloutSequential,
// rolloutPromCount, rolloutLLM), and kept across restarts of the process: with an EvidenceStore
// (internal/store, in the bbolt file beside the rollout state), each run keeps its rollout's tests
// once per batch, on Forget and on Close, and the next process resumes them when the same rollout
// attempt asks for the same metric with the same alpha (persist.go). What lived only in the old
// process's metrics (slots read, requests in flight) starts afresh with the new metrics; the
// latency boundary, the effect counts and the stable's per-cluster counts are kept; an LLM test
// keeps its count or mean test and boundary, and reads the new process's LLM totals from zero. A
// saved state is resumed only when it is the test the metric gets now (for a score, the same range)
// and could have come from a test (judge.RestoreCountTest, RestoreMeanTest, RestoreBoundedMeanTest
// say what is wrong otherwise); else the test starts afresh, which loses evidence but never invents
// it. The rollout controller says when a rollout ends (rollout.EvidenceKeeper), and its tests are
// dropped.
//
// Verdict never blocks: runs work in the background and Verdict returns their latest state.
package analysis
