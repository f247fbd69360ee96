package stats

import "math"

// Moments are the sums over the units of one arm of a metric's value Y and, where it exists, the
// unit's pre-experiment value X. The zero value is an empty arm.
type Moments struct {
	N                  float64 // units
	SumY, SumYY        float64
	NX                 float64 // units with a pre-experiment value
	SumX, SumXX, SumXY float64
	sumYWithX          float64 // ΣY over the units with X, for the covariance
}

// Add counts one unit with value y and no pre-experiment value.
func (m *Moments) Add(y float64) {
	m.N++
	m.SumY += y
	m.SumYY += y * y
}

// AddWithPre counts one unit with value y and pre-experiment value x.
func (m *Moments) AddWithPre(y, x float64) {
	m.Add(y)
	m.NX++
	m.SumX += x
	m.SumXX += x * x
	m.SumXY += x * y
	m.sumYWithX += y
}

// Merge adds o's units to m.
func (m *Moments) Merge(o Moments) {
	m.N += o.N
	m.SumY += o.SumY
	m.SumYY += o.SumYY
	m.NX += o.NX
	m.SumX += o.SumX
	m.SumXX += o.SumXX
	m.SumXY += o.SumXY
	m.sumYWithX += o.sumYWithX
}

// Mean is Ȳ, NaN for an empty arm.
func (m Moments) Mean() float64 {
	if m.N == 0 {
		return math.NaN()
	}
	return m.SumY / m.N
}

// Var is the sample variance of Y (divisor n−1), 0 with fewer than two units.
func (m Moments) Var() float64 { return sampleVar(m.N, m.SumY, m.SumYY) }

func (m Moments) meanX() float64 { return m.SumX / m.NX }
func (m Moments) varX() float64  { return sampleVar(m.NX, m.SumX, m.SumXX) }

// covXY is the sample covariance of X and Y over the units with X.
func (m Moments) covXY() float64 {
	if m.NX < 2 {
		return 0
	}
	return (m.SumXY - m.SumX*m.sumYWithX/m.NX) / (m.NX - 1)
}

// hasPre says whether every unit has a pre-experiment value (CUPED needs all of them).
func (m Moments) hasPre() bool { return m.N >= 2 && m.NX == m.N }

func sampleVar(n, sum, sumSq float64) float64 {
	if n < 2 {
		return 0
	}
	v := (sumSq - sum*sum/n) / (n - 1)
	if v < 0 { // rounding on a constant metric
		return 0
	}
	return v
}

// CountMoments are the moments of an arm known only by its units and the total count of an
// outcome over them (a Prometheus counter per arm): each unit's count is taken as Poisson with the
// arm's mean, so ΣY = count and ΣY² = count + count²/units (E[Y²] = λ + λ²). When some units send
// many of the events and others none (overdispersion), the true variance is larger and the
// intervals are too narrow: per-unit events are the better source where an app can send them.
func CountMoments(units, count float64) Moments {
	if units <= 0 {
		return Moments{}
	}
	return Moments{N: units, SumY: count, SumYY: count + count*count/units}
}
