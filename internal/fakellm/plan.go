package fakellm

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// plan is one answer, decided in full before the first byte is written: every API writes the same
// plan in its own wire format.
type plan struct {
	id      string // random hex; each API adds its own prefix
	created time.Time
	model   string
	tokens  []string // visible output, one stream chunk each
	// truncated: the request's output limit cut the answer short (finish reason "length").
	truncated bool
	// failAt is how many tokens a stream sends before its mid-stream error; -1 for none.
	failAt       int
	includeUsage bool
	usage        usage
	// choices is how many answers a chat request asked for (n); each is the same tokens, sent
	// chunk by chunk side by side, and each counts in the output tokens.
	choices int
	// tool, when set, is the tool the answer calls: the tokens are the call's JSON arguments,
	// {"text":"<tokens>"}, streamed piece by piece, instead of text.
	tool string
}

// usage counts tokens the OpenAI way: input includes cached, output includes reasoning. The
// Anthropic writer takes cached tokens out of input, as that API reports them apart.
type usage struct {
	input, cached, output, reasoning int
}

// words are what answers are made of after the quality marker.
var words = strings.Fields(`the canary answers each question with a steady stream of plain words
	so that a gateway can count tokens measure the pace and judge the version against its baseline
	while users wait for the first token and read the rest as it arrives`)

// marker is an answer's first token: the quality knob, for /v1/evaluate to read back.
func marker(q float64) string { return fmt.Sprintf("[q=%.2f]", q) }

// newPlan plans the n-th request's answer; midStreamError asks for an error after some tokens.
func (s *server) newPlan(n int64, r request, midStreamError bool) *plan {
	rng := rand.New(rand.NewPCG(s.o.Seed, uint64(n)))
	count := s.o.OutputTokens
	p := &plan{
		id:           fmt.Sprintf("%016x", rng.Uint64()),
		created:      s.o.Clock.Now(),
		model:        cmp.Or(s.o.Model, r.model),
		failAt:       -1,
		includeUsage: r.includeUsage,
		choices:      max(r.choices, 1),
		tool:         r.tool,
	}
	if r.maxTokens > 0 && r.maxTokens < count {
		count, p.truncated = r.maxTokens, true
	}
	p.tokens = make([]string, count)
	p.tokens[0] = marker(s.o.Quality) + " "
	for i := 1; i < count; i++ {
		p.tokens[i] = words[rng.IntN(len(words))] + " "
	}
	if midStreamError {
		// After at least one token and, when there are two or more, before the last one, so the
		// client sees an answer that was really cut off.
		p.failAt = 1 + rng.IntN(max(1, count-1))
	}
	input := int(math.Ceil(float64(r.promptChars) * s.o.InputTokensPerChar))
	p.usage = usage{
		input:     max(input, s.o.CachedInputTokens),
		cached:    s.o.CachedInputTokens,
		output:    count*p.choices + s.o.ReasoningTokens,
		reasoning: s.o.ReasoningTokens,
	}
	return p
}

func (p *plan) text() string { return p.sent(len(p.tokens)) }

// sent is the text of the first n tokens.
func (p *plan) sent(n int) string { return strings.Join(p.tokens[:n], "") }

// sentUsage is the usage of a stream cut off after sent tokens.
func (p *plan) sentUsage(sent int) usage {
	u := p.usage
	u.output = sent*p.choices + u.reasoning
	return u
}

// Tool call arguments wrap the tokens in a JSON object.
const argsOpen, argsClose = `{"text":"`, `"}`

// piece is what the stream sends for token i: the token, or for a tool call the piece of its
// arguments (the first opens the object, the last closes it).
func (p *plan) piece(i int) string {
	if p.tool == "" {
		return p.tokens[i]
	}
	s := p.tokens[i]
	if i == 0 {
		s = argsOpen + s
	}
	if i == len(p.tokens)-1 {
		s += argsClose
	}
	return s
}

// arguments are a tool call's whole arguments.
func (p *plan) arguments() string { return argsOpen + p.text() + argsClose }

// callID names the tool call.
func (p *plan) callID() string { return "call_" + p.id }
