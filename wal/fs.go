package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// FS is the file system seam: the Log does all of its I/O through it, so
// that tests can substitute a file system that loses unsynced data on a
// simulated crash and fails on request. Names are full paths.
//
// A crash may lose any write not followed by File.Sync of that file, and any
// creation, rename or removal not followed by SyncDir of its directory.
type FS interface {
	// Create creates the file name (truncating it if it exists) for
	// reading and writing.
	Create(name string) (File, error)
	// OpenRW opens the existing file name for writing.
	OpenRW(name string) (File, error)
	// ReadFile returns the whole content of name.
	ReadFile(name string) ([]byte, error)
	// ReadDir returns the names (not paths) of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	// Rename renames oldName to newName, replacing newName if it exists.
	Rename(oldName, newName string) error
	// Remove removes the file name.
	Remove(name string) error
	// MkdirAll creates dir and its parents if needed.
	MkdirAll(dir string) error
	// SyncDir makes the creations, renames and removals in dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on name (creating it if needed) that
	// lasts until the returned Closer is closed or the process exits. It
	// returns an error wrapping ErrLocked if the lock is held.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS. It is used by one goroutine at a time.
type File interface {
	// WriteAt writes p at offset off, extending the file if needed.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes the file's content durable (fdatasync).
	Sync() error
	// Allocate reserves size bytes for the file, zero-filled, extending
	// its size to at least size. It does not need to be synced separately
	// from the rest of the file. If the space cannot be reserved but the
	// file was extended (sparsely) to size, it returns an error wrapping
	// ErrNotPreallocated, on which the Log goes on.
	Allocate(size int64) error
	// Linked reports whether the file still has a name in the file system
	// (false once it was removed, with its directory or alone, while
	// open). It is called after every sync, so it must be cheap.
	Linked() (bool, error)
	// Close closes the file.
	Close() error
}

// OSFS is the FS of the operating system.
type OSFS struct{}

var _ FS = OSFS{}

// Create implements FS.
func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// OpenRW implements FS.
func (OSFS) OpenRW(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(des))
	for i, de := range des {
		names[i] = de.Name()
	}
	sort.Strings(names)
	return names, nil
}

// Rename implements FS.
func (OSFS) Rename(oldName, newName string) error { return os.Rename(oldName, newName) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock implements FS with flock(2) where available.
func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

type osFile struct{ f *os.File }

func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Sync() error                              { return datasync(o.f) }
func (o osFile) Close() error                             { return o.f.Close() }

func (o osFile) Linked() (bool, error) { return linked(o.f) }

func (o osFile) Allocate(size int64) error {
	aerr := allocate(o.f, size)
	if aerr == nil {
		return nil
	}
	// Fall back to a sparse extension: the size is what recovery checks.
	fi, err := o.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < size {
		if err := o.f.Truncate(size); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %s: %v", ErrNotPreallocated, o.f.Name(), aerr)
}
