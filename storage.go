package raft

import (
	"fmt"
	"sync"
	"sync/atomic"
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

// memChunkShift sets how many entries one chunk of a MemoryStorage's log
// holds: 1 << memChunkShift, 48 KiB of Entry values.
const memChunkShift = 10

// MemoryStorage is a Storage held in memory, for tests and for hosts that
// keep their own durable copy. It is safe for concurrent use. The zero value
// is an empty MemoryStorage, like the one NewMemoryStorage returns.
//
// The log is held in chunks of a fixed number of entries (1024), not in one
// slice, so that appending to a long log never copies it and compacting
// frees whole chunks: the cost of an append or a compaction does not grow
// with the length of the log. Entries copies the entries it returns only
// when they span two chunks; otherwise it returns a part of a chunk.
//
// The writes and Entries take a mutex. LastIndex, FirstIndex, and Term of
// the last index and of FirstIndex()-1, which the node asks for several
// times per message, do not: they read copies of those four numbers that
// every write publishes, under the mutex, before it returns (see publish).
// A read therefore sees every write that returned before it started, and
// possibly one that is under way.
type MemoryStorage struct {
	mu        sync.Mutex
	hardState HardState
	snapshot  Snapshot

	// offset is the index of the last entry compacted away (the snapshot's
	// index after ApplySnapshot, 0 in a new storage) and offsetTerm its
	// term; last is the index of the last entry, offset when the log is
	// empty. The log holds the entries offset+1 to last.
	offset, offsetTerm, last uint64
	// chunks hold the entries: the entry at index i is
	// chunks[k][j] with k, j = (i-base) >> shift, (i-base) % (1 << shift).
	// Every chunk but the last is full; the last holds up to last. When
	// chunks is not empty, base <= offset+1 < base + 1<<shift: the first
	// chunk holds the first entry, after the zeroed places of entries
	// compacted away (see Compact).
	chunks [][]Entry
	base   uint64
	// chunkShift, if not 0, replaces memChunkShift, for tests that need
	// small chunks.
	chunkShift uint8

	// seq and the four atomics below are the copies that LastIndex,
	// FirstIndex and Term read without the mutex: see publish.
	seq                                            atomic.Uint64
	pubOffset, pubOffsetTerm, pubLast, pubLastTerm atomic.Uint64
}

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{}
}

// shift returns log2 of the number of entries in a chunk.
func (ms *MemoryStorage) shift() uint {
	if ms.chunkShift != 0 {
		return uint(ms.chunkShift)
	}
	return memChunkShift
}

// at returns the entry at index i, which must be in [offset+1, last].
// ms.mu must be held.
func (ms *MemoryStorage) at(i uint64) *Entry {
	p, s := i-ms.base, ms.shift()
	return &ms.chunks[p>>s][p&(1<<s-1)]
}

// termAt returns the term of the entry at index i, which must be in
// [offset, last]. ms.mu must be held.
func (ms *MemoryStorage) termAt(i uint64) uint64 {
	if i == ms.offset {
		return ms.offsetTerm
	}
	return ms.at(i).Term
}

// publish copies offset, offsetTerm, last and the last entry's term to the
// atomics that readers without the mutex use. Every write calls it, with
// ms.mu held, after changing the log. seq is odd while it copies, so that
// a reader of several of them (Term) can tell that it read a consistent
// set: seq even and unchanged around its reads. A single number (LastIndex,
// FirstIndex) needs no such check.
func (ms *MemoryStorage) publish() {
	ms.seq.Add(1)
	ms.pubOffset.Store(ms.offset)
	ms.pubOffsetTerm.Store(ms.offsetTerm)
	ms.pubLast.Store(ms.last)
	ms.pubLastTerm.Store(ms.termAt(ms.last))
	ms.seq.Add(1)
}

// InitialState implements Storage.
func (ms *MemoryStorage) InitialState() (HardState, ConfState, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.hardState, ms.snapshot.Metadata.ConfState, nil
}

// SetHardState saves the hard state.
func (ms *MemoryStorage) SetHardState(hs HardState) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.hardState = hs
	return nil
}

// HardState returns the saved hard state.
func (ms *MemoryStorage) HardState() HardState {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.hardState
}

// Entries implements Storage. The entries are returned without copying
// unless they span two chunks.
func (ms *MemoryStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if lo <= ms.offset {
		return nil, ErrCompacted
	}
	if hi > ms.last+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) requested, last index is %d", ErrUnavailable, lo, hi, ms.last)
	}
	if lo >= hi {
		return nil, nil
	}
	s := ms.shift()
	p, q := lo-ms.base, hi-1-ms.base
	if p>>s == q>>s {
		chunk := ms.chunks[p>>s]
		ents := limitSize(chunk[p&(1<<s-1):q&(1<<s-1)+1], maxSize)
		// Cap the slice so that a caller appending to it cannot write
		// into the chunk.
		return ents[:len(ents):len(ents)], nil
	}
	// Find where maxSize cuts the range before copying it: a limited
	// read of a long range copies only what it returns.
	n := hi - lo
	if maxSize != noLimit {
		size := ms.at(lo).size()
		for n = 1; lo+n < hi; n++ {
			size += ms.at(lo + n).size()
			if size > maxSize {
				break
			}
		}
	}
	if (p+n-1)>>s == p>>s {
		ents := ms.chunks[p>>s][p&(1<<s-1) : p&(1<<s-1)+n]
		return ents[:n:n], nil
	}
	ents := make([]Entry, 0, n)
	for k := p >> s; uint64(len(ents)) < n; k++ {
		chunk := ms.chunks[k]
		if len(ents) == 0 {
			chunk = chunk[p&(1<<s-1):]
		}
		ents = append(ents, chunk[:min(uint64(len(chunk)), n-uint64(len(ents)))]...)
	}
	return ents, nil
}

// Term implements Storage. The terms of the last index and of
// FirstIndex()-1 are read without the mutex.
func (ms *MemoryStorage) Term(i uint64) (uint64, error) {
	if s := ms.seq.Load(); s&1 == 0 {
		offset, offsetTerm := ms.pubOffset.Load(), ms.pubOffsetTerm.Load()
		last, lastTerm := ms.pubLast.Load(), ms.pubLastTerm.Load()
		if ms.seq.Load() == s {
			switch {
			case i == last:
				return lastTerm, nil
			case i == offset:
				return offsetTerm, nil
			case i < offset:
				return 0, ErrCompacted
			case i > last:
				return 0, ErrUnavailable
			}
		}
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if i < ms.offset {
		return 0, ErrCompacted
	}
	if i > ms.last {
		return 0, ErrUnavailable
	}
	return ms.termAt(i), nil
}

// LastIndex implements Storage, without taking the mutex.
func (ms *MemoryStorage) LastIndex() (uint64, error) {
	return ms.pubLast.Load(), nil
}

// FirstIndex implements Storage, without taking the mutex.
func (ms *MemoryStorage) FirstIndex() (uint64, error) {
	return ms.pubOffset.Load() + 1, nil
}

// Snapshot implements Storage.
func (ms *MemoryStorage) Snapshot() (Snapshot, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.snapshot, nil
}

// ApplySnapshot replaces the storage's contents with the snapshot: the log
// restarts after the snapshot's index. It returns ErrSnapOutOfDate if the
// snapshot is older than the one held.
func (ms *MemoryStorage) ApplySnapshot(snap Snapshot) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if snap.Metadata.Index <= ms.snapshot.Metadata.Index {
		return ErrSnapOutOfDate
	}
	ms.snapshot = snap
	ms.offset, ms.offsetTerm, ms.last = snap.Metadata.Index, snap.Metadata.Term, snap.Metadata.Index
	ms.dropChunks()
	if ms.hardState.Term < snap.Metadata.Term {
		ms.hardState.Term = snap.Metadata.Term
	}
	if ms.hardState.Commit < snap.Metadata.Index {
		ms.hardState.Commit = snap.Metadata.Index
	}
	ms.publish()
	return nil
}

// dropChunks empties the log's chunks, which must hold nothing after
// offset: the next entry appended is offset+1.
func (ms *MemoryStorage) dropChunks() {
	ms.chunks, ms.base = nil, ms.offset+1
}

// CreateSnapshot records a snapshot of the application state at index i,
// which must be an index the host has applied and at most LastIndex(). The
// log is not compacted; call Compact for that. It returns ErrSnapOutOfDate
// if i is not newer than the held snapshot and ErrCompacted if the log was
// compacted beyond i.
func (ms *MemoryStorage) CreateSnapshot(i uint64, cs *ConfState, data []byte) (Snapshot, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if i <= ms.snapshot.Metadata.Index {
		return Snapshot{}, ErrSnapOutOfDate
	}
	if i < ms.offset {
		return Snapshot{}, fmt.Errorf("%w: snapshot index %d precedes compacted index %d", ErrCompacted, i, ms.offset)
	}
	if i > ms.last {
		return Snapshot{}, fmt.Errorf("%w: snapshot index %d is beyond last index %d", ErrUnavailable, i, ms.last)
	}
	ms.snapshot.Metadata.Index = i
	ms.snapshot.Metadata.Term = ms.termAt(i)
	if cs != nil {
		ms.snapshot.Metadata.ConfState = *cs
	}
	ms.snapshot.Data = data
	return ms.snapshot, nil
}

// Compact discards the entries up to and including compactIndex, which must
// not exceed LastIndex(). It returns ErrCompacted if they are already gone.
//
// Chunks that hold only discarded entries are dropped. The chunk that holds
// the new first entry is copied without the discarded entries before it,
// so that their data can be collected (the chunk itself may be in a slice
// Entries returned, which must not change): a compaction copies at most one
// chunk, however long the log.
func (ms *MemoryStorage) Compact(compactIndex uint64) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if compactIndex <= ms.offset {
		return ErrCompacted
	}
	if compactIndex > ms.last {
		return fmt.Errorf("%w: compact index %d is beyond last index %d", ErrUnavailable, compactIndex, ms.last)
	}
	ms.offsetTerm = ms.termAt(compactIndex)
	ms.offset = compactIndex
	if compactIndex == ms.last {
		ms.dropChunks()
	} else {
		s := ms.shift()
		p := compactIndex + 1 - ms.base // the first kept entry's place
		if k := p >> s; k > 0 {
			n := copy(ms.chunks, ms.chunks[k:])
			clear(ms.chunks[n:])
			ms.chunks = ms.chunks[:n]
			ms.base += k << s
			p -= k << s
		}
		if p > 0 {
			old := ms.chunks[0]
			chunk := make([]Entry, len(old), cap(old))
			copy(chunk[p:], old[p:])
			ms.chunks[0] = chunk
		}
	}
	ms.publish()
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
//
// Appending copies the entries (not their data) into the log's chunks; it
// never copies entries already held, except those before the first
// replaced one in its chunk (see truncate).
func (ms *MemoryStorage) Append(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for i := 1; i < len(entries); i++ {
		if entries[i].Index != entries[i-1].Index+1 {
			return fmt.Errorf("%w: entry index %d follows %d", ErrLogGap, entries[i].Index, entries[i-1].Index)
		}
	}
	first := ms.offset + 1
	if entries[len(entries)-1].Index < first {
		return nil // all compacted already
	}
	if first > entries[0].Index {
		entries = entries[first-entries[0].Index:]
	}
	switch next := entries[0].Index; {
	case next > ms.last+1:
		return fmt.Errorf("%w: first appended index %d, last index %d", ErrLogGap, next, ms.last)
	case next <= ms.last:
		ms.truncate(next - 1)
	}
	ms.extend(entries)
	ms.publish()
	return nil
}

// truncate shortens the log to end at index last, at least offset. The
// chunk that holds the entry after last is replaced by a copy of its part
// before it, so that the entries appended next never overwrite a slice that
// Entries returned. ms.mu must be held.
func (ms *MemoryStorage) truncate(last uint64) {
	ms.last = last
	if last == ms.offset {
		ms.dropChunks()
		return
	}
	s := ms.shift()
	p := last + 1 - ms.base // the first dropped entry's place
	k, j := p>>s, p&(1<<s-1)
	if j == 0 {
		clear(ms.chunks[k:])
		ms.chunks = ms.chunks[:k]
		return
	}
	clear(ms.chunks[k+1:])
	ms.chunks = ms.chunks[:k+1]
	old := ms.chunks[k]
	chunk := make([]Entry, j, cap(old))
	copy(chunk, old)
	ms.chunks[k] = chunk
}

// extend appends entries, the first of which is at index last+1, to the
// chunks. The first chunk of a log starts small and doubles up to a full
// chunk, so that a short log takes little memory; later chunks are
// allocated full. ms.mu must be held.
func (ms *MemoryStorage) extend(entries []Entry) {
	size := uint64(1) << ms.shift()
	if len(ms.chunks) == 0 {
		ms.base = ms.last + 1
	}
	for len(entries) > 0 {
		n := len(ms.chunks)
		if n == 0 || uint64(len(ms.chunks[n-1])) == size {
			c := size
			if n == 0 {
				c = min(size, max(16, uint64(len(entries))))
			}
			ms.chunks = append(ms.chunks, make([]Entry, 0, c))
			n++
		}
		chunk := ms.chunks[n-1]
		room := int(size) - len(chunk)
		k := min(room, len(entries))
		if cap(chunk)-len(chunk) < k {
			// Only the first chunk grows: later ones start full.
			c := min(int(size), max(2*cap(chunk), len(chunk)+k))
			grown := make([]Entry, len(chunk), c)
			copy(grown, chunk)
			chunk = grown
		}
		ms.chunks[n-1] = append(chunk, entries[:k]...)
		ms.last += uint64(k)
		entries = entries[k:]
	}
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
