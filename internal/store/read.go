package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"aviary.dev/aviary/internal/rollout"
)

// DefaultEventLimit is how many events Events returns when the query sets no limit.
const DefaultEventLimit = 100

// States returns every stored state, by service.
func (s *Store) States() (map[string]rollout.State, error) {
	out := map[string]rollout.State{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(statesBucket).ForEach(func(k, v []byte) error {
			var st rollout.State
			if err := s.decode("states/"+string(k), v, &st); err != nil {
				return err
			}
			out[string(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// History returns a service's rollout history, oldest first; none if it has no history.
func (s *Store) History(service string) ([]HistoryEntry, error) {
	out := []HistoryEntry{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(historyBucket).Bucket([]byte(service))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var h HistoryEntry
			if err := s.decode(fmt.Sprintf("history/%s/%d", service, seqOf(k)), v, &h); err != nil {
				return err
			}
			out = append(out, h)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EventQuery selects events: those after sequence number After, of Service ("" for every
// service), at most Limit of them (0 → DefaultEventLimit).
type EventQuery struct {
	Service string
	After   uint64
	Limit   int
}

// Events returns the events that q selects, in ascending sequence order. A client that follows
// the log passes the last Seq it saw as After.
//
// Filtering by service decodes every event after After: the log is bounded by MaxEvents, so this
// costs milliseconds, and a per-service index would be one more thing to keep consistent.
func (s *Store) Events(q EventQuery) ([]rollout.Event, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultEventLimit
	}
	out := []rollout.Event{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		for k, v := c.Seek(seqKey(q.After + 1)); k != nil && len(out) < q.Limit; k, v = c.Next() {
			ev, err := s.event(k, v)
			if err != nil {
				return err
			}
			if q.Service == "" || ev.Service == q.Service {
				out = append(out, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastEvents returns the n most recent events of service ("" for every service), in ascending
// sequence order; none when n ≤ 0.
func (s *Store) LastEvents(service string, n int) ([]rollout.Event, error) {
	out := []rollout.Event{}
	if n <= 0 {
		return out, nil
	}
	// An event of another service is skipped without decoding it when its JSON cannot hold this
	// service's name (a service's events among many: the dashboard's first read of a rollout).
	var mark []byte
	if service != "" {
		mark, _ = json.Marshal(service)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			if mark != nil && !bytes.Contains(v, mark) {
				continue
			}
			ev, err := s.event(k, v)
			if err != nil {
				return err
			}
			if service == "" || ev.Service == service {
				out = append(out, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// event decodes one stored event.
func (s *Store) event(k, v []byte) (rollout.Event, error) {
	var ev rollout.Event
	err := s.decode(fmt.Sprintf("events/%d", seqOf(k)), v, &ev)
	return ev, err
}
