package raft

import "fmt"

// unstable holds the log entries, and possibly a snapshot, that the node has
// accepted but the host has not yet confirmed durable.
//
// Index map: entries[i] has index offset+i. Entries at index < offset are in
// Storage (or in the snapshot). Entries in [offset, offsetInProgress) were
// handed to the host in a Ready and are being written; the rest have not
// been handed out yet.
type unstable struct {
	// snapshot is the incoming snapshot, if any.
	// Invariant: if snapshot != nil, offset == snapshot.Metadata.Index+1.
	snapshot *Snapshot
	// snapshotInProgress reports that the snapshot was handed to the host.
	snapshotInProgress bool

	entries []Entry
	offset  uint64
	// Invariant: offset <= offsetInProgress <= offset+len(entries).
	offsetInProgress uint64
}

// maybeFirstIndex returns the index of the first possible entry if a
// snapshot is pending.
func (u *unstable) maybeFirstIndex() (uint64, bool) {
	if u.snapshot != nil {
		return u.snapshot.Metadata.Index + 1, true
	}
	return 0, false
}

// maybeLastIndex returns the last index held, if any entry or snapshot is.
func (u *unstable) maybeLastIndex() (uint64, bool) {
	if l := len(u.entries); l != 0 {
		return u.offset + uint64(l) - 1, true
	}
	if u.snapshot != nil {
		return u.snapshot.Metadata.Index, true
	}
	return 0, false
}

// maybeTerm returns the term of index i if the unstable part knows it.
func (u *unstable) maybeTerm(i uint64) (uint64, bool) {
	if i < u.offset {
		if u.snapshot != nil && u.snapshot.Metadata.Index == i {
			return u.snapshot.Metadata.Term, true
		}
		return 0, false
	}
	last, ok := u.maybeLastIndex()
	if !ok || i > last {
		return 0, false
	}
	return u.entries[i-u.offset].Term, true
}

// nextEntries returns the entries not yet handed to the host.
func (u *unstable) nextEntries() []Entry {
	inProgress := int(u.offsetInProgress - u.offset)
	if len(u.entries) == inProgress {
		return nil
	}
	return u.entries[inProgress:]
}

// nextSnapshot returns the snapshot if it was not yet handed to the host.
func (u *unstable) nextSnapshot() *Snapshot {
	if u.snapshot == nil || u.snapshotInProgress {
		return nil
	}
	return u.snapshot
}

// acceptInProgress marks everything currently held as handed to the host.
func (u *unstable) acceptInProgress() {
	if len(u.entries) > 0 {
		u.offsetInProgress = u.entries[len(u.entries)-1].Index + 1
	}
	if u.snapshot != nil {
		u.snapshotInProgress = true
	}
}

// stableTo drops the entries up to index i, which the host made durable,
// provided index i still has term t (otherwise it was replaced meanwhile and
// the acknowledgement is stale). It reports whether anything was dropped.
func (u *unstable) stableTo(i, t uint64) bool {
	gt, ok := u.maybeTerm(i)
	if !ok || gt != t || i < u.offset {
		return false
	}
	num := int(i + 1 - u.offset)
	u.entries = u.entries[num:]
	// Release the array once it is mostly unused so that memory does not
	// grow without bound; otherwise keep appending into it.
	if cap(u.entries) > 1024 && len(u.entries) < cap(u.entries)/4 {
		u.entries = append([]Entry(nil), u.entries...)
	}
	u.offset = i + 1
	u.offsetInProgress = max(u.offsetInProgress, u.offset)
	return true
}

// stableSnapTo drops the snapshot at index i once it is durable.
func (u *unstable) stableSnapTo(i uint64) bool {
	if u.snapshot != nil && u.snapshot.Metadata.Index == i {
		u.snapshot = nil
		u.snapshotInProgress = false
		return true
	}
	return false
}

// restore replaces everything by the snapshot s.
func (u *unstable) restore(s Snapshot) {
	u.offset = s.Metadata.Index + 1
	u.offsetInProgress = u.offset
	u.entries = nil
	u.snapshot = &s
	u.snapshotInProgress = false
}

// truncateAndAppend appends ents, replacing any held entries at or after
// ents[0].Index. The caller guarantees ents[0].Index <= last index + 1 and
// ents[0].Index > the committed index.
func (u *unstable) truncateAndAppend(ents []Entry) {
	fromIndex := ents[0].Index
	switch {
	case fromIndex == u.offset+uint64(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case fromIndex <= u.offset:
		// Everything held is replaced. Copy so that entries already handed
		// out in a Ready are not overwritten.
		u.entries = append([]Entry(nil), ents...)
		u.offset = fromIndex
		u.offsetInProgress = u.offset
	default:
		kept := u.slice(u.offset, fromIndex)
		u.entries = append(append(make([]Entry, 0, len(kept)+len(ents)), kept...), ents...)
		u.offsetInProgress = min(u.offsetInProgress, fromIndex)
	}
}

// slice returns entries [lo, hi), which must be held.
func (u *unstable) slice(lo, hi uint64) []Entry {
	u.mustCheckOutOfBounds(lo, hi)
	// Cap the result so that appending to it cannot overwrite u.entries.
	return u.entries[lo-u.offset : hi-u.offset : hi-u.offset]
}

func (u *unstable) mustCheckOutOfBounds(lo, hi uint64) {
	upper := u.offset + uint64(len(u.entries))
	if lo > hi || lo < u.offset || hi > upper {
		panic(fmt.Sprintf("raft: unstable.slice[%d,%d) out of bound [%d,%d)", lo, hi, u.offset, upper))
	}
}
