package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"aviary.dev/aviary/internal/rollout"
)

// experimentsBucket holds each experiment's state (JSON) by name. trackedBucket holds one nested
// bucket per event name, keyed UNIT \x00 ID, valued by the event's time (8 bytes, Unix nanoseconds)
// and value (8 bytes, float64 bits): every event of a unit sits together, and the key makes a
// repeated event id a no-op. trackedIDsBucket keeps every id once, so a batch sent again with other
// units or names is still not counted twice.
var (
	experimentsBucket = []byte("experiments")
	trackedBucket     = []byte("tracked")
	trackedIDsBucket  = []byte("trackedIDs")
	// trackedCountBucket holds, under key "n", how many events are kept (8 bytes, big-endian).
	trackedCountBucket = []byte("trackedCount")
)

// MaxTrackedEvents bounds the tracked events kept in all: past it new events are counted as
// dropped, so a client in a loop cannot fill the disk.
const MaxTrackedEvents = 20_000_000

// ExperimentPhase is where an experiment is.
type ExperimentPhase string

// The phases.
const (
	ExperimentRunning   ExperimentPhase = "running"
	ExperimentStopped   ExperimentPhase = "stopped"
	ExperimentConcluded ExperimentPhase = "concluded"
)

// ExperimentState is what the store keeps of an experiment beyond its spec.
type ExperimentState struct {
	Name    string          `json:"name"`
	Phase   ExperimentPhase `json:"phase"`
	Started time.Time       `json:"started"`
	Stopped time.Time       `json:"stopped,omitzero"`
	// Shipped is the arm chosen by conclude.
	Shipped string `json:"shipped,omitempty"`
	// StoppedArms are the arms stopped while the experiment ran (a guardrail broke), in order.
	StoppedArms []StoppedArm `json:"stoppedArms,omitempty"`
}

// StoppedArm is an arm that no longer gets units: its users went back to control at At.
type StoppedArm struct {
	Arm string    `json:"arm"`
	At  time.Time `json:"at"`
	// Metric is the guardrail that broke; Reason says so in words, with the evidence.
	Metric string `json:"metric,omitempty"`
	Reason string `json:"reason"`
}

// ArmStopped returns when arm was stopped, if it was.
func (st ExperimentState) ArmStopped(arm string) (StoppedArm, bool) {
	for _, a := range st.StoppedArms {
		if a.Arm == arm {
			return a, true
		}
	}
	return StoppedArm{}, false
}

// PutExperiment writes an experiment's state.
func (s *Store) PutExperiment(st ExperimentState) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(experimentsBucket)
		if err != nil {
			return fmt.Errorf("create bucket experiments in store %s: %w", s.path, err)
		}
		return s.put(b, "experiments/"+st.Name, []byte(st.Name), st)
	})
}

// ChangeExperiment writes an experiment's state and the events that explain it in one durable
// transaction, and returns copies of the events with their sequence numbers.
func (s *Store) ChangeExperiment(st ExperimentState, events []rollout.Event) ([]rollout.Event, error) {
	evs := append([]rollout.Event(nil), events...)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(experimentsBucket)
		if err != nil {
			return fmt.Errorf("create bucket experiments in store %s: %w", s.path, err)
		}
		if err := s.put(b, "experiments/"+st.Name, []byte(st.Name), st); err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return evs, nil
}

// Experiment reads an experiment's state; ok is false when it was never started.
func (s *Store) Experiment(name string) (st ExperimentState, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(experimentsBucket)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(name))
		if v == nil {
			return nil
		}
		ok = true
		return s.decode("experiments/"+name, v, &st)
	})
	return st, ok, err
}

// TrackedEvent is an outcome an app reported for a unit (POST /api/v1/track).
type TrackedEvent struct {
	ID    string    `json:"id"`
	Unit  string    `json:"unit"`
	Event string    `json:"event"`
	Value float64   `json:"value"`
	Time  time.Time `json:"time"`
}

// AddTracked stores the events whose id was not seen before, in one transaction, and returns how
// many were new and how many were dropped past MaxTrackedEvents.
func (s *Store) AddTracked(es []TrackedEvent) (added, dropped int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) (err error) {
		root, err := tx.CreateBucketIfNotExists(trackedBucket)
		if err != nil {
			return fmt.Errorf("create bucket tracked in store %s: %w", s.path, err)
		}
		ids, err := tx.CreateBucketIfNotExists(trackedIDsBucket)
		if err != nil {
			return fmt.Errorf("create bucket trackedIDs in store %s: %w", s.path, err)
		}
		counts, err := tx.CreateBucketIfNotExists(trackedCountBucket)
		if err != nil {
			return fmt.Errorf("create bucket trackedCount in store %s: %w", s.path, err)
		}
		n := 0
		if c := counts.Get([]byte("n")); len(c) == 8 {
			n = int(binary.BigEndian.Uint64(c))
		}
		defer func() {
			if err == nil && added > 0 {
				err = counts.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, uint64(n)))
			}
		}()
		for _, e := range es {
			if e.ID == "" || e.Unit == "" || e.Event == "" || ids.Get([]byte(e.ID)) != nil {
				continue
			}
			if n >= MaxTrackedEvents {
				dropped++
				continue
			}
			b, err := root.CreateBucketIfNotExists([]byte(e.Event))
			if err != nil {
				return fmt.Errorf("create bucket tracked/%s in store %s: %w", e.Event, s.path, err)
			}
			v := binary.BigEndian.AppendUint64(nil, uint64(e.Time.UnixNano()))
			v = binary.BigEndian.AppendUint64(v, math.Float64bits(e.Value))
			if err := b.Put(exposureKey(e.Unit, e.ID), v); err != nil {
				return fmt.Errorf("write tracked/%s to store %s: %w", e.Event, s.path, err)
			}
			if err := ids.Put([]byte(e.ID), nil); err != nil {
				return fmt.Errorf("write trackedIDs to store %s: %w", s.path, err)
			}
			n++
			added++
		}
		return nil
	})
	return added, dropped, err
}

// EachTracked calls fn for every stored event of one name, grouped by unit.
func (s *Store) EachTracked(event string, fn func(TrackedEvent) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(trackedBucket)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(event))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			unit, id, _ := bytes.Cut(k, []byte{0})
			if len(v) != 16 {
				return fmt.Errorf("decode tracked/%s/%q in store %s: %d bytes, want 16; the store is damaged, restore it from a backup", event, k, s.path, len(v))
			}
			return fn(TrackedEvent{
				ID: string(id), Unit: string(unit), Event: event,
				Time:  time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))).UTC(),
				Value: math.Float64frombits(binary.BigEndian.Uint64(v[8:])),
			})
		})
	})
}

// EachExposure calls fn for every stored exposure of a flag (one per key and variant).
func (s *Store) EachExposure(flag string, fn func(Exposure) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(exposuresBucket)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(flag))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var e Exposure
			if err := s.decode("exposures/"+flag, v, &e); err != nil {
				return err
			}
			return fn(e)
		})
	})
}

// Version is the number of the last write to the store: it changes with every write (exposures,
// events, states), so a reader that computed something from the store knows whether it may still
// hold. It is bbolt's transaction ID, which survives restarts.
func (s *Store) Version() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v = uint64(tx.ID())
		return nil
	})
	return v, err
}
