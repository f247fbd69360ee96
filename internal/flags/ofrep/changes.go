package ofrep

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// changes serves GET {prefix}/v1/changes: a server-sent event stream that says
// {"type":"refetchEvaluation","etag":"..."} once on connecting (so that a change between the
// client's fetch and its connection is not missed) and again each time another set is in force.
// Events carry no flag values.
func (h *Handler) changes(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	h.o.Metrics.request(endpointChanges, http.StatusOK)
	ping := time.NewTicker(h.o.Ping)
	defer ping.Stop()
	for {
		changed := h.o.Flags.Changed() // before Current: a change in between is seen next round
		etag := strings.Trim(h.o.Flags.Current().ETag(), `"`)
		if writeStream(w, rc, fmt.Sprintf("data: {\"type\":\"refetchEvaluation\",\"etag\":%q}\n\n", etag)) != nil {
			return
		}
	wait:
		for {
			select {
			case <-r.Context().Done():
				return
			case <-h.stop:
				return
			case <-changed:
				break wait
			case <-ping.C:
				if writeStream(w, rc, ": ping\n\n") != nil {
					return
				}
			}
		}
	}
}

// streamWriteTimeout cuts off a client that stops reading, so that its handler does not hang.
const streamWriteTimeout = 10 * time.Second

func writeStream(w http.ResponseWriter, rc *http.ResponseController, s string) error {
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := w.Write([]byte(s)); err != nil {
		return err
	}
	return rc.Flush()
}
