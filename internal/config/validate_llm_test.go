package config

import (
	"strings"
	"testing"
)

// parseErrors parses in and checks that its error holds every phrase.
func parseErrors(t *testing.T, in string, want ...string) {
	t.Helper()
	_, err := Parse([]byte(in))
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestLLMModelsAreCheckedWithPaths(t *testing.T) {
	parseErrors(t, `
llm:
  models: [gpt-x, "", gpt-x, other]
`,
		`llm.models[1]: "" is not a model name`,
		`llm.models[2]: "gpt-x" is listed already`,
		`llm.models[3]: "other" is not a model name ("other" stands for every model not listed)`)
}

// A version's params must be parameters of every API its service speaks; each error names the
// field and says what the API takes.
func TestLLMParamsAreCheckedForTheServicesAPIs(t *testing.T) {
	parseErrors(t, `
services:
  - name: chat
    llm: {api: openai}
    versions:
      - name: v1
        endpoints: ["http://127.0.0.1:1"]
        llm: {params: {max_tokens: 5, max_output_tokens: 6, top_k: 3, temprature: 1, instructions: x}}
  - name: claude
    llm: {api: anthropic}
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:1"], llm: {params: {top_k: 3, seed: 1, stop: ["x"]}}}
`,
		"services[0].versions[0].llm.params.max_tokens: sets the same parameter as max_output_tokens; keep one",
		"services[0].versions[0].llm.params.top_k: is not a parameter of the openai-chat API, which this service speaks (llm.api: openai); its parameters are",
		"services[0].versions[0].llm.params.temprature: is not a parameter Aviary knows; use one of",
		"services[0].versions[0].llm.params.instructions: is not a parameter to override",
		"services[1].versions[0].llm.params.seed: is not a parameter of the anthropic API",
	)
	if _, err := Parse([]byte(`
services:
  - name: claude
    llm: {api: auto}
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:1"], llm: {params: {max_tokens: 5, temperature: 0.2, stop: ["x"]}}}
`)); err == nil || !strings.Contains(err.Error(), "params.stop: is not a parameter of the openai-responses API") {
		t.Errorf("stop under api auto (Responses has none): %v", err)
	}
}

func TestFeedbackScoresRangeIsChecked(t *testing.T) {
	parseErrors(t, "llm: {feedbackScores: {min: 5, max: 1}}\n", "llm.feedbackScores: min 5 and max 1 must be finite numbers with 0 <= min < max")
	parseErrors(t, "llm: {feedbackScores: {min: -1, max: 1}}\n", "llm.feedbackScores: min -1 and max 1")
	c, err := Parse(nil)
	if err != nil || *c.LLM.FeedbackScores != (ScoreRange{Min: 0, Max: 1}) {
		t.Errorf("default feedback scores: %+v, %v; want 0..1", c.LLM.FeedbackScores, err)
	}
}

func TestLLMOversizedIsChecked(t *testing.T) {
	parseErrors(t, `
services:
  - name: chat
    llm: {api: openai}
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"], llm: {oversized: drop}}]
`, `services[0].versions[0].llm.oversized: "drop" must be forward or refuse`)
}

// An evaluator's scores range is checked like feedback's, and defaults to 0..1 once, where the
// config enters.
func TestEvaluatorScoresRangeIsChecked(t *testing.T) {
	svc := func(scores string) string {
		return "services:\n  - name: chat\n    llm: {api: openai, evaluator: {url: \"http://127.0.0.1:1\", percent: 10" + scores + "}}\n" +
			"    versions:\n      - {name: v1, endpoints: [\"http://127.0.0.1:2\"]}\n"
	}
	parseErrors(t, svc(", scores: {min: 10, max: 1}"), "services[0].llm.evaluator.scores: min 10 and max 1 must be finite numbers with 0 <= min < max")
	c, err := Parse([]byte(svc("")))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Services[0].LLM.Evaluator.Scores; r == nil || *r != (ScoreRange{Min: 0, Max: 1}) {
		t.Errorf("default evaluator scores: %+v; want 0..1", r)
	}
	c, err = Parse([]byte(svc(", scores: {min: 1, max: 10}")))
	if err != nil || *c.Services[0].LLM.Evaluator.Scores != (ScoreRange{Min: 1, Max: 10}) {
		t.Errorf("evaluator scores 1..10: %+v, %v", c.Services[0].LLM.Evaluator.Scores, err)
	}
}
