package judge

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// MeanState is the whole state of a MeanTest: what a rollout's test of tokens or cost per request
// needs to resume after a restart of the process (as CountState is a CountTest's). Plain data for
// JSON, whose float64 encoding is exact: a restored test decides bit for bit as the saved one.
type MeanState struct {
	Worse    Direction       `json:"worse"`
	Margin   float64         `json:"margin"`
	Alpha    float64         `json:"alpha"`
	Canary   MomentsState    `json:"canary"`
	Base     MomentsState    `json:"base"`
	Open     [2]MomentsState `json:"open"` // the block being filled: canary, baseline
	ClosedDF [2]int64        `json:"closedDF"`
	ClosedM2 [2]float64      `json:"closedM2"`
	SumWD    float64         `json:"sumWD"`
	SumW     float64         `json:"sumW"`
	SumWWc   float64         `json:"sumWWc"`
	SumWWb   float64         `json:"sumWWb"`
}

// BoundedMeanState is the whole state of a BoundedMeanTest (a quality score's), as MeanState.
type BoundedMeanState struct {
	Worse  Direction       `json:"worse"`
	Margin float64         `json:"margin"`
	Alpha  float64         `json:"alpha"`
	Lo     float64         `json:"lo"`
	Hi     float64         `json:"hi"`
	Canary MomentsState    `json:"canary"`
	Base   MomentsState    `json:"base"`
	Open   [2]MomentsState `json:"open"`
	Blocks int64           `json:"blocks"`
	SumY   float64         `json:"sumY"`
	SumY2  float64         `json:"sumY2"`
	LogK   []float64       `json:"logK"` // the constant bettors' log capitals, then the adaptive one's
}

// MomentsState is a count of values, their mean and their sum of squared deviations from it.
type MomentsState struct {
	N    int64   `json:"n"`
	Mean float64 `json:"mean"`
	M2   float64 `json:"m2"`
}

func (m moments) state() MomentsState { return MomentsState{N: m.n, Mean: m.mean, M2: m.m2} }

// moments checks a saved count, mean and sum of squares: what is impossible is an error.
func (s MomentsState) moments(what string) (moments, error) {
	if s.N < 0 || !finite(s.Mean, s.M2) || s.M2 < 0 || (s.N == 0 && (s.Mean != 0 || s.M2 != 0)) {
		return moments{}, fmt.Errorf("the %s values' count %d, mean %g or squared deviations %g are impossible", what, s.N, s.Mean, s.M2)
	}
	return moments{n: s.N, mean: s.Mean, m2: s.M2}, nil
}

// meanCommon checks what both mean tests' states hold alike: the question (direction, margin,
// alpha) and the values (all of them, and the open block's, which are among them).
func meanCommon(worse Direction, margin, alpha float64, canary, base MomentsState, open [2]MomentsState) (all, blk [2]moments, err error) {
	if worse != Higher && worse != Lower {
		return all, blk, fmt.Errorf("direction %d is not one this aviary knows", worse)
	}
	if !(alpha > 0 && alpha < 1) || !(margin > 0) || math.IsInf(margin, 0) || (worse == Lower) != (margin <= 1) {
		return all, blk, fmt.Errorf("alpha %g or margin %g (worse when %s) is out of range", alpha, margin, worse)
	}
	for i, s := range [...]MomentsState{canary, base, open[0], open[1]} {
		what := [...]string{"canary's", "baseline's", "canary's open block", "baseline's open block"}[i]
		m, err := s.moments(what)
		if err != nil {
			return all, blk, err
		}
		if i < 2 {
			all[i] = m
		} else {
			blk[i-2] = m
		}
	}
	if blk[0].n > all[0].n || blk[1].n > all[1].n {
		return all, blk, errors.New("its open block holds more values than the test has seen")
	}
	return all, blk, nil
}

// State is a copy of the test's state now, the open block included.
func (t *MeanTest) State() MeanState {
	return MeanState{Worse: t.Worse, Margin: t.Margin, Alpha: t.Alpha, Canary: t.canary.state(), Base: t.base.state(),
		Open: [2]MomentsState{t.open[0].state(), t.open[1].state()}, ClosedDF: t.closedDF, ClosedM2: t.closedM2,
		SumWD: t.sumWD, SumW: t.sumW, SumWWc: t.sumWWc, SumWWb: t.sumWWb}
}

// RestoreMeanTest makes the test a MeanState describes. A state that could not have come from a
// test (an unknown direction, a margin that contradicts it, counts or sums that are negative or not
// finite) is an error that says so: the caller starts a new test instead, which loses evidence but
// never invents it.
func RestoreMeanTest(s MeanState) (*MeanTest, error) {
	all, blk, err := meanCommon(s.Worse, s.Margin, s.Alpha, s.Canary, s.Base, s.Open)
	if err != nil {
		return nil, fmt.Errorf("mean test state: %w", err)
	}
	if s.ClosedDF[0] < 0 || s.ClosedDF[1] < 0 || !finite(s.ClosedM2[0], s.ClosedM2[1], s.SumWD, s.SumW, s.SumWWc, s.SumWWb) ||
		s.ClosedM2[0] < 0 || s.ClosedM2[1] < 0 || s.SumW < 0 || s.SumWWc < 0 || s.SumWWb < 0 {
		return nil, errors.New("mean test state: its closed blocks' sums are negative or not finite")
	}
	return &MeanTest{Worse: s.Worse, Margin: s.Margin, Alpha: s.Alpha, canary: all[0], base: all[1], open: blk,
		closedDF: s.ClosedDF, closedM2: s.ClosedM2, sumWD: s.SumWD, sumW: s.SumW, sumWWc: s.SumWWc, sumWWb: s.SumWWb}, nil
}

// State is a copy of the test's state now, the open block included.
func (t *BoundedMeanTest) State() BoundedMeanState {
	return BoundedMeanState{Worse: t.Worse, Margin: t.Margin, Alpha: t.Alpha, Lo: t.Lo, Hi: t.Hi, Canary: t.canary.state(),
		Base: t.base.state(), Open: [2]MomentsState{t.open[0].state(), t.open[1].state()}, Blocks: t.blocks,
		SumY: t.sumY, SumY2: t.sumY2, LogK: slices.Clone(t.logK[:])}
}

// RestoreBoundedMeanTest makes the test a BoundedMeanState describes; what could not have come from
// a test (bounds that are not a range, another number of bettors, a capital that is not finite) is
// an error that says so, as for RestoreMeanTest.
func RestoreBoundedMeanTest(s BoundedMeanState) (*BoundedMeanTest, error) {
	all, blk, err := meanCommon(s.Worse, s.Margin, s.Alpha, s.Canary, s.Base, s.Open)
	if err != nil {
		return nil, fmt.Errorf("bounded mean test state: %w", err)
	}
	if !finite(s.Lo, s.Hi) || s.Lo >= s.Hi {
		return nil, fmt.Errorf("bounded mean test state: scores in %g..%g is not a range", s.Lo, s.Hi)
	}
	t := &BoundedMeanTest{Worse: s.Worse, Margin: s.Margin, Alpha: s.Alpha, Lo: s.Lo, Hi: s.Hi, canary: all[0], base: all[1], open: blk}
	if len(s.LogK) != len(t.logK) {
		return nil, fmt.Errorf("bounded mean test state: %d bettors' capitals, and this aviary has %d bettors", len(s.LogK), len(t.logK))
	}
	if s.Blocks < 0 || !finite(s.SumY, s.SumY2) || !finite(s.LogK...) || s.SumY2 < 0 {
		return nil, errors.New("bounded mean test state: its blocks or its bettors' capitals are negative or not finite")
	}
	copy(t.logK[:], s.LogK)
	t.blocks, t.sumY, t.sumY2 = s.Blocks, s.SumY, s.SumY2
	return t, nil
}
