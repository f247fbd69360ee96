package exposure

import (
	"path/filepath"
	"strconv"
	"testing"

	"aviary.dev/aviary/internal/store"
)

// BenchmarkExposedRepeat is the cost the gateway adds to a sticky request once its unit's exposure
// is known (gateway.Options.Placed → Exposed): the in-memory set finds it, nothing is queued. It
// must not allocate.
func BenchmarkExposedRepeat(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	rec := New(Options{Sink: st})
	b.Cleanup(rec.Close)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
		rec.Exposed("service:shop", keys[i], "v1")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec.Exposed("service:shop", keys[i%len(keys)], "v1")
		i++
	}
}
