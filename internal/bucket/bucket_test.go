package bucket

import "testing"

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
