package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"aviary.dev/aviary/internal/config"
)

// StoredSpec is a service definition applied through the API, which overrides the config file's
// until the file's version of that service changes (Basis tells whether it has).
type StoredSpec struct {
	Service config.Service `json:"service"`
	// Basis is a hash of the config file's version of this service when the spec was applied
	// ("" if the file has none).
	Basis     string    `json:"basis"`
	AppliedAt time.Time `json:"appliedAt"`
	By        string    `json:"by"`
}

// PutSpec stores sp under its service's name, replacing any spec stored before.
func (s *Store) PutSpec(sp StoredSpec) error { return s.PutSpecs([]StoredSpec{sp}) }

// PutSpecs stores several specs in one transaction: all of them, or none.
func (s *Store) PutSpecs(sps []StoredSpec) error {
	for _, sp := range sps {
		if sp.Service.Name == "" {
			return fmt.Errorf("put spec to store %s: the service has no name", s.path)
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, sp := range sps {
			name := sp.Service.Name
			if err := s.put(tx.Bucket(specsBucket), "specs/"+name, []byte(name), sp); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteSpec removes a service's stored spec; removing one that is not there is not an error.
func (s *Store) DeleteSpec(service string) error {
	if service == "" {
		return fmt.Errorf("delete spec from store %s: the service name is empty", s.path)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(specsBucket).Delete([]byte(service)); err != nil {
			return fmt.Errorf("delete specs/%s from store %s: %w", service, s.path, err)
		}
		return nil
	})
}

// Specs returns every stored spec, by service.
func (s *Store) Specs() (map[string]StoredSpec, error) {
	out := map[string]StoredSpec{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(specsBucket).ForEach(func(k, v []byte) error {
			var sp StoredSpec
			if err := s.decode("specs/"+string(k), v, &sp); err != nil {
				return err
			}
			out[string(k)] = sp
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
