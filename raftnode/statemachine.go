package raftnode

import (
	"io"

	"github.com/keelraft/raft"
)

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
	Apply(entries []raft.Entry) []any

	// Snapshot returns a reader of the state as of the last Apply or
	// Restore. The state must not change under the reader: the Node reads
	// it from another goroutine while it calls Apply again. The Node
	// closes the reader. With a storage that streams snapshots (see the
	// package documentation, section Snapshots), the image goes to the
	// storage as it is read, so a reader that produces the image as it
	// goes keeps memory flat whatever the state's size.
	Snapshot() (io.ReadCloser, error)

	// Restore replaces the whole state with the image r reads, written
	// earlier by a Snapshot reader (of this node or another one). An empty
	// image (the bootstrap snapshot carries none) stands for the empty
	// state. r streams the image from the storage when it can: Restore
	// should consume it as it reads rather than read it whole. If the
	// image turns out damaged at its end, r returns an error instead of
	// io.EOF and the Node stops.
	Restore(r io.Reader) error
}
