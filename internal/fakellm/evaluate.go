package fakellm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
)

// EvaluateRequest is what POST /v1/evaluate takes: one exchange and the model that answered it.
// Input and Output may be any JSON; Output must contain an answer this server wrote.
type EvaluateRequest struct {
	Input  json.RawMessage `json:"input"`
	Output json.RawMessage `json:"output"`
	Model  string          `json:"model,omitempty"`
}

// Evaluation is what POST /v1/evaluate answers: {"scores": {"quality": Q}, "labels": ["ok"]}.
type Evaluation struct {
	Scores map[string]float64 `json:"scores"`
	Labels []string           `json:"labels"`
}

const (
	// EvaluationNoise bounds the deterministic noise added to the quality read from an answer,
	// so scores spread like a real judge's while their mean tracks the quality knob.
	EvaluationNoise = 0.05
	// OKThreshold is the lowest score labelled "ok"; lower scores are labelled "bad".
	OKThreshold = 0.5
)

// serveEvaluate is a stand-in for an LLM judge: it reads the quality knob back from the answer's
// "[q=0.83]" marker and adds noise drawn from the exchange itself, so the same exchange always
// gets the same score.
func (s *server) serveEvaluate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, openAIError(http.StatusBadRequest, fmt.Sprintf("read request body: %v", err)))
		return
	}
	var req EvaluateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, openAIError(http.StatusBadRequest,
			fmt.Sprintf(`request body is not {"input": ..., "output": ..., "model": ...}: %v`, err)))
		return
	}
	q, ok := readMarker(req.Output)
	if !ok {
		writeJSON(w, http.StatusUnprocessableEntity, openAIError(http.StatusUnprocessableEntity,
			"output: no [q=...] marker found; this evaluator scores only answers aviary-fakellm wrote (their first token carries the quality knob)"))
		return
	}
	score := q + s.evaluationNoise(req)
	score = math.Round(min(1, max(0, score))*1000) / 1000
	label := "ok"
	if score < OKThreshold {
		label = "bad"
	}
	s.stats.evaluations.Add(1)
	writeJSON(w, http.StatusOK, Evaluation{Scores: map[string]float64{"quality": score}, Labels: []string{label}})
}

// evaluationNoise is uniform in ±EvaluationNoise, drawn from the exchange and the Seed.
func (s *server) evaluationNoise(req EvaluateRequest) float64 {
	h := fnv.New64a()
	for _, part := range [][]byte{req.Input, req.Output, []byte(req.Model)} {
		_, _ = h.Write(part)
		_, _ = h.Write([]byte{0})
	}
	rng := rand.New(rand.NewPCG(s.o.Seed, h.Sum64()))
	return (rng.Float64()*2 - 1) * EvaluationNoise
}

// readMarker finds the first "[q=0.83]" marker in raw JSON. The marker needs no escaping in a JSON
// string, so it is found whether the output is the answer's text or a whole response body.
func readMarker(raw []byte) (float64, bool) {
	for {
		i := bytes.Index(raw, []byte("[q="))
		if i < 0 {
			return 0, false
		}
		raw = raw[i+3:]
		end := bytes.IndexByte(raw, ']')
		if end < 0 {
			return 0, false
		}
		q, err := strconv.ParseFloat(string(raw[:end]), 64)
		if err == nil && q >= 0 && q <= 1 {
			return q, true
		}
	}
}
