// Package ofrep serves feature flags over the OpenFeature Remote Evaluation Protocol (OFREP,
// github.com/open-feature/protocol, service/openapi.yaml), so that any OpenFeature SDK with an OFREP
// provider evaluates Aviary's flags:
//
//	POST {prefix}/v1/evaluate/flags/{key}   one flag, for server SDKs (a context per request)
//	POST {prefix}/v1/evaluate/flags         every flag, for client SDKs; ETag, If-None-Match → 304
//	GET  {prefix}/v1/configuration          what this server supports (OFREP's earlier extension)
//	GET  {prefix}/v1/changes                server-sent events: refetchEvaluation with the new ETag
//
// The bulk answer names the change stream in its eventStreams (OFREP ADR-0008), which the web
// provider follows: a change reaches a browser as soon as it is in force, with no polling. The
// stream carries no flag values, only the news of a change, so it asks for no key (a browser's
// EventSource cannot send one).
//
// Answers follow the spec's shapes and codes: a flag the set lacks is 404 FLAG_NOT_FOUND; a bad
// request or an evaluation error is 400 with its error code; a missing or unknown key is 401; a
// credential that is valid but not for this listener (an admin token on the gateway) is 403. A
// flag served without a value (disabled, or no default variant: flagd's semantics) is answered
// without "value", the spec's code-default form, and the SDK returns the default in its code.
//
// The handler reads the set in force from a Flags and never changes it; it evaluates with package
// flags and must never panic on what a client sends.
package ofrep
