// Package fleet lets a controller judge a rollout served by a fleet of gateway replicas as a
// standalone Aviary judges one gateway: at each look it reads every replica's cumulative
// per-version counts (GET /api/v1/fleet/counts, answered by Counter), takes each replica's
// difference since its previous answer, and adds it into the rollout's own metrics.Registry and
// llmstats.Registry (Sink). The analyzer reads those registries unchanged, so the builtin metrics,
// the LLM metrics and the default analysis work on the fleet's sum.
//
// One Reader serves one gateway fleet and every rollout routed through it: a look asks each
// replica once for all their services, so a look costs one request per replica whatever the
// number of rollouts. The replicas are fetched in parallel under one timeout per look.
//
// Rules, each so that no measurement is counted twice and none is read as zero:
//
//   - A replica that does not answer in time is left out of the look (Coverage: "3 of 4 gateway
//     replicas"), never read as zero errors. Its counts are cumulative, so what it served in the
//     meantime arrives whole with its next answer; only its timing is late.
//   - Each process start has a random instance id. A new id where another answered is a restart:
//     the new instance's counts since its start are its difference. What the ended instance
//     counted after its last answer is lost; Coverage counts the instances that ended (restarted,
//     or gone from the fleet) and estimates the requests lost at each one's last rate.
//   - A series whose counts go back within one instance began again there (a version removed from
//     its config and added back): its counts are its difference.
//   - The first answer of an instance that started before the reader's first look is a baseline,
//     not a difference. That is what makes leader failover safe: a new leader starts reading
//     afresh, and the traffic the old leader had not yet read when it stopped is left out, never
//     added twice. Leaving it out keeps the sequential test valid for the same reason that
//     internal/analysis/persist.go gives for restarts: which looks are lost depends only on when
//     the leader changed, not on what those looks held, so dropping them is like stopping
//     sampling for a while — the e-process over the looks that remain keeps its guarantee. A
//     difference counted twice, or a look chosen after seeing its contents, would break it.
//   - A service newly asked for (its rollout just started here) is a baseline on each replica for
//     the same reason: what the replicas counted before is not this reader's.
//
// Requests in flight (the latency test counts a request slow as soon as it has been in flight
// past the boundary) are a gauge, not a counter: each replica reports them by the slot they began
// in, and the reader sets the sum over the replicas still in the fleet (metrics.Series.SetPending),
// keeping a replica's last report while it misses looks.
//
// What it must never do: block a look on one replica beyond the timeout, or count a replica that
// did not answer as one that saw nothing. It knows no Kubernetes types: the controller finds the
// replicas (EndpointSlices of the gateway's Service) and hands them over as Replica values.
package fleet
