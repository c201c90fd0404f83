package wal

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is returned by Open when the directory holds damage that
	// a crash cannot explain: a bad record followed by valid ones, a
	// missing or truncated segment, a segment whose starting state does
	// not match its predecessor, a snapshot whose checksum fails, or a
	// commit the log no longer holds. The wrapped message names the file
	// and the offset. With Options.Salvage, Open keeps the valid prefix
	// instead (see SalvageReport).
	ErrCorrupt = errors.New("wal: corrupt data")

	// ErrLocked is returned by Open when another Log (in this or another
	// process) holds the directory's lock.
	ErrLocked = errors.New("wal: directory is locked by another process")

	// ErrInvalidEntry is returned by Save and Append for an entry that
	// raft never produces (term 0); nothing is written.
	ErrInvalidEntry = errors.New("wal: invalid entry")

	// ErrClosed is returned by every write method after Close.
	ErrClosed = errors.New("wal: log is closed")

	// ErrNotPreallocated is wrapped by File.Allocate when it could not
	// reserve the space but extended the file sparsely; the Log logs it
	// once and goes on (a full disk then shows up as a failed write).
	ErrNotPreallocated = errors.New("wal: space not preallocated")

	// ErrUnlinked is wrapped by the error that poisons a Log whose active
	// segment was deleted from under it (its directory removed, say): the
	// write that found it is not acknowledged.
	ErrUnlinked = errors.New("wal: segment file was deleted while the log was open")
)

// damageError is damage found by recovery: it wraps ErrCorrupt and names
// the file and the offset, which salvage reports.
type damageError struct {
	file   string
	off    int64
	reason string
}

func (e *damageError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d: %s", ErrCorrupt, e.file, e.off, e.reason)
}

func (e *damageError) Unwrap() error { return ErrCorrupt }

// corruptf returns an error wrapping ErrCorrupt that names file and offset.
func corruptf(file string, off int64, format string, args ...any) error {
	return &damageError{file: file, off: off, reason: fmt.Sprintf(format, args...)}
}
