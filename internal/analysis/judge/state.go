package judge

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// CountState is the whole state of a CountTest, its Dispersion included: what a rollout's
// e-process needs to resume exactly where it stood after a restart of the process that judges it
// (see the package comment, "One e-process per rollout"). It is plain data, meant for JSON; Go's
// encoding of a float64 is its shortest exact form, so a test restored from it decides as the one
// saved would have, bit for bit.
type CountState struct {
	Margin float64          `json:"margin"`
	Alpha  float64          `json:"alpha"`
	Prior  Prior            `json:"prior,omitempty"`
	Comps  []ComponentState `json:"comps,omitempty"`
	Open   []float64        `json:"open"`
	Batch  int64            `json:"batch"`
	Phi    float64          `json:"phi"`
	Begun  bool             `json:"begun,omitempty"`
	Closed int64            `json:"closed"`

	CanaryN      int64 `json:"canaryN"`
	CanaryEvents int64 `json:"canaryEvents"`
	BaseN        int64 `json:"baseN"`
	BaseEvents   int64 `json:"baseEvents"`
	BeforeN      int64 `json:"beforeN"`
	BeforeEvents int64 `json:"beforeEvents"`

	Dispersion *DispersionState `json:"dispersion,omitempty"`
}

// ComponentState is one member of the mixture over start times.
type ComponentState struct {
	From   int64     `json:"from"`
	Weight float64   `json:"weight"`
	LogLR  []float64 `json:"logLR"`
}

// DispersionState is the whole state of a Dispersion.
type DispersionState struct {
	Pairs    int     `json:"pairs"`
	TimeChi2 float64 `json:"timeChi2"`
	PrevN    float64 `json:"prevN"`
	PrevE    float64 `json:"prevE"`
	UnitChi2 float64 `json:"unitChi2"`
	UnitDF   int     `json:"unitDF"`
	// Clumps: the far-tail test's estimate (NewClumpDispersion) and its sums over the stable's batches.
	Clumps *ClumpState `json:"clumps,omitempty"`
}

// ClumpState is the sums a clump-size estimate keeps (see NewClumpDispersion).
type ClumpState struct {
	N  float64 `json:"n"`
	E  float64 `json:"e"`
	E2 float64 `json:"e2"`
	NE float64 `json:"ne"`
	N2 float64 `json:"n2"`
}

// State is a copy of the test's state now, the open batch included.
func (t *CountTest) State() CountState {
	s := CountState{Margin: t.Margin, Alpha: t.Alpha, Prior: t.prior, Open: slices.Clone(t.open), Batch: t.batch, Phi: t.phi,
		Begun: t.begun, Closed: t.closed, CanaryN: t.CanaryN, CanaryEvents: t.CanaryEvents, BaseN: t.BaseN,
		BaseEvents: t.BaseEvents, BeforeN: t.beforeN, BeforeEvents: t.beforeEvents}
	for _, c := range t.comps {
		s.Comps = append(s.Comps, ComponentState{From: c.from, Weight: c.weight, LogLR: slices.Clone(c.logLR)})
	}
	if d := t.Dispersion; d != nil {
		s.Dispersion = &DispersionState{Pairs: d.pairs, TimeChi2: d.timeChi2, PrevN: d.prevN, PrevE: d.prevE,
			UnitChi2: d.unitChi2, UnitDF: d.unitDF}
		if d.clumps {
			c := d.sums
			s.Dispersion.Clumps = &c
		}
	}
	return s
}

// RestoreCountTest makes the test a State describes, with its own Dispersion when the state has
// one. A state that could not have come from a test (another grid's length, a weight or a log
// likelihood ratio that is not finite, counts that contradict each other) is an error that says so:
// the caller starts a new test instead, which loses evidence but never invents it.
func RestoreCountTest(s CountState) (*CountTest, error) {
	if !(s.Alpha > 0 && s.Alpha < 1) || !(s.Margin > 0) || math.IsInf(s.Margin, 0) {
		return nil, fmt.Errorf("count test state: alpha %g and margin %g are out of range", s.Alpha, s.Margin)
	}
	t := NewCountTest(s.Margin, s.Alpha)
	if s.Prior != Uniform && s.Prior != Moderate && s.Prior != Far {
		return nil, fmt.Errorf("count test state: prior %d is not one this aviary knows", s.Prior)
	}
	t.SetPrior(s.Prior)
	if len(s.Open) != len(t.grid) {
		return nil, fmt.Errorf("count test state: %d open log likelihood ratios, and the grid of margin %g has %d", len(s.Open), s.Margin, len(t.grid))
	}
	if len(s.Comps) > maxComponents+1 {
		return nil, fmt.Errorf("count test state: %d components, at most %d are kept", len(s.Comps), maxComponents+1)
	}
	if !finite(s.Open...) || !finite(s.Phi) || s.Phi < 1 {
		return nil, errors.New("count test state: the open batch is not finite, or its dispersion is below 1")
	}
	weights := 0.0
	for i, c := range s.Comps {
		if len(c.LogLR) != len(t.grid) || !finite(c.LogLR...) || !finite(c.Weight) || c.Weight <= 0 {
			return nil, fmt.Errorf("count test state: component %d does not fit the grid, or is not finite", i)
		}
		weights += c.Weight
		t.comps = append(t.comps, component{from: c.From, weight: c.Weight, logLR: slices.Clone(c.LogLR)})
	}
	if weights > 1+1e-9 {
		return nil, fmt.Errorf("count test state: the components' weights sum to %g, more than 1", weights)
	}
	if s.CanaryN < 0 || s.BaseN < 0 || s.BeforeN < 0 || s.CanaryEvents < 0 || s.BaseEvents < 0 || s.BeforeEvents < 0 ||
		s.CanaryEvents > s.CanaryN || s.BaseEvents > s.BaseN || s.BeforeEvents > s.BeforeN {
		return nil, errors.New("count test state: its counts are negative, or more events than requests")
	}
	copy(t.open, s.Open)
	t.batch, t.phi, t.begun, t.closed = s.Batch, s.Phi, s.Begun, s.Closed
	t.CanaryN, t.CanaryEvents, t.BaseN, t.BaseEvents = s.CanaryN, s.CanaryEvents, s.BaseN, s.BaseEvents
	t.beforeN, t.beforeEvents = s.BeforeN, s.BeforeEvents
	if d := s.Dispersion; d != nil {
		if !finite(d.TimeChi2, d.PrevN, d.PrevE, d.UnitChi2) || d.Pairs < 0 || d.UnitDF < 0 || d.TimeChi2 < 0 || d.UnitChi2 < 0 {
			return nil, errors.New("count test state: its dispersion is negative or not finite")
		}
		t.Dispersion = &Dispersion{pairs: d.Pairs, timeChi2: d.TimeChi2, prevN: d.PrevN, prevE: d.PrevE,
			unitChi2: d.UnitChi2, unitDF: d.UnitDF}
		if c := d.Clumps; c != nil {
			if !finite(c.N, c.E, c.E2, c.NE, c.N2) || c.N < 0 || c.E < 0 || c.E > c.N || c.E2 < 0 || c.NE < 0 || c.N2 < 0 {
				return nil, errors.New("count test state: its clump sums are negative, not finite, or more events than requests")
			}
			t.Dispersion.clumps, t.Dispersion.sums = true, *c
		}
	}
	return t, nil
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}
