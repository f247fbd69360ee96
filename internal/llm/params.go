package llm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Parameters a version may set (config: versions[].llm.params), by the name the config uses, with
// the field each API reads for it. The APIs name some alike and some not: a token limit is
// max_completion_tokens for chat (max_tokens there is the deprecated spelling, refused by reasoning
// models), max_output_tokens for Responses and max_tokens for Anthropic. A parameter an API lacks
// has no entry for it, and a version whose service speaks that API may not set it.
var params = map[string]map[string]string{
	"temperature":           {OpenAIChat: "temperature", OpenAIResponses: "temperature", Anthropic: "temperature"},
	"top_p":                 {OpenAIChat: "top_p", OpenAIResponses: "top_p", Anthropic: "top_p"},
	"max_tokens":            maxTokens,
	"max_completion_tokens": maxTokens,
	"max_output_tokens":     maxTokens,
	"stop":                  stop,
	"stop_sequences":        stop,
	"service_tier":          {OpenAIChat: "service_tier", OpenAIResponses: "service_tier", Anthropic: "service_tier"},
	"parallel_tool_calls":   {OpenAIChat: "parallel_tool_calls", OpenAIResponses: "parallel_tool_calls"},
	"top_logprobs":          {OpenAIChat: "top_logprobs", OpenAIResponses: "top_logprobs"},
	"store":                 {OpenAIChat: "store", OpenAIResponses: "store"},
	"reasoning_effort":      {OpenAIChat: "reasoning_effort"},
	"presence_penalty":      {OpenAIChat: "presence_penalty"},
	"frequency_penalty":     {OpenAIChat: "frequency_penalty"},
	"seed":                  {OpenAIChat: "seed"},
	"n":                     {OpenAIChat: "n"},
	"logprobs":              {OpenAIChat: "logprobs"},
	"response_format":       {OpenAIChat: "response_format"},
	"reasoning":             {OpenAIResponses: "reasoning"},
	"truncation":            {OpenAIResponses: "truncation"},
	"top_k":                 {Anthropic: "top_k"},
	"thinking":              {Anthropic: "thinking"},
}

var (
	maxTokens = map[string]string{OpenAIChat: "max_completion_tokens", OpenAIResponses: "max_output_tokens", Anthropic: "max_tokens"}
	stop      = map[string]string{OpenAIChat: "stop", Anthropic: "stop_sequences"}
)

// sameAs lists, per API, the other fields a client may use for the same parameter; the version's
// value replaces them, so that the upstream never gets two limits and honours the client's.
var sameAs = map[string]map[string][]string{
	OpenAIChat: {"max_completion_tokens": {"max_tokens"}},
}

// APIsOf returns the APIs a service's llm.api setting speaks: openai, anthropic or auto.
func APIsOf(kind string) []string {
	switch kind {
	case "openai":
		return []string{OpenAIChat, OpenAIResponses}
	case "anthropic":
		return []string{Anthropic}
	case "auto":
		return []string{OpenAIChat, OpenAIResponses, Anthropic}
	}
	return nil
}

// CheckParam reports whether a version of a service whose llm.api is kind may set the parameter
// name: every API the service speaks must have it.
func CheckParam(kind, name string) error {
	wire, ok := params[name]
	if !ok {
		return fmt.Errorf("is not a parameter Aviary knows; use one of %s", strings.Join(slices.Sorted(maps.Keys(params)), ", "))
	}
	for _, api := range APIsOf(kind) {
		if wire[api] == "" {
			return fmt.Errorf("is not a parameter of the %s API, which this service speaks (llm.api: %s); its parameters are %s",
				api, kind, strings.Join(ParamsOf(api), ", "))
		}
	}
	return nil
}

// ParamsOf returns the names of the parameters an API has, sorted.
func ParamsOf(api string) []string {
	var out []string
	for name, wire := range params {
		if wire[api] != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// paramField returns the field api reads for a version's parameter, and the client's fields that
// the version's value replaces; "" when the API has no such parameter.
func paramField(api, name string) (string, []string) {
	field := params[name][api]
	return field, sameAs[api][field]
}

// SameParam reports whether two of the names a version may use set the same parameter
// (max_tokens and max_output_tokens, stop and stop_sequences).
func SameParam(a, b string) bool {
	pa, pb := params[a], params[b]
	return pa != nil && pb != nil && fmt.Sprint(pa) == fmt.Sprint(pb)
}
