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
// It never writes exposures or events and never changes traffic: guardrails that stop an arm and
// concluding into a rollout belong to the server, not here.
package experiment
