package raft

import (
	"fmt"
	"sync"
)

// Storage is the read side of a node's durable state: the log entries, the
// hard state and the latest snapshot that the host has persisted. The node
// reads from it; the host writes to it (what the Ready asks to persist) by
// means the interface leaves to the implementation.
//
// Implementations must be safe for a node and the host to use from different
// goroutines if the host writes while the node reads. A call may block on
// I/O. A slice returned by Entries belongs to the caller only for reading:
// the node never modifies it, and the implementation must not modify it
// after returning it.
//
// If the process crashes between two writes, the storage must come back with
// some prefix of what was written: entries are durable no later than the hard
// state that commits them.
type Storage interface {
	// InitialState returns the durable HardState and the ConfState of the
	// latest snapshot (or of the bootstrap configuration).
	InitialState() (HardState, ConfState, error)

	// Entries returns the entries in [lo, hi), stopping early once their
	// total size would exceed maxSize; at least one entry is returned when
	// any is available. It returns ErrCompacted if lo <= the snapshot index
	// and ErrUnavailable if hi - 1 > LastIndex().
	Entries(lo, hi, maxSize uint64) ([]Entry, error)

	// Term returns the term of the entry at index i, which must lie in
	// [FirstIndex()-1, LastIndex()]; the term of FirstIndex()-1 is the
	// snapshot's term. It returns ErrCompacted below that range and
	// ErrUnavailable above it.
	Term(i uint64) (uint64, error)

	// LastIndex returns the index of the last entry (the snapshot index when
	// the log is empty).
	LastIndex() (uint64, error)

	// FirstIndex returns the index of the first entry that may be available
	// through Entries: the snapshot index plus one, or lower if the storage
	// keeps entries below its snapshot (to send lagging followers entries
	// rather than a snapshot). The node treats entries at or below the
	// snapshot's index as applied: the snapshot's state includes them.
	FirstIndex() (uint64, error)

	// Snapshot returns the most recent snapshot. It may return
	// ErrSnapshotTemporarilyUnavailable while a snapshot is being prepared;
	// the node then tries again later. NewRawNode reads it once for its
	// metadata, and fails if it returns an error then.
	Snapshot() (Snapshot, error)
}

// MemoryStorage is a Storage held in memory, for tests and for hosts that
// keep their own durable copy. It is safe for concurrent use. The zero value
// is an empty MemoryStorage, like the one NewMemoryStorage returns.
type MemoryStorage struct {
	mu        sync.Mutex
	hardState HardState
	snapshot  Snapshot
	// ents[0] is a placeholder whose Index and Term are the snapshot's;
	// ents[i] has index snapshot.Metadata.Index + i.
	ents []Entry
}

// lock takes the mutex and makes the zero value usable: an empty log whose
// placeholder entry is at index 0.
func (ms *MemoryStorage) lock() {
	ms.mu.Lock()
	if ms.ents == nil {
		ms.ents = make([]Entry, 1)
	}
}

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{ents: make([]Entry, 1)}
}

// InitialState implements Storage.
func (ms *MemoryStorage) InitialState() (HardState, ConfState, error) {
	ms.lock()
	defer ms.mu.Unlock()
	return ms.hardState, ms.snapshot.Metadata.ConfState, nil
}

// SetHardState saves the hard state.
func (ms *MemoryStorage) SetHardState(hs HardState) error {
	ms.lock()
	defer ms.mu.Unlock()
	ms.hardState = hs
	return nil
}

// HardState returns the saved hard state.
func (ms *MemoryStorage) HardState() HardState {
	ms.lock()
	defer ms.mu.Unlock()
	return ms.hardState
}

// Entries implements Storage.
func (ms *MemoryStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	ms.lock()
	defer ms.mu.Unlock()
	offset := ms.ents[0].Index
	if lo <= offset {
		return nil, ErrCompacted
	}
	if hi > ms.lastIndex()+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) requested, last index is %d", ErrUnavailable, lo, hi, ms.lastIndex())
	}
	if lo >= hi {
		return nil, nil
	}
	ents := limitSize(ms.ents[lo-offset:hi-offset], maxSize)
	// Cap the slice so that a caller appending to it cannot write into
	// the storage's backing array.
	return ents[:len(ents):len(ents)], nil
}

// Term implements Storage.
func (ms *MemoryStorage) Term(i uint64) (uint64, error) {
	ms.lock()
	defer ms.mu.Unlock()
	offset := ms.ents[0].Index
	if i < offset {
		return 0, ErrCompacted
	}
	if int(i-offset) >= len(ms.ents) {
		return 0, ErrUnavailable
	}
	return ms.ents[i-offset].Term, nil
}

// LastIndex implements Storage.
func (ms *MemoryStorage) LastIndex() (uint64, error) {
	ms.lock()
	defer ms.mu.Unlock()
	return ms.lastIndex(), nil
}

func (ms *MemoryStorage) lastIndex() uint64 {
	return ms.ents[0].Index + uint64(len(ms.ents)) - 1
}

// FirstIndex implements Storage.
func (ms *MemoryStorage) FirstIndex() (uint64, error) {
	ms.lock()
	defer ms.mu.Unlock()
	return ms.ents[0].Index + 1, nil
}

// Snapshot implements Storage.
func (ms *MemoryStorage) Snapshot() (Snapshot, error) {
	ms.lock()
	defer ms.mu.Unlock()
	return ms.snapshot, nil
}

// ApplySnapshot replaces the storage's contents with the snapshot: the log
// restarts after the snapshot's index. It returns ErrSnapOutOfDate if the
// snapshot is older than the one held.
func (ms *MemoryStorage) ApplySnapshot(snap Snapshot) error {
	ms.lock()
	defer ms.mu.Unlock()
	if snap.Metadata.Index <= ms.snapshot.Metadata.Index {
		return ErrSnapOutOfDate
	}
	ms.snapshot = snap
	ms.ents = []Entry{{Term: snap.Metadata.Term, Index: snap.Metadata.Index}}
	if ms.hardState.Term < snap.Metadata.Term {
		ms.hardState.Term = snap.Metadata.Term
	}
	if ms.hardState.Commit < snap.Metadata.Index {
		ms.hardState.Commit = snap.Metadata.Index
	}
	return nil
}

// CreateSnapshot records a snapshot of the application state at index i,
// which must be an index the host has applied and at most LastIndex(). The
// log is not compacted; call Compact for that. It returns ErrSnapOutOfDate
// if i is not newer than the held snapshot and ErrCompacted if the log was
// compacted beyond i.
func (ms *MemoryStorage) CreateSnapshot(i uint64, cs *ConfState, data []byte) (Snapshot, error) {
	ms.lock()
	defer ms.mu.Unlock()
	if i <= ms.snapshot.Metadata.Index {
		return Snapshot{}, ErrSnapOutOfDate
	}
	offset := ms.ents[0].Index
	if i < offset {
		return Snapshot{}, fmt.Errorf("%w: snapshot index %d precedes compacted index %d", ErrCompacted, i, offset)
	}
	if i > ms.lastIndex() {
		return Snapshot{}, fmt.Errorf("%w: snapshot index %d is beyond last index %d", ErrUnavailable, i, ms.lastIndex())
	}
	ms.snapshot.Metadata.Index = i
	ms.snapshot.Metadata.Term = ms.ents[i-offset].Term
	if cs != nil {
		ms.snapshot.Metadata.ConfState = *cs
	}
	ms.snapshot.Data = data
	return ms.snapshot, nil
}

// Compact discards the entries up to and including compactIndex, which must
// not exceed LastIndex(). It returns ErrCompacted if they are already gone.
func (ms *MemoryStorage) Compact(compactIndex uint64) error {
	ms.lock()
	defer ms.mu.Unlock()
	offset := ms.ents[0].Index
	if compactIndex <= offset {
		return ErrCompacted
	}
	if compactIndex > ms.lastIndex() {
		return fmt.Errorf("%w: compact index %d is beyond last index %d", ErrUnavailable, compactIndex, ms.lastIndex())
	}
	i := compactIndex - offset
	ents := make([]Entry, 1, uint64(len(ms.ents))-i)
	ents[0].Index = ms.ents[i].Index
	ents[0].Term = ms.ents[i].Term
	ms.ents = append(ents, ms.ents[i+1:]...)
	return nil
}

// Save persists what a Ready asks for, in the order a crash must respect:
// the snapshot (if not empty) first, then the entries (replacing any stored
// at the same or higher indexes), then the hard state (if not empty). It
// implements LogStorage; being in memory, it is "durable" on return.
func (ms *MemoryStorage) Save(hs HardState, ents []Entry, snap Snapshot) error {
	if !snap.IsEmpty() {
		if err := ms.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	if err := ms.Append(ents); err != nil {
		return err
	}
	if !hs.IsEmpty() {
		return ms.SetHardState(hs)
	}
	return nil
}

// Append adds entries to the log. Entries that overlap the log replace the
// overlapping part and everything after it; entries already compacted away
// are skipped. It returns ErrLogGap if the indexes of entries are not
// consecutive or the first entry would leave a gap after the last index.
func (ms *MemoryStorage) Append(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ms.lock()
	defer ms.mu.Unlock()
	for i := 1; i < len(entries); i++ {
		if entries[i].Index != entries[i-1].Index+1 {
			return fmt.Errorf("%w: entry index %d follows %d", ErrLogGap, entries[i].Index, entries[i-1].Index)
		}
	}
	first := ms.ents[0].Index + 1
	last := entries[len(entries)-1].Index
	if last < first {
		return nil // all compacted already
	}
	if first > entries[0].Index {
		entries = entries[first-entries[0].Index:]
	}
	offset := entries[0].Index - ms.ents[0].Index
	switch {
	case uint64(len(ms.ents)) > offset:
		// Copy the kept prefix so that slices handed out by Entries are
		// never overwritten.
		kept := make([]Entry, offset, offset+uint64(len(entries)))
		copy(kept, ms.ents[:offset])
		ms.ents = append(kept, entries...)
	case uint64(len(ms.ents)) == offset:
		ms.ents = append(ms.ents, entries...)
	default:
		return fmt.Errorf("%w: first appended index %d, last index %d", ErrLogGap, entries[0].Index, ms.lastIndex())
	}
	return nil
}

// limitSize returns the longest prefix of ents whose total size does not
// exceed maxSize, but at least one entry.
func limitSize(ents []Entry, maxSize uint64) []Entry {
	if len(ents) == 0 {
		return ents
	}
	size := ents[0].size()
	for i := 1; i < len(ents); i++ {
		size += ents[i].size()
		if size > maxSize {
			return ents[:i]
		}
	}
	return ents
}

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
