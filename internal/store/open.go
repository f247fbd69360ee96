package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"aviary.dev/aviary/internal/config"
)

// Open opens the store at path, creating the file (mode 0600) and its directory if missing.
// It waits up to o.LockTimeout for the file lock that another aviary process may hold.
//
// It refuses, with an error that says what to do, a path that is a directory, a file it may not
// write, and a file that is not a whole store: one that is empty, cut short, or not a bbolt file.
// A damaged store is never started afresh on its own: that would send every service back to the
// version of its config file, as if its rollouts had never happened.
func Open(path string, o Options) (*Store, error) {
	if o.MaxEvents <= 0 {
		return nil, fmt.Errorf("open store %s: it must keep a positive number of events, not %d (set storage.maxEvents, or leave it out for %d)",
			path, o.MaxEvents, config.DefaultMaxEvents)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	// The directory holds rollout state and API-applied specs; only aviary's user needs it.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := prepare(path, o.LockTimeout); err != nil {
		return nil, err
	}
	bo := *bolt.DefaultOptions
	bo.Timeout = o.LockTimeout
	db, err := bolt.Open(path, 0o600, &bo)
	if err != nil {
		return nil, openError(path, err)
	}
	s := &Store{db: db, path: path, maxEvents: o.MaxEvents}
	if err := db.Update(s.initialize); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// prepare makes sure that path holds a whole store file, writing a new one when there is none.
func prepare(path string, lockTimeout time.Duration) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := create(path); err != nil {
			return err
		}
		fi, err = os.Stat(path)
	}
	switch {
	case err != nil:
		return openError(path, err)
	case fi.IsDir():
		return fmt.Errorf("store %s is a directory; aviary keeps its state in one file: set storage.path to a file, such as %s",
			path, filepath.Join(path, "aviary.db"))
	case fi.Size() == 0:
		// create writes a new store whole, so an empty file is one that was emptied or replaced.
		return fmt.Errorf("store %s is empty (0 bytes): it was emptied or replaced, and its rollouts' state is gone; restore it from a backup, or remove it to start afresh (every service goes back to its config's version)", path)
	}
	return checkWhole(path, lockTimeout)
}

// create writes a new, initialized store beside path and links it into place, so that a crash
// while it is written never leaves a half-made file at path. A store that another process
// linked first is kept.
func create(path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return openError(path, err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, bolt.DefaultOptions)
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	err = db.Update((&Store{path: path}).initialize)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync store directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) { // some systems cannot sync a directory
		return fmt.Errorf("sync store directory %s: %w", dir, err)
	}
	return nil
}

// checkWhole opens the store read-only and refuses it when the file is shorter than its last
// commit made it (a copy cut short, a disk that filled up): bbolt maps the file and would fault
// on the first page past its end, which stops the process with no error to show. A fault while
// the file is read here is turned into an error too.
func checkWhole(path string, lockTimeout time.Duration) (err error) {
	var f *os.File
	bo := *bolt.DefaultOptions
	bo.ReadOnly, bo.Timeout = true, lockTimeout
	bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				f.Close() // releases the file lock of the open that failed half-way
			}
			err = damaged(path, fmt.Errorf("%v", r))
		}
	}()
	db, err := bolt.Open(path, 0o600, &bo)
	switch {
	case err != nil && (inUse(err) || denied(err)):
		return openError(path, err)
	case err != nil: // a regular file that is not empty, and that bbolt cannot read
		return damaged(path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		fi, err := f.Stat()
		if err != nil {
			return openError(path, err)
		}
		if fi.Size() < tx.Size() {
			return damaged(path, fmt.Errorf("the file is cut short: %d bytes, and its last commit wrote %d", fi.Size(), tx.Size()))
		}
		return nil
	})
}

// openError says what to do about an error opening the store file.
func openError(path string, err error) error {
	switch {
	case inUse(err):
		return fmt.Errorf("store %s is in use by another aviary process; stop it, or give this one its own storage.path", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return damaged(path, err)
	case denied(err):
		return fmt.Errorf("open store %s: %w; aviary must read and write this file and its directory: give its user write access, or set storage.path to a writable place", path, err)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// inUse says that another process holds the file lock.
func inUse(err error) bool { return errors.Is(err, berrors.ErrTimeout) }

// denied says that the file or its directory may not be written.
func denied(err error) bool { return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) }

// damaged is the error for a store file that cannot be read as a whole store.
func damaged(path string, err error) error {
	return fmt.Errorf("store %s is damaged or not an aviary store (%w); restore it from a backup, or move it away to start afresh (every service goes back to its config's version)", path, err)
}
