package gateway

import (
	"net/http"
	"net/textproto"
	"sync/atomic"

	"aviary.dev/aviary/internal/bucket"
	"aviary.dev/aviary/internal/config"
)

// buckets is the resolution of a split: weights are laid out on [0, buckets) in basis points.
const buckets = bucket.N

// bucketOf is the bucket of a sticky key in a service (package bucket: a flag rollout's share is
// the same function of the key).
func bucketOf(service, key string) uint32 { return bucket.Of(service, key) }

// weyl is the step of the low-discrepancy sequence that places requests without a sticky key: k*weyl
// mod buckets visits every bucket once per 10,000 requests, evenly spread (weyl is coprime to 10,000
// and close to the golden ratio of it). Shares are exact over every 10,000 requests and never bursty,
// which a random draw is not, and it costs one atomic add.
const weyl = 6181

// split maps a bucket to a version. Versions occupy consecutive ranges in the order the service lists
// them, so moving weight between the stable version and a canary only moves the boundary between
// their ranges: users move one way only (stable -> canary when the canary's weight rises, back when it
// falls). That is what makes sticky assignment monotonic.
type split struct {
	upper []uint32 // upper[i]: end of version i's range; version i owns [upper[i-1], upper[i])
	// next counts anonymous requests. It belongs to the service, not to one snapshot, so that the
	// sequence goes on across reloads and weight changes instead of starting over each time.
	next *atomic.Uint32
}

func newSplit(versions []config.Version, traffic []config.Traffic, next *atomic.Uint32) *split {
	w := map[string]int{}
	for _, t := range traffic {
		w[t.Version] = t.Weight
	}
	s := &split{upper: make([]uint32, len(versions)), next: next}
	var acc uint32
	for i, v := range versions {
		acc += uint32(w[v.Name] * (buckets / 100))
		s.upper[i] = acc
	}
	return s
}

// version returns the index of the version that owns bucket b.
func (s *split) version(b uint32) int {
	for i, u := range s.upper {
		if b < u {
			return i
		}
	}
	return len(s.upper) - 1
}

// anonymous picks the bucket of a request without a sticky key.
func (s *split) anonymous() uint32 {
	return (s.next.Add(1) * weyl) % buckets
}

// stickyKey is where a service reads the key that keeps a user on one version.
type stickyKey struct {
	src       source
	name      string // canonical header name, cookie or query parameter
	setCookie string // a cookie the gateway sets for requests with no key, and reads back
}

func newStickyKey(s *config.Stickiness) *stickyKey {
	if s == nil {
		return nil
	}
	k := &stickyKey{setCookie: s.SetCookie}
	switch {
	case s.Header != "":
		k.src, k.name = fromHeader, textproto.CanonicalMIMEHeaderKey(s.Header)
	case s.Cookie != "":
		k.src, k.name = fromCookie, s.Cookie
	default:
		k.src, k.name = fromQuery, s.Query
	}
	return k
}

// key returns the request's sticky key, or "".
func (k *stickyKey) key(r *http.Request) string {
	var v string
	switch k.src {
	case fromHeader:
		if vs := r.Header[k.name]; len(vs) > 0 {
			v = vs[0]
		}
	case fromCookie:
		v, _ = cookieValue(r.Header, k.name)
	case fromQuery:
		v, _ = queryValue(r.URL.RawQuery, k.name)
	}
	if v == "" && k.setCookie != "" {
		v, _ = cookieValue(r.Header, k.setCookie)
	}
	return v
}
