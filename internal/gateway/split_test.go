package gateway

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"aviary.dev/aviary/internal/config"
)

func twoVersions(stable, canary int) ([]config.Version, []config.Traffic) {
	return []config.Version{{Name: "v1"}, {Name: "v2"}},
		[]config.Traffic{{Version: "v1", Weight: stable}, {Version: "v2", Weight: canary}}
}

// Over 100,000 requests without a sticky key, each version's share is within 0.5 percentage points
// of its weight (the even sequence makes it exact over every 10,000).
func TestSplitAccuracy(t *testing.T) {
	for _, w := range []int{1, 5, 10, 33, 50, 90} {
		vs, tr := twoVersions(100-w, w)
		s := newSplit(vs, tr, new(atomic.Uint32))
		var canary int
		const n = 100_000
		for i := 0; i < n; i++ {
			if s.version(s.anonymous()) == 1 {
				canary++
			}
		}
		got := 100 * float64(canary) / n
		if math.Abs(got-float64(w)) > 0.5 {
			t.Errorf("weight %d%%: canary got %.3f%%", w, got)
		}
	}
}

// Picks are evenly mixed: any 100 consecutive requests at 10% hold 10 ± 2 canary requests, where a
// modulo counter would send them in bursts.
func TestSplitEvenlyMixed(t *testing.T) {
	vs, tr := twoVersions(90, 10)
	s := newSplit(vs, tr, new(atomic.Uint32))
	picks := make([]int, 20_000)
	for i := range picks {
		picks[i] = s.version(s.anonymous())
	}
	for start := 0; start+100 <= len(picks); start += 37 {
		c := 0
		for _, p := range picks[start : start+100] {
			c += p
		}
		if c < 8 || c > 12 {
			t.Fatalf("requests %d..%d: %d canary picks, want 10±2", start, start+100, c)
		}
	}
}

// The layout of weights on the bucket line follows the versions' order; zero weights own nothing.
func TestSplitLayout(t *testing.T) {
	vs := []config.Version{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	s := newSplit(vs, []config.Traffic{{Version: "a", Weight: 20}, {Version: "c", Weight: 80}}, new(atomic.Uint32))
	for b, want := range map[uint32]int{0: 0, 1999: 0, 2000: 2, 9999: 2} {
		if got := s.version(b); got != want {
			t.Errorf("bucket %d -> version %d, want %d", b, got, want)
		}
	}
}

func stickyService(stable, canary int) *service {
	vs, tr := twoVersions(stable, canary)
	return &service{
		name:     "shop",
		versions: []*version{{name: "v1"}, {name: "v2"}},
		split:    newSplit(vs, tr, new(atomic.Uint32)),
		sticky:   newStickyKey(&config.Stickiness{Header: "X-User-Id"}),
	}
}

func versionFor(s *service, user string) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User-Id", user)
	return s.choose(httptest.NewRecorder(), r).name
}

// The same key always gets the same version, across snapshots and gateways.
func TestStickySameKey(t *testing.T) {
	a, b := stickyService(50, 50), stickyService(50, 50)
	for i := 0; i < 1000; i++ {
		u := fmt.Sprintf("user-%d", i)
		first := versionFor(a, u)
		if again := versionFor(a, u); again != first || versionFor(b, u) != first {
			t.Fatalf("user %s moved between identical choices", u)
		}
	}
}

// Monotonic stickiness: when the canary's weight rises, users only move from stable to canary; when
// it falls, only back. Proved over random users and random pairs of weights.
func TestStickyMonotonic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w1 := rapid.IntRange(0, 100).Draw(t, "w1")
		w2 := rapid.IntRange(0, 100).Draw(t, "w2")
		users := rapid.SliceOfN(rapid.String(), 1, 200).Draw(t, "users")
		before, after := stickyService(100-w1, w1), stickyService(100-w2, w2)
		for _, u := range users {
			v1, v2 := versionFor(before, u), versionFor(after, u)
			if w2 >= w1 && v1 == "v2" && v2 != "v2" {
				t.Fatalf("canary %d%% -> %d%%: user %q moved from canary back to stable", w1, w2, u)
			}
			if w2 <= w1 && v1 == "v1" && v2 != "v1" {
				t.Fatalf("canary %d%% -> %d%%: user %q moved from stable to canary", w1, w2, u)
			}
		}
	})
}

// Sticky keys spread evenly: at 10%, close to 10% of many users land on the canary.
func TestStickyShare(t *testing.T) {
	s := stickyService(90, 10)
	canary := 0
	const n = 50_000
	for i := 0; i < n; i++ {
		if versionFor(s, fmt.Sprintf("u%d", i)) == "v2" {
			canary++
		}
	}
	if got := 100 * float64(canary) / n; math.Abs(got-10) > 0.5 {
		t.Errorf("sticky users on canary: %.2f%%, want 10±0.5", got)
	}
}

func TestStickyKeySources(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/x?uid=q%201&other=2", nil)
	r.Header.Set("X-User", "h1")
	r.Header.Set("Cookie", "a=1; uid=c1; aviary=s1")
	cases := []struct {
		st   config.Stickiness
		want string
	}{
		{config.Stickiness{Header: "x-user"}, "h1"},
		{config.Stickiness{Cookie: "uid"}, "c1"},
		{config.Stickiness{Query: "uid"}, "q 1"},
		{config.Stickiness{Header: "X-Missing", SetCookie: "aviary"}, "s1"},
		{config.Stickiness{Header: "X-Missing"}, ""},
	}
	for _, c := range cases {
		if got := newStickyKey(&c.st).key(r); got != c.want {
			t.Errorf("%+v: key %q, want %q", c.st, got, c.want)
		}
	}
}

// A request with no key gets a fresh cookie when setCookie is configured, and keeps its version
// when it comes back with that cookie.
func TestStickySetCookie(t *testing.T) {
	s := stickyService(50, 50)
	s.sticky.setCookie = "aviary-shop"
	w := httptest.NewRecorder()
	first := s.choose(w, httptest.NewRequest(http.MethodGet, "/", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != "aviary-shop" || cookies[0].Value == "" {
		t.Fatalf("cookie not set: %v", cookies)
	}
	for i := 0; i < 20; i++ {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(cookies[0])
		w := httptest.NewRecorder()
		if got := s.choose(w, r); got != first {
			t.Fatalf("request %d with the cookie went to %s, first went to %s", i, got.name, first.name)
		}
		if len(w.Result().Cookies()) != 0 {
			t.Fatal("a cookie was set again for a request that had one")
		}
	}
}
