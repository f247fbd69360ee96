package judge

// Counts returns how many values each side has given so far.
func (t *MeanTest) Counts() (canary, base int64) { return t.canary.n, t.base.n }
