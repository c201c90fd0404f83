package raft

import (
	"fmt"
	"io"
)

// LogStorage is the storage a Node writes to: Storage (which the core
// reads) plus the writes. Package wal implements it on disk; MemoryStorage
// implements it in memory.
//
// A Node calls Save from one goroutine and CreateSnapshot and Compact from
// another, while its RawNode reads through Storage from a third:
// implementations must be safe for concurrent use. Every call may block on
// I/O.
type LogStorage interface {
	Storage

	// Save makes snap (if not empty), then ents (replacing any stored
	// entries at the same or higher indexes), then hs (if not empty)
	// durable, and returns only once they are: one fsync for the lot. If
	// the process crashes during Save, the storage must come back with a
	// prefix of the writes in that order. An error is final for the Node:
	// it stops and returns the error from every call.
	Save(hs HardState, ents []Entry, snap Snapshot) error

	// CreateSnapshot records the state machine's image data as the
	// snapshot at index i, an applied index, with the membership cs in
	// force there. It returns ErrSnapOutOfDate if a snapshot at i or later
	// is held, and ErrCompacted if the log was compacted beyond i; the Node
	// ignores both.
	CreateSnapshot(i uint64, cs *ConfState, data []byte) (Snapshot, error)

	// Compact discards the entries up to and including i, which is covered
	// by a snapshot. It returns ErrCompacted if they are already gone,
	// which the Node ignores.
	Compact(i uint64) error
}

var _ LogStorage = (*MemoryStorage)(nil)

// StateMachine is the application state a Node replicates. The Node calls
// its methods from one goroutine only (the apply goroutine), one at a
// time, so an implementation needs a lock only to serve reads from other
// goroutines concurrently.
//
// A panic in any method is not recovered: it crashes the process, which
// then restarts from its storage. Returning an error from Restore, or from
// Snapshot and its reader, stops the Node.
type StateMachine interface {
	// Apply applies committed entries, in log order, and returns one result
	// per entry (a shorter slice stands for trailing nil results); the
	// result of the entry a Node.Propose call proposed is what that call
	// returns. Entries are EntryNormal with non-empty Data: configuration
	// changes and a leader's empty entries are handled by the Node. Apply
	// must be deterministic: every node applies the same entries. It must
	// not keep entries' Data beyond the call unless it copies it.
	Apply(entries []Entry) []any

	// Snapshot returns a reader of the state as of the last Apply or
	// Restore. The state must not change under the reader: the Node reads
	// it from another goroutine while it calls Apply again. The Node
	// closes the reader.
	Snapshot() (io.ReadCloser, error)

	// Restore replaces the whole state with the image r reads, written
	// earlier by a Snapshot reader (of this node or another one). An empty
	// image (the bootstrap snapshot carries none) stands for the empty
	// state.
	Restore(r io.Reader) error
}

// NotLeaderError is returned by Node calls that only the leader can serve
// when this node is not the leader. errors.Is(err, ErrNotLeader) holds. The
// call certainly had no effect; retry at Leader (None if no leader is
// known).
type NotLeaderError struct {
	Leader uint64
}

// Error describes the error and the leader hint.
func (e *NotLeaderError) Error() string {
	if e.Leader == None {
		return ErrNotLeader.Error() + " (no leader known)"
	}
	return fmt.Sprintf("%s (leader is %d)", ErrNotLeader.Error(), e.Leader)
}

// Unwrap returns ErrNotLeader.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
