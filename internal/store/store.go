// Package store is Aviary's embedded durable store: each service's rollout state, the event log
// that explains it, the rollout history that `aviary rollout history` and undo read, the specs
// applied through the API, the feature flags set through the API with their kill-switch states
// (flags.go) and the flags' exposures (exposures.go), and the evidence of the rollout in flight
// (the analysis's sequential tests, so that a restart resumes them instead of starting afresh). It
// satisfies rollout.Store and analysis.EvidenceStore.
//
// It uses bbolt (a single file, one writer, fsync on every commit, an exclusive file lock) because
// a rollout that a restart forgets or half-remembers routes users to the wrong version: a commit
// that returned must survive a crash, and two aviary processes must never drive the same services
// from one file. bbolt gives both without a server to run.
//
// The store never decides anything about a rollout and never edits what it is given beyond
// numbering events: it keeps what the controller commits and hands it back. It must never run
// with NoSync, never hold a transaction open across a call to other code, and never panic on a
// corrupt value: one that does not decode is an error naming its bucket and key. It never starts
// afresh over a file it cannot read whole (empty, cut short, not a store): Open refuses it.
package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Options tune a Store.
type Options struct {
	// MaxEvents is how many events are kept, the oldest deleted first: the config's
	// storage.maxEvents, defaulted there (config.DefaultMaxEvents). It must be positive.
	MaxEvents   int
	LockTimeout time.Duration // wait for the file lock (0 → 1s)
}

const (
	// DefaultLockTimeout is the wait for the file lock when Options leave it zero.
	DefaultLockTimeout = time.Second
	// historyKept is how many history entries each service keeps.
	historyKept = 100
	// schemaVersion is written into the meta bucket of a new file and checked on every open.
	schemaVersion = "1"
)

// Bucket names. Keys of states and specs are service names; events are keyed by their 8-byte
// big-endian sequence number, so a cursor walks them in order; history holds one nested bucket
// per service, keyed the same way by revision.
var (
	statesBucket  = []byte("states")
	eventsBucket  = []byte("events")
	specsBucket   = []byte("specs")
	historyBucket = []byte("history")
	metaBucket    = []byte("meta")
	schemaKey     = []byte("schema")
	// evidenceBucket holds, per service, the analysis's tests of the rollout in flight (opaque to
	// the store; see PutEvidence). A file written before it existed gains it on open: an older
	// aviary ignores it, so the schema version stays.
	evidenceBucket = []byte("evidence")
)

// Store is an open store file. It is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	path      string
	maxEvents int
}

// initialize creates the buckets of a new file and checks the schema of an old one.
func (s *Store) initialize(tx *bolt.Tx) error {
	for _, name := range [][]byte{statesBucket, eventsBucket, specsBucket, historyBucket, metaBucket, flagsBucket, flagStatesBucket, evidenceBucket} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s in store %s: %w", name, s.path, err)
		}
	}
	meta := tx.Bucket(metaBucket)
	switch v := meta.Get(schemaKey); {
	case v == nil:
		if err := meta.Put(schemaKey, []byte(schemaVersion)); err != nil {
			return fmt.Errorf("write schema version to store %s: %w", s.path, err)
		}
	case string(v) != schemaVersion:
		return fmt.Errorf("store %s has schema version %q, and this aviary reads only version %q; run the aviary that wrote it, or move the file away to start afresh",
			s.path, v, schemaVersion)
	}
	return nil
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// seqKey encodes a sequence number so that byte order is numeric order.
func seqKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, n)
}

// seqOf decodes a key written by seqKey; a key of another length reads as 0.
func seqOf(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// put marshals v into bucket b under key.
func (s *Store) put(b *bolt.Bucket, where string, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s in store %s: %w", where, s.path, err)
	}
	if err := b.Put(key, data); err != nil {
		return fmt.Errorf("write %s to store %s: %w", where, s.path, err)
	}
	return nil
}

// decode unmarshals a stored value; where names its bucket and key (events/42, states/web).
func (s *Store) decode(where string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s in store %s: %w", where, s.path, err)
	}
	return nil
}
