package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// Hub fans committed events out to live streams. Publish never blocks: a subscriber that falls
// behind by more than its buffer is cut off (its stream ends, and the client reconnects with
// Last-Event-ID to replay what it missed from the store).
type Hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	service string
	ch      chan rollout.Event
}

// NewHub makes an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*subscriber]struct{}{}} }

// Publish sends events to every subscriber that wants them.
func (h *Hub) Publish(events []rollout.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		for _, e := range events {
			if sub.service != "" && sub.service != e.Service {
				continue
			}
			select {
			case sub.ch <- e:
			default: // too slow: cut it off
				close(sub.ch)
				delete(h.subs, sub)
			}
			if _, ok := h.subs[sub]; !ok {
				break
			}
		}
	}
}

func (h *Hub) subscribe(service string) (*subscriber, func()) {
	sub := &subscriber{service: service, ch: make(chan rollout.Event, 256)}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	return sub, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[sub]; ok {
			delete(h.subs, sub)
			close(sub.ch)
		}
	}
}

// pingEvery keeps idle streams open through proxies.
const pingEvery = 15 * time.Second

// stream serves GET /api/v1/events/stream as server-sent events: first the events after
// Last-Event-ID (or ?after=) from the store, then live ones.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok || s.Hub == nil {
		writeError(w, http.StatusInternalServerError, "event streaming is not available")
		return
	}
	service := r.URL.Query().Get("service")
	after, err := parseUint(r.Header.Get("Last-Event-ID"))
	if err == nil && after == 0 {
		after, err = parseUint(r.URL.Query().Get("after"))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "Last-Event-ID and after must be event sequence numbers")
		return
	}
	sub, cancel := s.Hub.subscribe(service) // before the replay, so nothing falls between the two
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	last := after
	if after > 0 {
		for {
			evs, err := s.Rollouts.Events(service, last, 500)
			if err != nil || len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if writeEvent(w, e) != nil {
					return
				}
				last = e.Seq
			}
		}
	}
	fl.Flush()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.ch:
			if !ok {
				return
			}
			if e.Seq <= last {
				continue // already replayed
			}
			if writeEvent(w, e) != nil {
				return
			}
			last = e.Seq
			fl.Flush()
		case <-ping.C:
			if writeStream(w, ": ping\n\n") != nil {
				return
			}
			fl.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, e rollout.Event) error {
	b, _ := json.Marshal(e)
	return writeStream(w, fmt.Sprintf("id: %d\nevent: rollout\ndata: %s\n\n", e.Seq, b))
}

// streamWriteTimeout cuts off a client that stops reading, so that its handler does not hang.
const streamWriteTimeout = 10 * time.Second

func writeStream(w http.ResponseWriter, s string) error {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := io.WriteString(w, s)
	return err
}
