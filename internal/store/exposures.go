package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// exposuresBucket holds one nested bucket per flag; its keys are TARGETING-KEY \x00 VARIANT, so a
// user's first exposure to each variant is kept once, whatever the number of evaluations.
// exposureCountsBucket keeps each flag's number of exposures (8 bytes, big-endian).
var (
	exposuresBucket      = []byte("exposures")
	exposureCountsBucket = []byte("exposureCounts")
)

// MaxExposuresPerFlag bounds what one flag keeps: past it, new exposures of the flag are counted as
// dropped, not stored, so a flag evaluated for endless keys cannot fill the disk.
const MaxExposuresPerFlag = 1_000_000

// Exposure is the first time a targeting key was given a variant of a flag: what an experiment
// counts a unit in an arm by.
type Exposure struct {
	Flag    string    `json:"flag"`
	Variant string    `json:"variant"`
	Key     string    `json:"key"`
	Track   string    `json:"track,omitempty"` // stable or canary of the flag's service, when known
	Time    time.Time `json:"time"`
}

// ExposureCounts are a flag's stored exposures by variant.
type ExposureCounts struct {
	Flag      string         `json:"flag"`
	Units     int            `json:"units"` // distinct targeting keys
	ByVariant map[string]int `json:"byVariant"`
	Recent    []Exposure     `json:"recent"` // the last ones stored, newest first
}

// AddExposures stores the exposures not stored yet (the first of each key and variant wins) in one
// transaction, and returns how many were new and how many were dropped for a full flag.
func (s *Store) AddExposures(es []Exposure) (added, dropped int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(exposuresBucket)
		if err != nil {
			return fmt.Errorf("create bucket exposures in store %s: %w", s.path, err)
		}
		counts, err := tx.CreateBucketIfNotExists(exposureCountsBucket)
		if err != nil {
			return fmt.Errorf("create bucket exposureCounts in store %s: %w", s.path, err)
		}
		for _, e := range es {
			if e.Flag == "" || e.Key == "" || e.Variant == "" {
				continue
			}
			b, err := root.CreateBucketIfNotExists([]byte(e.Flag))
			if err != nil {
				return fmt.Errorf("create bucket exposures/%s in store %s: %w", e.Flag, s.path, err)
			}
			k := exposureKey(e.Key, e.Variant)
			if b.Get(k) != nil {
				continue
			}
			n := uint64(0)
			if c := counts.Get([]byte(e.Flag)); len(c) == 8 {
				n = binary.BigEndian.Uint64(c)
			}
			if n >= MaxExposuresPerFlag {
				dropped++
				continue
			}
			if err := s.put(b, "exposures/"+e.Flag, k, e); err != nil {
				return err
			}
			if err := counts.Put([]byte(e.Flag), binary.BigEndian.AppendUint64(nil, n+1)); err != nil {
				return fmt.Errorf("write exposureCounts/%s to store %s: %w", e.Flag, s.path, err)
			}
			added++
		}
		return nil
	})
	return added, dropped, err
}

func exposureKey(key, variant string) []byte {
	return append(append([]byte(key), 0), variant...)
}

// Exposures counts a flag's exposures and returns the recent ones (at most recent of them).
func (s *Store) Exposures(flag string, recent int) (ExposureCounts, error) {
	out := ExposureCounts{Flag: flag, ByVariant: map[string]int{}, Recent: []Exposure{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(exposuresBucket)
		if root == nil {
			return nil
		}
		b := root.Bucket([]byte(flag))
		if b == nil {
			return nil
		}
		var last []byte
		return b.ForEach(func(k, v []byte) error {
			key, variant, _ := bytes.Cut(k, []byte{0})
			out.ByVariant[string(variant)]++
			if !bytes.Equal(key, last) {
				out.Units++
				last = append(last[:0], key...)
			}
			if recent <= 0 {
				return nil
			}
			var e Exposure
			if err := s.decode("exposures/"+flag, v, &e); err != nil {
				return err
			}
			out.Recent = insertRecent(out.Recent, e, recent)
			return nil
		})
	})
	return out, err
}

// insertRecent keeps the n newest exposures, newest first.
func insertRecent(list []Exposure, e Exposure, n int) []Exposure {
	i := len(list)
	for i > 0 && list[i-1].Time.Before(e.Time) {
		i--
	}
	if i >= n {
		return list
	}
	list = append(list, Exposure{})
	copy(list[i+1:], list[i:])
	list[i] = e
	if len(list) > n {
		list = list[:n]
	}
	return list
}
