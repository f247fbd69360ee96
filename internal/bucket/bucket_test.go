package bucket

import (
	"strconv"
	"testing"
)

// The buckets are frozen: a change would move every sticky user and every flag rollout's users at
// once. These values were taken when the function was written.
func TestBucketsAreFrozen(t *testing.T) {
	for _, c := range []struct {
		salt, key string
		want      uint32
	}{
		{"shop", "user-1", 4608},
		{"shop", "user-2", 6644},
		{"flag:checkout", "jon@company.com", 3725},
		{"", "", 6863},
		{"api", "a-much-longer-key-0123456789", 3082},
	} {
		if got := Of(c.salt, c.key); got != c.want {
			t.Errorf("Of(%q, %q) = %d, want %d", c.salt, c.key, got, c.want)
		}
	}
}

// The traffic draw and the arm draw of an experiment are independent: among the units in a 20%
// share, the arm buckets are spread as over all units (no correlation between the salts).
func TestExperimentDrawsAreIndependent(t *testing.T) {
	const units = 100000
	in, inLow := 0, 0
	for i := 0; i < units; i++ {
		key := "user-" + strconv.Itoa(i)
		if InShare(Of(TrafficSalt("checkout"), key), 20) {
			in++
			if Of(ArmSalt("checkout"), key) < N/2 {
				inLow++
			}
		}
	}
	if share := float64(in) / units; share < 0.19 || share > 0.21 {
		t.Errorf("%.3f of units in a 20%% share", share)
	}
	if half := float64(inLow) / float64(in); half < 0.48 || half > 0.52 {
		t.Errorf("%.3f of the units in the share drew the lower half of the arms: the draws are correlated", half)
	}
}
