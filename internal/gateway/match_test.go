package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/config"
)

func TestMatch(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/api/v2/items?tenant=acme&debug", nil)
	r.Header.Set("X-Region", "eu-west-1")
	r.Header.Add("X-Tag", "a")
	r.Header.Add("X-Tag", "beta")
	r.Header.Set("Cookie", `session=abc; beta="1"`)
	hdr := func(name string, m config.StringMatch) config.Match {
		return config.Match{Header: &config.KeyMatch{Name: name, StringMatch: m}}
	}
	cases := []struct {
		name string
		m    config.Match
		want bool
	}{
		{"header exact", hdr("x-region", config.StringMatch{Value: "eu-west-1"}), true},
		{"header exact wrong", hdr("X-Region", config.StringMatch{Value: "eu"}), false},
		{"header prefix", hdr("X-Region", config.StringMatch{Prefix: "eu-"}), true},
		{"header regex whole value", hdr("X-Region", config.StringMatch{Regex: "eu-[a-z]+-[0-9]"}), true},
		{"header regex is anchored", hdr("X-Region", config.StringMatch{Regex: "west"}), false},
		{"any value of a repeated header", hdr("X-Tag", config.StringMatch{Value: "beta"}), true},
		{"missing header", hdr("X-None", config.StringMatch{Prefix: "a"}), false},
		{"quoted cookie", config.Match{Cookie: &config.KeyMatch{Name: "beta", StringMatch: config.StringMatch{Value: "1"}}}, true},
		{"cookie prefix", config.Match{Cookie: &config.KeyMatch{Name: "session", StringMatch: config.StringMatch{Prefix: "ab"}}}, true},
		{"missing cookie", config.Match{Cookie: &config.KeyMatch{Name: "sess", StringMatch: config.StringMatch{Prefix: "ab"}}}, false},
		{"query exact", config.Match{Query: &config.KeyMatch{Name: "tenant", StringMatch: config.StringMatch{Value: "acme"}}}, true},
		{"query regex", config.Match{Query: &config.KeyMatch{Name: "tenant", StringMatch: config.StringMatch{Regex: "ac.*"}}}, true},
		{"path prefix", config.Match{Path: &config.StringMatch{Prefix: "/api/v2/"}}, true},
		{"path exact", config.Match{Path: &config.StringMatch{Value: "/api/v2"}}, false},
		{"all conditions must hold", config.Match{Path: &config.StringMatch{Prefix: "/api"},
			Header: &config.KeyMatch{Name: "X-Region", StringMatch: config.StringMatch{Value: "us"}}}, false},
	}
	for _, c := range cases {
		if got := compileMatch(c.m).match(r); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzCookieAndQuery: the allocation-free readers agree with net/http's cookie reader on every input
// and with net/url's query parser on any query it accepts.
func FuzzCookieAndQuery(f *testing.F) {
	f.Add("a=1; b=2", "b", "x=1&y=%20z", "y")
	f.Add(`beta="1"`, "beta", "a+b=c", "a b")
	f.Add("", "a", "&&a=", "a")
	f.Add("b=0\v;b", "b", "", "b")
	f.Add("a= 1 ; a=2", "a", "", "a")
	f.Add(`a=x\y; a="q"; a=ok`, "a", "", "a")
	f.Add("a=1\nb=2; a=3", "a", "", "a")
	f.Add("a=1"+strings.Repeat(";", 1500)+"\n"+strings.Repeat(";", 1500), "a", "", "a")
	f.Fuzz(func(t *testing.T, cookie, cname, query, qname string) {
		// A newline splits the input into several Cookie header lines.
		h := http.Header{"Cookie": strings.Split(cookie, "\n")}
		got, ok := cookieValue(h, cname)
		r := &http.Request{Header: h}
		// An empty name means any cookie to net/http; routes always name one.
		if c, err := r.Cookie(cname); cname == "" {
			// nothing to compare
		} else if (err == nil) != ok || (ok && got != c.Value) {
			t.Fatalf("cookie %q in %q: net/http %v %v, we %q %v", cname, cookie, c, err, got, ok)
		}
		vals, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		gq, ok := queryValue(query, qname)
		if want, has := vals[qname]; has != ok || (has && want[0] != gq) {
			t.Fatalf("query %q in %q: net/url %v (%v), we %q (%v)", qname, query, want, has, gq, ok)
		}
	})
}
