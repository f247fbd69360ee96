// Package experiment runs Aviary's experiments (issue 14): it turns a config.Experiment, the
// exposures the gateway and the flag endpoints recorded (store.Exposure: the first time a unit got
// a variant) and the events apps tracked (store.TrackedEvent) into per-arm, per-metric unit values,
// and hands their sums to package experiment/stats for the results.
//
// Rules it keeps: a unit is in the arm of its first exposure (a unit exposed to two arms, after a
// flag's change, stays in the first and is counted as crossed over); an event counts only at or
// after its unit's exposure, and only for an exposed unit; a metric's value is per unit
// (proportion: sent the event at least once; mean: the sum of the event's values), so a unit with
// many requests weighs what one unit weighs.
//
// Arms that are versions read the exposures the gateway reports for each request it places by
// weight with a sticky key (gateway.Options.Placed), which the server records through the flags'
// exposure recorder under VersionExposures(service).
//
// Who is in an experiment is package bucket's: two draws with the experiment's own salts, one for
// the traffic share, one for the arm by the weights. The gateway (for versions) and the flag's
// overlay (for variants) place units by them; the results count only the units the traffic draw
// puts in the share.
//
// Guardrails (guard.go) are judged by the canary judge the server passes (analysis.Analyzer, a
// rollout.Judge), each arm against control on the gateway's measurements; a failed verdict stops
// the arm: the state records it with an ArmStopped event, and the server, told through OnChange,
// sends the arm's units to control. The builtin metrics (requests.go) are per-unit sums of the
// gateway's records of each unit's requests, flushed into the store as events of reserved names.
//
// It never changes traffic itself and never writes exposures: placing units, starting rollouts and
// binding flags belong to the server, through Options' functions.
package experiment
