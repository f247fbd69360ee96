package bucket

// An experiment places a unit twice, with two salts of its own, so that the two draws are
// independent of each other and of every service's and flag's buckets: first whether the unit is
// in the experiment at all (its traffic share), then which arm it gets (by the arms' weights).
// The gateway, the flags' overlay and the results all call these, so "in the experiment" means
// the same units to all three.

// TrafficSalt salts the draw of whether a unit is in experiment name.
func TrafficSalt(name string) string { return "experiment-traffic:" + name }

// ArmSalt salts the draw of a unit's arm in experiment name.
func ArmSalt(name string) string { return "experiment-arm:" + name }

// InShare says whether bucket b falls in the first percent of the buckets (percent in [0, 100],
// two decimals count).
func InShare(b uint32, percent float64) bool { return float64(b) < percent*N/100 }
