package gateway

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
)

// bodyPace is how slowly a client may send a request body. A client that sends one byte every few
// seconds would otherwise hold its connection, and the one to the endpoint its body streams to, for
// as long as it likes; a few thousand of them exhaust the process's file descriptors. Like nginx's
// client_body_timeout, no read may wait longer than idle; like Kestrel's MinRequestBodyDataRate,
// after grace the body must average rate bytes a second. Only time spent waiting for the client
// counts: an endpoint slow to take the body does not make its client too slow.
type bodyPace struct {
	idle, grace time.Duration
	rate        int64 // bytes per second; 0: no minimum
	idleCut     prometheus.Counter
	rateCut     prometheus.Counter
}

// cutReason says which limit cut a body; the empty string: none.
type cutReason string

const (
	cutIdle cutReason = "idle"
	cutRate cutReason = "rate"
)

func newBodyPace(g config.Gateway, c *counters) bodyPace {
	p := bodyPace{ // the config's defaults applied: every field is set
		idle:    g.Timeouts.BodyIdle.Duration,
		grace:   g.Timeouts.BodyGrace.Duration,
		rate:    int64(g.MinBodyRate),
		idleCut: c.bodiesCut.WithLabelValues(string(cutIdle)),
		rateCut: c.bodiesCut.WithLabelValues(string(cutRate)),
	}
	if p.rate < 0 {
		p.rate = 0 // -1: off
	}
	return p
}

// deadline is when a read that starts at now, after n bytes and waited time spent waiting, must
// have data, and the limit that sets it.
func (p *bodyPace) deadline(now time.Time, n int64, waited time.Duration) (time.Time, cutReason) {
	d, why := p.idle, cutIdle
	if p.rate > 0 {
		earned := time.Duration(float64(n) / float64(p.rate) * float64(time.Second))
		if allowed := p.grace + earned - waited; allowed < d {
			d, why = max(allowed, 0), cutRate
		}
	}
	return now.Add(d), why
}

// pacedBody is a request body read under a bodyPace: each read sets the connection's read deadline
// (through http.ResponseController, which works for HTTP/1 and HTTP/2), and a read cut by it is
// counted and remembered, so the gateway answers 408 rather than blame the endpoint.
type pacedBody struct {
	rc     io.ReadCloser
	pace   *bodyPace
	ctl    *http.ResponseController
	n      int64         // bytes read
	waited time.Duration // time spent in reads
	done   bool          // EOF seen: deadlines cleared
	cut    atomic.Pointer[cutReason]
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.rc.Read(p)
	}
	began := time.Now()
	deadline, why := b.pace.deadline(began, b.n, b.waited)
	_ = b.ctl.SetReadDeadline(deadline)
	n, err := b.rc.Read(p)
	b.n += int64(n)
	b.waited += time.Since(began)
	switch {
	case err == io.EOF:
		// Go's HTTP/1 server now reads ahead in the background to notice a client that goes away;
		// a deadline left behind would end that read, and cancel the request, mid-response.
		b.done = true
		_ = b.ctl.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded) && b.cut.CompareAndSwap(nil, &why):
		if why == cutRate {
			b.pace.rateCut.Inc()
		} else {
			b.pace.idleCut.Inc()
		}
	}
	return n, err
}

func (b *pacedBody) Close() error { return b.rc.Close() }

// cutBy says which limit cut the body; "" when none did (or b is nil).
func (b *pacedBody) cutBy() cutReason {
	if b == nil {
		return ""
	}
	if r := b.cut.Load(); r != nil {
		return *r
	}
	return ""
}

// answerCut answers a request whose body came too slowly: 408, and the connection closes.
func (b *pacedBody) answerCut(w http.ResponseWriter, why cutReason) {
	w.Header().Set("Connection", "close")
	msg := "aviary: the request body stopped for longer than gateway.timeouts.bodyIdle (" + b.pace.idle.String() + ")"
	if why == cutRate {
		msg = "aviary: the request body came slower than gateway.minBodyRate (" +
			strconv.FormatInt(b.pace.rate, 10) + " bytes/s after " + b.pace.grace.String() + ")"
	}
	http.Error(w, msg, http.StatusRequestTimeout)
}
