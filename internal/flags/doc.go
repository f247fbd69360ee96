// Package flags evaluates feature flags written in flagd's JSON format. It is the evaluator only: it
// reads documents, resolves flags for a context and says why; it does no I/O, serves no HTTP, keeps no
// store and applies no configuration defaults (serving, storage and config wiring live elsewhere).
//
// # Format
//
// A document is flagd's: {"$schema"?, "flags": {KEY: {"state": "ENABLED"|"DISABLED", "variants":
// {NAME: value}, "defaultVariant": NAME|null, "targeting": JsonLogic, "metadata": {...}}},
// "$evaluators": {NAME: JsonLogic}, "metadata": {...}}. Variant values are booleans, strings, numbers
// or objects; metadata values are strings, numbers or booleans. {"$ref": NAME} in a targeting rule is
// replaced by the named evaluator at Parse (whatever the spacing around the colon). Parse reports every
// structural error at once, each with its JSON path and what to do:
//
//	flags.new-checkout.defaultVariant: "on" is not one of the variants off, on2; name one of them
//
// A flag whose targeting cannot run (a $ref to no evaluator, an unknown operator) is kept and resolves
// with PARSE_ERROR, as in flagd; Set.Problems lists such flags for a loader that wants to refuse them.
// The metadata key "service" names the Aviary service a flag belongs to (Flag.Service).
//
// A Set is an immutable snapshot, safe for concurrent use; Merge combines sets, a later flag replacing
// an earlier one with the same key (flagd's rule for several sources). ETag hashes the set's canonical
// JSON, so equal content gives an equal strong ETag.
//
// # Semantics
//
// Results follow flagd and OpenFeature, as flagd's evaluator suite (flagd-testbed, evaluator/) checks:
//   - no targeting (absent or {}): the default variant, reason STATIC;
//   - targeting names a variant: TARGETING_MATCH (fractional included, as flagd reports it); a boolean
//     or number result names the variant "true", "false" or "12";
//   - targeting gives null: the default variant, reason DEFAULT;
//   - no default variant where one is needed: no value, reason DEFAULT — the caller's fallback applies;
//   - disabled flag: no value, reason DISABLED — the caller's fallback applies;
//   - targeting names no variant of the flag: ERROR, GENERAL; rule failure: ERROR, PARSE_ERROR; unknown
//     key: ERROR, FLAG_NOT_FOUND; a context value that is not JSON, or a non-string targetingKey:
//     ERROR, INVALID_CONTEXT. Result.Expect turns a value of the wrong type into TYPE_MISMATCH.
//
// Result.Metadata is the set-level metadata overridden by the flag's own.
//
// # Context
//
// Rules read the caller's context (targetingKey included), $flagd.flagKey, $flagd.timestamp (unix
// seconds from Evaluator.Now, so tests inject a clock) and Aviary's own $aviary.service (the flag's
// service), $aviary.version and $aviary.track ("stable" or "canary", from the Evaluator's Placer: the
// version the gateway gives this targeting key, so "on for the canary's users" is one rule:
// {"if": [{"==": [{"var": "$aviary.track"}, "canary"]}, "on", "off"]}). Without a service or a placer,
// $aviary holds only what is known, and a rule comparing a missing value simply does not match.
//
// # JsonLogic: a library, and what is ours
//
// JsonLogic is evaluated by github.com/diegoholiveira/jsonlogic/v3, the library flagd's own Go
// evaluator uses, so operator semantics (truthiness, == coercion, var paths) are flagd's by construction
// rather than by our re-implementation. Each rule is decoded once at Parse into the library's form and
// shared read-only by every evaluation. What is hand-written here is flagd's custom operators (ops.go):
//   - fractional: [bucketBy?, [variant, weight?]...]; murmur3 (x86, 32-bit, seed 0) of the bucketing
//     string, by default flagKey+targetingKey; variant names and weights may be nested expressions;
//     negative weights count as 0; no key, all-zero weights or bad input give null (the default variant).
//   - sem_ver: [version, op, version], op = != < <= > >= ^ (same major) ~ (same major and minor), with
//     golang.org/x/mod/semver's reading as in flagd: optional v/V, "1" and "1.2" as shorthands, build
//     metadata ignored, numbers read as their decimal form; invalid input gives null.
//   - starts_with, ends_with: two strings, else null (so the default variant applies, never a variant
//     named "false").
//
// The library keeps its operators in a package-level map; this package registers flagd's in init, and
// nothing else may register operators (a later write would race with evaluations).
//
// # Fractional versions
//
// Evaluator.Fractional chooses the bucketing. FractionalV2, the default (zero value), is flagd's current
// one: bucket = (hash × totalWeight) >> 32, exact for integer weights. FractionalV1 is flagd's legacy
// float bucketing (|int32(hash)| / MaxInt32 × 100 against cumulative percentages), for keeping users
// where an older flagd put them. The conformance test runs the suite with each: @fractional-v2 with V2,
// @fractional-v1 with V1 (without @fractional-nested, whose expected buckets are V2's).
//
// # Speed
//
// flagd publishes about 2 µs per resolve. A targeting rule that is a literal fractional split (what a
// flag rollout writes) is compiled at Parse to a table (fast.go): an evaluation hashes the key and walks
// the table, with no allocation; a property test holds it to the library's answers. Other rules run
// through the library on pooled data (the context copy, $flagd, $aviary), leaving the library's own
// allocations. bench_test.go has the figures measured here and the command.
package flags
