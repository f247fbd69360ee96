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
