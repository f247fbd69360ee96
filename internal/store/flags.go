package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/rollout"
)

// Flag buckets: flags holds the flags set through the API, keyed by flag key, each one flag in
// flagd's JSON; flagStates holds the kill switch's state of a flag, whatever its source.
var (
	flagsBucket      = []byte("flags")
	flagStatesBucket = []byte("flagStates")
)

// StoredFlag is a flag set through the API. It overrides a flag of the same key from the flag files.
type StoredFlag struct {
	Key string `json:"key"`
	// Flag is the flag's definition in flagd's JSON: the value of "flags": {KEY: ...}. The store keeps
	// it as given; the flags package parses it.
	Flag  json.RawMessage `json:"flag"`
	SetAt time.Time       `json:"setAt"`
	By    string          `json:"by"`
}

// FlagState is the kill switch's word on a flag: its state in place of the state its definition
// gives, who set it and when.
type FlagState struct {
	Key   string      `json:"key"`
	State flags.State `json:"state"`
	At    time.Time   `json:"at"`
	By    string      `json:"by"`
	// Reason is what the person who switched it said ("" when nothing).
	Reason string `json:"reason,omitempty"`
}

// FlagChange is one change of the stored flags, written in one durable transaction with the events
// that explain it: all of it, or nothing.
type FlagChange struct {
	Put    []StoredFlag
	Delete []string    // flag keys whose stored definition goes
	States []FlagState // a State "" removes the flag's kill-switch state
	Events []rollout.Event
}

// ChangeFlags writes c and returns copies of its events with their sequence numbers.
func (s *Store) ChangeFlags(c FlagChange) ([]rollout.Event, error) {
	for _, f := range c.Put {
		if f.Key == "" || !json.Valid(f.Flag) {
			return nil, fmt.Errorf("put flag %q to store %s: the key is empty or the definition is not JSON", f.Key, s.path)
		}
	}
	for _, st := range c.States {
		if st.Key == "" {
			return nil, fmt.Errorf("put flag state to store %s: the flag key is empty", s.path)
		}
	}
	evs := append([]rollout.Event(nil), c.Events...)
	err := s.db.Update(func(tx *bolt.Tx) error {
		flags, states := tx.Bucket(flagsBucket), tx.Bucket(flagStatesBucket)
		for _, f := range c.Put {
			if err := s.put(flags, "flags/"+f.Key, []byte(f.Key), f); err != nil {
				return err
			}
		}
		for _, key := range c.Delete {
			if err := flags.Delete([]byte(key)); err != nil {
				return fmt.Errorf("delete flags/%s from store %s: %w", key, s.path, err)
			}
		}
		for _, st := range c.States {
			if st.State == "" {
				if err := states.Delete([]byte(st.Key)); err != nil {
					return fmt.Errorf("delete flagStates/%s from store %s: %w", st.Key, s.path, err)
				}
				continue
			}
			if err := s.put(states, "flagStates/"+st.Key, []byte(st.Key), st); err != nil {
				return err
			}
		}
		return s.appendEvents(tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return evs, nil
}

// Flags returns the flags set through the API and the kill switch's states, by flag key.
func (s *Store) Flags() (map[string]StoredFlag, map[string]FlagState, error) {
	flags, states := map[string]StoredFlag{}, map[string]FlagState{}
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(flagsBucket).ForEach(func(k, v []byte) error {
			var f StoredFlag
			if err := s.decode("flags/"+string(k), v, &f); err != nil {
				return err
			}
			flags[string(k)] = f
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(flagStatesBucket).ForEach(func(k, v []byte) error {
			var st FlagState
			if err := s.decode("flagStates/"+string(k), v, &st); err != nil {
				return err
			}
			states[string(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return flags, states, nil
}
