package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

var _ rollout.Store = (*Store)(nil)

// HistoryEntry is one line of a service's rollout history: a rollout started, ended or was
// undone. The last 100 entries of each service are kept.
type HistoryEntry struct {
	Revision int64            `json:"revision"` // per service, 1, 2, 3...
	Time     time.Time        `json:"time"`
	Kind     config.EventKind `json:"kind"`
	Stable   string           `json:"stableVersion"`
	Canary   string           `json:"canaryVersion,omitempty"`
	Reason   string           `json:"reason"`
	By       string           `json:"by"`
}

// inHistory reports whether an event of this kind is a line of the rollout history: the moments a
// rollout began, ended or was undone, not every step in between (the event log has those).
func inHistory(kind config.EventKind) bool {
	switch kind {
	case config.EventRolloutStarted, config.EventRetried, config.EventRestarted, config.EventCompleted,
		config.EventAborted, config.EventAnalysisFailed, config.EventGateFailed, config.EventUndone:
		return true
	}
	return false
}

// Commit writes a service's new state and the events that explain it in one durable transaction
// (it returns after bbolt's fsync), and returns copies of the events with their sequence numbers.
// An event with no Service gets the commit's; an event or state naming another service is refused,
// since it would be filed where nobody looks for it.
func (s *Store) Commit(service string, st rollout.State, events []rollout.Event) ([]rollout.Event, error) {
	if service == "" {
		return nil, fmt.Errorf("commit to store %s: the service name is empty", s.path)
	}
	if st.Service != "" && st.Service != service {
		return nil, fmt.Errorf("commit %q to store %s: the state is for service %q", service, s.path, st.Service)
	}
	out := make([]rollout.Event, len(events))
	for i, ev := range events {
		if ev.Service == "" {
			ev.Service = service
		}
		if ev.Service != service {
			return nil, fmt.Errorf("commit %q to store %s: event %d (%s) is for service %q", service, s.path, i, ev.Kind, ev.Service)
		}
		out[i] = ev
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.put(tx.Bucket(statesBucket), "states/"+service, []byte(service), st); err != nil {
			return err
		}
		if err := s.appendEvents(tx, out); err != nil {
			return err
		}
		return s.appendHistory(tx, service, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendEvents numbers the events, writes them, and deletes the oldest beyond maxEvents.
func (s *Store) appendEvents(tx *bolt.Tx, events []rollout.Event) error {
	b := tx.Bucket(eventsBucket)
	for i := range events {
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("number event in store %s: %w", s.path, err)
		}
		events[i].Seq = seq
		if err := s.put(b, fmt.Sprintf("events/%d", seq), seqKey(seq), events[i]); err != nil {
			return err
		}
	}
	return s.prune(b, "events", uint64(s.maxEvents))
}

// appendHistory adds a history entry for each event that marks a rollout's start, end or undo.
func (s *Store) appendHistory(tx *bolt.Tx, service string, events []rollout.Event) error {
	var b *bolt.Bucket
	for _, ev := range events {
		if !inHistory(ev.Kind) {
			continue
		}
		if b == nil {
			var err error
			if b, err = tx.Bucket(historyBucket).CreateBucketIfNotExists([]byte(service)); err != nil {
				return fmt.Errorf("create history/%s in store %s: %w", service, s.path, err)
			}
		}
		rev, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("number history entry of %q in store %s: %w", service, s.path, err)
		}
		h := HistoryEntry{Revision: int64(rev), Time: ev.Time, Kind: ev.Kind, Stable: ev.Stable,
			Canary: ev.Canary, Reason: ev.Reason, By: ev.By}
		if err := s.put(b, fmt.Sprintf("history/%s/%d", service, rev), seqKey(rev), h); err != nil {
			return err
		}
	}
	if b == nil {
		return nil
	}
	return s.prune(b, "history/"+service, historyKept)
}

// prune deletes the keys of b older than its newest keep. Keys are sequence numbers handed out by
// b.NextSequence and only ever deleted from the front, so those to go are the ones at or below
// Sequence()-keep. Keys are collected (copied) first: deleting under a bbolt cursor can skip the
// next key.
func (s *Store) prune(b *bolt.Bucket, where string, keep uint64) error {
	last := b.Sequence()
	if last <= keep {
		return nil
	}
	cutoff := last - keep
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && seqOf(k) <= cutoff; k, _ = c.Next() {
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete %s/%d from store %s: %w", where, seqOf(k), s.path, err)
		}
	}
	return nil
}
