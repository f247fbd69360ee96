package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// httpDo returns o.HTTPDo, or, when it is nil, the Do of a client of its own that ignores the
// environment's proxy settings: a controller's HTTP_PROXY is meant for the outside world, not for
// the Prometheus or the health endpoint next to it.
func httpDo(o Options) func(*http.Request) (*http.Response, error) {
	if o.HTTPDo != nil {
		return o.HTTPDo
	}
	return defaultDo
}

// defaultDo is the HTTP client of every provider and query without Options.HTTPDo: one, so its
// idle connections are reused. A client per call (as PrometheusByLabel once made) leaves each
// call's keep-alive connection open until the server's limit (Prometheus: 512) is reached and
// later queries hang.
var defaultDo = func() func(*http.Request) (*http.Response, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return (&http.Client{Transport: t}).Do
}()

// measuredAt is the time a measurement is taken at: the query's clock when it has one.
func measuredAt(q Query) time.Time {
	if q.Now.IsZero() {
		return time.Now()
	}
	return q.Now
}

// errTooLarge is returned by readLimited for a body longer than its limit.
var errTooLarge = errors.New("response body too large")

// readLimited reads all of r, but no more than limit bytes: a longer body is errTooLarge, so
// that an endpoint gone wrong cannot make the controller hold gigabytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w (over %s)", errTooLarge, byteSize(limit))
	}
	return b, nil
}

// snippet is up to n bytes of b, for an error message.
func snippet(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// timedOut tells whether the provider's own timeout (tctx, made from ctx) ran out, as opposed to
// the caller giving up: only the first is the metric's timeout to raise.
func timedOut(ctx, tctx context.Context) bool {
	return ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded)
}

// ErrNoData is wrapped by a measurement error when the source answered but had no value for the
// query: an empty Prometheus vector, a JSONPath that matched nothing or null. Missing data is
// never a zero; the analysis decides what an error means.
var ErrNoData = errors.New("no data")

// bare drops the *url.Error around err: its text repeats the method and URL that the provider's
// message already starts with.
func bare(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
