package raft

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// raftLog is a node's log: the durable part read through Storage, followed
// by the unstable part not yet confirmed durable.
type raftLog struct {
	storage  Storage
	unstable unstable

	// committed is the highest index known to be committed.
	// Invariant: applied <= applying <= committed.
	committed uint64
	// applying is the highest index handed to the host for applying.
	applying uint64
	// applied is the highest index the host confirmed applied.
	applied uint64

	// maxApplyingSize bounds the bytes of committed entries handed out in
	// one Ready.
	maxApplyingSize uint64

	logger *zap.Logger
}

// newLog builds the log from what storage holds.
func newLog(storage Storage, logger *zap.Logger, maxApplyingSize uint64) (*raftLog, error) {
	firstIndex, err := storage.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("raft: reading first index from storage: %w", err)
	}
	lastIndex, err := storage.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("raft: reading last index from storage: %w", err)
	}
	if firstIndex == 0 || lastIndex+1 < firstIndex {
		return nil, fmt.Errorf("raft: storage reports first index %d and last index %d", firstIndex, lastIndex)
	}
	if err := checkLogBoundaries(storage, firstIndex, lastIndex); err != nil {
		return nil, err
	}
	// Storages may keep entries below their snapshot (to serve lagging
	// followers without one): the snapshot's state already includes them,
	// so the log starts out committed and applied up to the snapshot.
	snapIndex, err := storageSnapshotIndex(storage)
	if err != nil {
		return nil, err
	}
	start := firstIndex - 1
	if snapIndex > start && snapIndex <= lastIndex && !mutated(mutationReapplySnapshotConf) {
		start = snapIndex
	}
	l := &raftLog{
		storage:         storage,
		maxApplyingSize: maxApplyingSize,
		logger:          logger,
		committed:       start,
		applying:        start,
		applied:         start,
	}
	l.unstable.offset = lastIndex + 1
	l.unstable.offsetInProgress = lastIndex + 1
	return l, nil
}

// storageSnapshotIndex returns the index of the snapshot storage holds (0
// if none).
func storageSnapshotIndex(storage Storage) (uint64, error) {
	snap, err := storage.Snapshot()
	if err != nil {
		return 0, fmt.Errorf("raft: reading the snapshot from storage: %w", err)
	}
	return snap.Metadata.Index, nil
}

// checkLogBoundaries reads the terms at the edges of the stored log: the
// snapshot's, the first entry's and the last entry's. A storage with a gap
// between its snapshot and its first entry, or with a missing tail, fails
// here with a clear error instead of later, in the middle of replication.
func checkLogBoundaries(storage Storage, firstIndex, lastIndex uint64) error {
	indexes := []uint64{firstIndex - 1}
	if lastIndex >= firstIndex {
		indexes = append(indexes, firstIndex, lastIndex)
	}
	var prev uint64
	for _, i := range indexes {
		t, err := storage.Term(i)
		if err != nil {
			return fmt.Errorf("raft: storage is inconsistent: log spans [%d, %d] but the term of index %d cannot be read: %w",
				firstIndex, lastIndex, i, err)
		}
		if t < prev {
			return fmt.Errorf("raft: storage is inconsistent: term %d at index %d is below an earlier term %d", t, i, prev)
		}
		prev = t
	}
	return nil
}

// String summarises the log's positions.
func (l *raftLog) String() string {
	return fmt.Sprintf("committed=%d applied=%d applying=%d unstable.offset=%d len(unstable)=%d",
		l.committed, l.applied, l.applying, l.unstable.offset, len(l.unstable.entries))
}

// errLogConflict is returned by maybeAppend when the entries would replace a
// committed entry; only a faulty or forged message can cause it.
var errLogConflict = errors.New("raft: append conflicts with a committed entry")

// maybeAppend is the follower's half of the consistency check: if the entry
// at index has term logTerm, it appends ents (which follow index), replacing
// any conflicting uncommitted suffix, and returns the last index now known to
// match the leader's log. ok is false if the check failed. An error means the
// message was unacceptable and nothing changed.
func (l *raftLog) maybeAppend(index, logTerm uint64, ents []Entry) (lastNew uint64, ok bool, err error) {
	if !l.matchTerm(index, logTerm) {
		return 0, false, nil
	}
	lastNew = index + uint64(len(ents))
	ci := l.findConflict(ents)
	switch {
	case ci == 0:
		// Everything is already in the log.
	case ci <= l.committed:
		return 0, false, fmt.Errorf("%w: entry %d conflicts with committed index %d", errLogConflict, ci, l.committed)
	default:
		l.append(ents[ci-(index+1):]...)
	}
	return lastNew, true, nil
}

// append adds ents at the end of the log, replacing any entries at or after
// ents[0].Index. It returns the new last index. The caller guarantees that
// ents[0].Index is above the committed index and at most lastIndex()+1.
func (l *raftLog) append(ents ...Entry) uint64 {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	if after := ents[0].Index - 1; after < l.committed {
		panic(fmt.Sprintf("raft: append after index %d is below committed index %d", after, l.committed))
	}
	l.unstable.truncateAndAppend(ents)
	return l.lastIndex()
}

// findConflict returns the index of the first entry of ents that is not in
// the log (a different term at its index, or beyond the last index), or 0 if
// all of ents are already in the log. ents must have consecutive indexes.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= index whose term is <= term
// (or the first index we can no longer tell), together with its term. It is
// the heart of fast backtracking: every entry after the returned index is
// known not to match a log whose entry at index has the given term.
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	for ; index > 0; index-- {
		ourTerm, err := l.term(index)
		if err != nil {
			return index, 0
		}
		if ourTerm <= term {
			return index, ourTerm
		}
	}
	return 0, 0
}

// nextUnstableEntries returns the entries not yet handed to the host.
func (l *raftLog) nextUnstableEntries() []Entry { return l.unstable.nextEntries() }

// hasNextUnstableEntries reports whether entries wait to be handed out.
func (l *raftLog) hasNextUnstableEntries() bool { return len(l.unstable.nextEntries()) > 0 }

// hasNextOrInProgressUnstableEntries reports whether any entry is not durable.
func (l *raftLog) hasNextOrInProgressUnstableEntries() bool { return len(l.unstable.entries) > 0 }

// nextCommittedEnts returns the committed entries ready to be handed to the
// host for applying, above applying. With allowUnstable, entries not yet
// durable are included (the host persists a Ready's entries before it
// applies its committed ones); otherwise only durable entries are.
func (l *raftLog) nextCommittedEnts(allowUnstable bool) []Entry {
	if l.hasNextOrInProgressSnapshot() {
		// The snapshot must be restored before entries after it apply.
		return nil
	}
	lo, hi := l.applying+1, l.maxAppliableIndex(allowUnstable)+1
	if lo >= hi {
		return nil
	}
	ents, err := l.slice(lo, hi, l.maxApplyingSize)
	if err != nil {
		l.storageFailed("reading committed entries", err, zap.Uint64("lo", lo), zap.Uint64("hi", hi))
	}
	return ents
}

// hasNextCommittedEnts reports whether nextCommittedEnts would return entries.
func (l *raftLog) hasNextCommittedEnts(allowUnstable bool) bool {
	return !l.hasNextOrInProgressSnapshot() && l.applying < l.maxAppliableIndex(allowUnstable)
}

// maxAppliableIndex is the highest index that may be handed out for applying.
func (l *raftLog) maxAppliableIndex(allowUnstable bool) uint64 {
	if allowUnstable {
		return l.committed
	}
	return min(l.committed, l.unstable.offset-1)
}

// lastPersistedIndex returns the last index of the current log that the host
// has confirmed durable (0 while a snapshot is pending).
func (l *raftLog) lastPersistedIndex() uint64 {
	if l.unstable.snapshot != nil {
		return 0
	}
	return l.unstable.offset - 1
}

// nextUnstableSnapshot returns the snapshot not yet handed to the host.
func (l *raftLog) nextUnstableSnapshot() *Snapshot { return l.unstable.nextSnapshot() }

// hasNextOrInProgressSnapshot reports whether a snapshot is not yet durable.
func (l *raftLog) hasNextOrInProgressSnapshot() bool { return l.unstable.snapshot != nil }

// snapshot returns the pending snapshot or the storage's.
func (l *raftLog) snapshot() (Snapshot, error) {
	if l.unstable.snapshot != nil {
		return *l.unstable.snapshot, nil
	}
	return l.storage.Snapshot()
}

// firstIndex returns the first index that may be read.
func (l *raftLog) firstIndex() uint64 {
	if i, ok := l.unstable.maybeFirstIndex(); ok {
		return i
	}
	index, err := l.storage.FirstIndex()
	if err != nil {
		l.storageFailed("FirstIndex", err)
	}
	return index
}

// lastIndex returns the last index in the log.
func (l *raftLog) lastIndex() uint64 {
	if i, ok := l.unstable.maybeLastIndex(); ok {
		return i
	}
	i, err := l.storage.LastIndex()
	if err != nil {
		l.storageFailed("LastIndex", err)
	}
	return i
}

// commitTo raises the commit index to tocommit, which must not exceed the
// last index; it never lowers it.
func (l *raftLog) commitTo(tocommit uint64) {
	if l.committed < tocommit {
		if l.lastIndex() < tocommit {
			panic(fmt.Sprintf("raft: commit index %d is out of range [last index %d]", tocommit, l.lastIndex()))
		}
		l.committed = tocommit
	}
}

// appliedTo records that the host applied entries up to i.
func (l *raftLog) appliedTo(i uint64) {
	if i == 0 || i < l.applied {
		return
	}
	if i > l.committed || i > l.applying {
		panic(fmt.Sprintf("raft: applied(%d) is out of range [prevApplied(%d), committed(%d), applying(%d)]", i, l.applied, l.committed, l.applying))
	}
	l.applied = i
}

// acceptApplying records that entries up to i were handed out for applying.
func (l *raftLog) acceptApplying(i uint64) {
	if l.committed < i {
		panic(fmt.Sprintf("raft: applying(%d) is beyond committed(%d)", i, l.committed))
	}
	l.applying = max(l.applying, i)
}

// stableTo records that entries up to i with term t are durable.
func (l *raftLog) stableTo(i, t uint64) bool { return l.unstable.stableTo(i, t) }

// stableSnapTo records that the snapshot at i is durable.
func (l *raftLog) stableSnapTo(i uint64) bool { return l.unstable.stableSnapTo(i) }

// lastTerm returns the term of the last entry.
func (l *raftLog) lastTerm() uint64 {
	t, err := l.term(l.lastIndex())
	if err != nil {
		l.storageFailed("reading the last term", err)
	}
	return t
}

// term returns the term of entry i. The term of firstIndex()-1 is known
// (it is the snapshot's). Outside [firstIndex()-1, lastIndex()] it returns
// ErrCompacted or ErrUnavailable.
func (l *raftLog) term(i uint64) (uint64, error) {
	if t, ok := l.unstable.maybeTerm(i); ok {
		return t, nil
	}
	if i+1 < l.firstIndex() {
		return 0, ErrCompacted
	}
	if i > l.lastIndex() {
		return 0, ErrUnavailable
	}
	t, err := l.storage.Term(i)
	if err == nil {
		return t, nil
	}
	if errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
		return 0, err
	}
	l.storageFailed("Term", err, zap.Uint64("index", i))
	return 0, err
}

// entries returns entries from i on, up to maxSize bytes.
func (l *raftLog) entries(i, maxSize uint64) ([]Entry, error) {
	if i > l.lastIndex() {
		return nil, nil
	}
	return l.slice(i, l.lastIndex()+1, maxSize)
}

// allEntries returns every entry available; for tests.
func (l *raftLog) allEntries() []Entry {
	ents, err := l.entries(l.firstIndex(), noLimit)
	if err != nil {
		panic(err)
	}
	return ents
}

// isUpToDate reports whether a log ending at (lasti, term) is at least as up
// to date as ours (§5.4.1): a higher last term, or the same last term and an
// index at least as high.
func (l *raftLog) isUpToDate(lasti, term uint64) bool {
	lastTerm := l.lastTerm()
	return term > lastTerm || (term == lastTerm && lasti >= l.lastIndex())
}

// matchTerm reports whether entry i has term t.
func (l *raftLog) matchTerm(i, t uint64) bool {
	lt, err := l.term(i)
	return err == nil && lt == t
}

// maybeCommit commits up to maxIndex if that entry has term t (the leader's
// current term: Figure 8 forbids committing an older term's entry by
// counting replicas). It reports whether the commit index moved.
func (l *raftLog) maybeCommit(maxIndex, t uint64) bool {
	if maxIndex > l.committed && l.zeroTermOnOutOfBounds(l.term(maxIndex)) == t {
		l.commitTo(maxIndex)
		return true
	}
	return false
}

// restore resets the log to the snapshot s.
func (l *raftLog) restore(s Snapshot) {
	l.logger.Debug("log starts to restore snapshot",
		zap.Uint64("index", s.Metadata.Index), zap.Uint64("term", s.Metadata.Term))
	l.committed = s.Metadata.Index
	l.unstable.restore(s)
}

// slice returns entries [lo, hi) up to maxSize bytes (at least one).
func (l *raftLog) slice(lo, hi, maxSize uint64) ([]Entry, error) {
	if err := l.mustCheckOutOfBounds(lo, hi); err != nil {
		return nil, err
	}
	if lo == hi {
		return nil, nil
	}
	var ents []Entry
	if lo < l.unstable.offset {
		storedHi := min(hi, l.unstable.offset)
		stored, err := l.storage.Entries(lo, storedHi, maxSize)
		if errors.Is(err, ErrCompacted) {
			return nil, err
		} else if err != nil {
			l.storageFailed("Entries", err, zap.Uint64("lo", lo), zap.Uint64("hi", storedHi))
		}
		if uint64(len(stored)) < storedHi-lo || storedHi == hi {
			return stored, nil
		}
		ents = stored
	}
	if hi > l.unstable.offset {
		unstable := l.unstable.slice(max(lo, l.unstable.offset), hi)
		if len(ents) > 0 {
			combined := make([]Entry, len(ents), len(ents)+len(unstable))
			copy(combined, ents)
			ents = append(combined, unstable...)
		} else {
			ents = unstable
		}
	}
	// Cap the result: limitSize may cut an unstable slice short, and the
	// caller appending to it must not overwrite the entries after it.
	ents = limitSize(ents, maxSize)
	return ents[:len(ents):len(ents)], nil
}

// mustCheckOutOfBounds checks firstIndex <= lo <= hi <= lastIndex+1.
func (l *raftLog) mustCheckOutOfBounds(lo, hi uint64) error {
	if lo > hi {
		panic(fmt.Sprintf("raft: invalid slice %d > %d", lo, hi))
	}
	fi := l.firstIndex()
	if lo < fi {
		return ErrCompacted
	}
	length := l.lastIndex() + 1 - fi
	if hi > fi+length {
		panic(fmt.Sprintf("raft: slice[%d,%d) out of bound [%d,%d]", lo, hi, fi, l.lastIndex()))
	}
	return nil
}

// zeroTermOnOutOfBounds maps a compacted or unavailable term lookup to 0.
func (l *raftLog) zeroTermOnOutOfBounds(t uint64, err error) uint64 {
	if err == nil {
		return t
	}
	if errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
		return 0
	}
	l.storageFailed("Term", err)
	return 0
}

// storageError carries a Storage failure from deep inside the log to the
// RawNode boundary, which recovers it, stops the node and returns the error:
// the node never carries on with an unknown storage state, and the host
// never sees a panic for an I/O failure.
type storageError struct{ err error }

// storageFailed logs a Storage failure and unwinds to the RawNode boundary.
func (l *raftLog) storageFailed(what string, err error, fields ...zap.Field) {
	l.logger.Error("storage failed; the node stops", append(fields, zap.String("call", what), zap.Error(err))...)
	panic(storageError{fmt.Errorf("%w: %s: %w", ErrStorage, what, err)})
}

// noLimit means no size limit.
const noLimit = ^uint64(0)
