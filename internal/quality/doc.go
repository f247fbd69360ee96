// Package quality joins what users and evaluators say about LLM answers back to the version that
// gave them, so that a canary can be judged on the quality of its answers as well as on its
// latency and cost.
//
// Two signals arrive here, both after the response has gone:
//
//   - Feedback: a client posts a score or a label for a request id the gateway sent back with the
//     response. The package remembers which service and version served each id for a bounded
//     window and a bounded number of ids (oldest forgotten first), and joins the feedback to it.
//   - Evaluations: a configured share of completed exchanges, spread evenly over each service's
//     traffic, is posted to an evaluator the user runs (an LLM judge, a safety classifier); the
//     scores and labels it answers are credited to the version that answered.
//
// Both become cumulative per-version [Totals] that the analyzer diffs look by look, and Prometheus
// metrics.
//
// What it must never do: block or fail traffic. [Quality.Served] is called on the gateway's
// request path; it takes a short lock to remember the id, does a few atomic adds and, for a
// sampled exchange, copies at most MaxBytes of it and starts a goroutine — it never waits for
// the evaluator. An evaluator that is slow, down or
// answering garbage costs at most MaxInFlight goroutines per service; beyond that, exchanges are
// skipped and counted. Failures are counted and logged (at most once per interval per service,
// so a dead evaluator cannot flood the log), never retried.
//
// Memory is bounded throughout: request ids by Options.MaxEntries, what is sent to an evaluator
// by its MaxBytes, an evaluator's answer by 1 MiB, and the score names and labels kept per
// version (so neither an evaluator nor a client posting feedback can grow the totals or the
// metrics' label sets without limit).
package quality
