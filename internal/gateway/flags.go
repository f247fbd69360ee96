package gateway

import (
	"net/http"
	"net/textproto"

	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/metrics"
)

// maxRequestFlags bounds the flags a service's requests are evaluated for, so that an exchange keeps
// their series in a fixed array (no allocation per request).
const maxRequestFlags = 8

// FlagSeriesPrefix names the measurements of a flag's variants: the series of variant V of flag K is
// the metrics registry's series of service FlagSeriesPrefix+K, version V. A flag rollout is judged
// on them as a rollout of a service is judged on its versions.
const FlagSeriesPrefix = "flag:"

// RequestFlag is a flag the gateway evaluates for every request of a service: to pass the variant
// the request's user has to the upstream in a header (a gateway-evaluated flag, for services that
// have no flag SDK), and to measure the request under that variant (so that a flag rollout is judged
// on the gateway's own per-variant measurements).
type RequestFlag struct {
	Key string
	// Header, when set, carries the variant's name to the upstream; a client's own header of that
	// name is replaced (or removed when the flag gives no variant), never passed on.
	Header string
	// Measured: the request is counted under its variant's series (FlagSeriesPrefix+Key), one
	// for each of Variants.
	Measured bool
	Variants []string
	// Variant evaluates the flag for a user (the service's sticky key, "" when the request has none)
	// and the request; ok is false when the flag gives no variant (unknown, or an error).
	// It is called on the request path: it must be fast and must not block.
	Variant func(key string, r *http.Request) (variant string, ok bool)
}

// flagTable is what SetFlags stores: each service's flags, ready for the request path.
type flagTable map[string][]requestFlag

type requestFlag struct {
	RequestFlag
	header string                     // canonical
	values map[string][]string        // the header's value for each of Variants, made once
	series map[string]*metrics.Series // by variant; nil unless measured
}

// SetFlags makes these the flags evaluated for each service's requests (by service name; at most
// maxRequestFlags per service, the rest are ignored and logged). It may be called at any time;
// requests in flight keep the flags they started with.
func (g *Gateway) SetFlags(byService map[string][]RequestFlag) {
	t := flagTable{}
	for svc, fs := range byService {
		if len(fs) > maxRequestFlags {
			g.log.Warn("a service has more flags than the gateway evaluates per request; the rest are left out",
				"service", svc, "flags", len(fs), "limit", maxRequestFlags)
			fs = fs[:maxRequestFlags]
		}
		for _, f := range fs {
			rf := requestFlag{RequestFlag: f}
			if f.Header != "" {
				rf.header = textproto.CanonicalMIMEHeaderKey(f.Header)
				rf.values = make(map[string][]string, len(f.Variants))
				for _, v := range f.Variants {
					rf.values[v] = []string{v} // shared by requests: the proxy copies headers it changes
				}
			}
			if f.Measured {
				rf.series = make(map[string]*metrics.Series, len(f.Variants))
				for _, v := range f.Variants {
					rf.series[v] = g.metrics.Series(FlagSeriesPrefix+f.Key, v, metrics.Primary)
				}
			}
			t[svc] = append(t[svc], rf)
		}
	}
	g.flags.Store(&t)
}

// evalFlags evaluates the service's flags for the request's user: sets their headers on r (which
// the upstream request shares) and the series the request is measured in under each variant.
func (g *Gateway) evalFlags(ex *exchange, r *http.Request, svc *service, key string) {
	t := g.flags.Load()
	if t == nil {
		return
	}
	fs := (*t)[svc.name]
	for i := range fs {
		f := &fs[i]
		variant, ok := f.Variant(key, r)
		if f.header != "" {
			if vs, listed := f.values[variant]; ok && listed {
				r.Header[f.header] = vs
			} else if ok {
				r.Header[f.header] = []string{variant}
			} else {
				delete(r.Header, f.header)
			}
		}
		if ok && f.series != nil && key != "" {
			if ex.flagSeries[i] = f.series[variant]; ex.flagSeries[i] != nil { // nil for a variant the flag did not list
				ex.flags[ex.nflags] = llm.FlagVariant{Flag: f.Key, Variant: variant}
				ex.nflags++
			}
		}
	}
}
