package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutEvidence keeps the evidence of service's rollout in flight, replacing what was kept before,
// in one durable transaction. The store does not read it: data is the analysis's own encoding
// (JSON), checked only to be JSON so that a value the analysis could never read back is refused
// here, where the caller can log it, rather than found after a restart.
func (s *Store) PutEvidence(service string, data []byte) error {
	if service == "" {
		return fmt.Errorf("put evidence to store %s: the service name is empty", s.path)
	}
	if !json.Valid(data) {
		return fmt.Errorf("put evidence/%s to store %s: it is not JSON; this is a bug in aviary's analysis, please report it", service, s.path)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(evidenceBucket).Put([]byte(service), data); err != nil {
			return fmt.Errorf("write evidence/%s to store %s: %w", service, s.path, err)
		}
		return nil
	})
}

// Evidence returns the evidence kept for every service, as PutEvidence was given it.
func (s *Store) Evidence() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(evidenceBucket).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...) // bbolt's slices live only as long as the transaction
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read evidence from store %s: %w", s.path, err)
	}
	return out, nil
}

// DeleteEvidence drops service's evidence (its rollout ended); dropping none is not an error.
func (s *Store) DeleteEvidence(service string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(evidenceBucket).Delete([]byte(service)); err != nil {
			return fmt.Errorf("delete evidence/%s from store %s: %w", service, s.path, err)
		}
		return nil
	})
}
