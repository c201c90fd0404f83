package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	iofs "io/fs"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// sealReserve is the room a segment keeps for its seal record.
const sealReserve = recHeaderSize + recAlign*2

// poison records err as the log's failure and returns it.
func (l *Log) poison(op string, err error) error {
	l.err = fmt.Errorf("wal: %s failed, the log accepts no more writes: %w", op, err)
	return l.err
}

// createSegment creates segment seq holding a header for the current state,
// preallocated and durable (file and directory entry) before it returns.
func (l *Log) createSegment(seq uint64) (File, int64, error) {
	name := l.path(segName(seq))
	tmp := name + tmpSuffix
	h := segHeader{seq: seq, size: l.opts.SegmentSize, summ: l.st.summary(), id: l.id}
	rec := appendRecord(nil, recSegHeader, h.encode())
	f, err := l.fs.Create(tmp)
	if err != nil {
		return nil, 0, l.tmpFailed("start segment", name, tmp, "create", nil, err)
	}
	fail := func(op string, err error) (File, int64, error) {
		return nil, 0, l.tmpFailed("start segment", name, tmp, op, f, err)
	}
	if _, err := f.WriteAt(rec, 0); err != nil {
		return fail("write", err)
	}
	if err := f.Allocate(l.opts.SegmentSize); err != nil {
		if !errors.Is(err, ErrNotPreallocated) {
			return fail("preallocate", err)
		}
		l.warnNotPreallocated(name, err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := l.fs.Rename(tmp, name); err != nil {
		return fail("rename", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		// The segment has its final name but may not keep it after a
		// crash; Open copes with either.
		_ = f.Close()
		return nil, 0, fmt.Errorf("wal: start segment %s: sync directory %s: %w", name, l.dir, err)
	}
	return f, int64(len(rec)), nil
}

// tmpFailed closes f (if not nil) and removes tmp after step op of what
// failed, and returns an error that names the final file and the
// directory (not the temporary file, which is gone, or will be at the next
// Open).
func (l *Log) tmpFailed(what, name, tmp, op string, f File, err error) error {
	if f != nil {
		_ = f.Close()
	}
	gone := "was removed"
	if rerr := l.fs.Remove(tmp); rerr != nil && !errors.Is(rerr, iofs.ErrNotExist) {
		gone = fmt.Sprintf("could not be removed (%v); Open removes it", rerr)
	}
	return fmt.Errorf("wal: %s %s in %s: %s failed (the temporary file %s %s): %w",
		what, filepath.Base(name), l.dir, op, filepath.Base(tmp), gone, err)
}

// warnNotPreallocated logs, once per Log, that segments are not
// preallocated.
func (l *Log) warnNotPreallocated(name string, err error) {
	if l.warnedAlloc {
		return
	}
	l.warnedAlloc = true
	l.log.Warn("wal: cannot preallocate segments, they are extended sparsely: a full disk will fail a write instead of the start of a segment (logged once)",
		zap.String("file", name), zap.Error(err))
}

// roll seals the active segment and makes a new one active. The new
// segment is durable before the seal is written, so that a sealed segment
// always has a successor on disk.
func (l *Log) roll() error {
	f, off, err := l.createSegment(l.seq + 1)
	if err != nil {
		return l.poison("roll", err)
	}
	// The synced marker of the last record was written without a sync:
	// make it durable before the seal, or a power loss could keep the
	// seal and lose the marker, which recovery takes for a damaged synced
	// record.
	if err := l.f.Sync(); err != nil {
		_ = f.Close()
		return l.poison("sync before seal", err)
	}
	seal := appendRecord(nil, recSeal, encodeSeal(l.seq+1))
	if _, err := l.f.WriteAt(seal, l.off); err != nil {
		_ = f.Close()
		return l.poison("write seal", err)
	}
	if err := l.f.Sync(); err != nil {
		_ = f.Close()
		return l.poison("sync seal", err)
	}
	_ = l.f.Close()
	l.seq++
	l.f, l.off, l.hdrEnd, l.segSize = f, off, off, l.opts.SegmentSize
	l.segs = append(l.segs, l.seq)
	return nil
}

// commit writes u as one record and syncs it: the group commit.
func (l *Log) commit(u *update) error {
	buf := u.encode(append(l.buf[:0], make([]byte, recHeaderSize)...))
	n := len(buf) - recHeaderSize
	if n > 1<<32-1 {
		return fmt.Errorf("wal: batch of %d bytes exceeds the 4 GiB record limit", n)
	}
	for len(buf) < recordSize(n) {
		buf = append(buf, 0)
	}
	h := buf[:recHeaderSize]
	binary.LittleEndian.PutUint32(h[0:], uint32(n))
	h[4] = recUpdate
	binary.LittleEndian.PutUint32(h[8:], crc32.Checksum(buf[recHeaderSize:recHeaderSize+n], castagnoli))
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(h[:12], castagnoli))
	if cap(buf) <= 4<<20 {
		l.buf = buf
	}
	if l.off > l.hdrEnd && l.off+int64(len(buf))+markerSize+sealReserve > l.segSize {
		if err := l.roll(); err != nil {
			return err
		}
	}
	if _, err := l.f.WriteAt(buf, l.off); err != nil {
		return l.poison("write", err)
	}
	if err := l.f.Sync(); err != nil {
		return l.poison("sync", err)
	}
	if err := l.checkLinked(); err != nil {
		return err
	}
	at := l.off
	l.off += int64(len(buf))
	return l.vouch(at)
}

// checkLinked poisons the log if its active segment was deleted (with its
// directory, say): the write just synced went to a file that no Open will
// ever read, so it must not be acknowledged.
func (l *Log) checkLinked() error {
	ok, err := l.f.Linked()
	if err != nil {
		return l.poison("check segment", fmt.Errorf("%s: %w", l.path(segName(l.seq)), err))
	}
	if !ok {
		return l.poison("write", fmt.Errorf("%w: %s was deleted from under the log (was %s removed?)", ErrUnlinked, l.path(segName(l.seq)), l.dir))
	}
	return nil
}

// vouch writes, without a sync, the marker saying that the record at off
// is durable, right after it. Recovery uses it to tell damage to a synced
// record from a write torn by a crash.
func (l *Log) vouch(off int64) error {
	putMarker(&l.mark, off)
	if _, err := l.f.WriteAt(l.mark[:], l.off); err != nil {
		return l.poison("write synced marker", err)
	}
	l.off += markerSize
	return nil
}

// usable returns the error every write returns on a failed or closed log.
func (l *Log) usable() error { return l.err }

// Save persists what a Ready asks for: snap if not empty (replacing the
// log), then ents (replacing any conflicting tail), then hs if not empty,
// with a single sync of the log (a new snapshot adds its own file's sync).
// It is the write a host calls in step 1 of the loop in raft's doc.go.
// Validation errors (raft.ErrSnapOutOfDate, raft.ErrLogGap) leave the log
// untouched; an I/O error poisons it.
func (l *Log) Save(hs raft.HardState, ents []raft.Entry, snap raft.Snapshot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	var u update
	offset, last := l.st.offset(), l.st.lastIndex()
	if !snap.IsEmpty() {
		if snap.Metadata.Index <= l.st.snap.Metadata.Index {
			return raft.ErrSnapOutOfDate
		}
		u.snapKind, u.snap = snapApply, snap.Metadata
		offset, last = snap.Metadata.Index, snap.Metadata.Index
	}
	kept, err := l.st.checkAppend(ents, offset, last)
	if err != nil {
		return err
	}
	u.ents = kept
	if !hs.IsEmpty() {
		u.hasHard, u.hs = true, hs
	}
	return l.apply(&u, &snap)
}

// apply makes u durable (with the snapshot file first if u carries one)
// and then applies it to the state.
func (l *Log) apply(u *update, snap *raft.Snapshot) error {
	if u.snapKind == 0 && !u.hasCompact && len(u.ents) == 0 && !u.hasHard {
		return nil
	}
	var kept raft.Snapshot
	if u.snapKind != 0 {
		var err error
		if kept, err = l.installSnapFile(snap); err != nil {
			return err
		}
	}
	if err := l.commit(u); err != nil {
		return err
	}
	switch u.snapKind {
	case snapApply:
		l.st.applySnapshot(kept)
	case snapCreate:
		l.st.snap = kept
	}
	if u.snapKind != 0 {
		l.pruneStaged(kept.Metadata.Index)
	}
	if u.hasCompact {
		l.st.compact(u.compactIndex, u.compactTerm)
	}
	l.st.appendEntries(u.ents, l.seq)
	if u.hasHard {
		l.st.hs = u.hs
	}
	if u.snapKind != 0 {
		if err := l.pruneSnapshots(false); err != nil {
			return err
		}
	}
	if u.snapKind == snapApply || u.hasCompact {
		return l.deleteDeadSegments()
	}
	return nil
}

// Append appends entries durably, replacing any conflicting tail, as
// raft.MemoryStorage.Append does (and with its errors).
func (l *Log) Append(ents []raft.Entry) error {
	return l.Save(raft.HardState{}, ents, raft.Snapshot{})
}

// SetHardState saves the hard state durably.
func (l *Log) SetHardState(hs raft.HardState) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	return l.apply(&update{hasHard: true, hs: hs}, nil)
}

// ApplySnapshot durably replaces the log with snap, as
// raft.MemoryStorage.ApplySnapshot does. It returns raft.ErrSnapOutOfDate
// if snap is not newer than the held snapshot.
func (l *Log) ApplySnapshot(snap raft.Snapshot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if snap.Metadata.Index <= l.st.snap.Metadata.Index {
		return raft.ErrSnapOutOfDate
	}
	return l.apply(&update{snapKind: snapApply, snap: snap.Metadata}, &snap)
}

// CreateSnapshot durably records a snapshot of the application state at
// index i (with cs, or the held snapshot's ConfState if cs is nil) and
// returns it. The log is not compacted; call Compact for that. It returns
// raft.ErrSnapOutOfDate if i is not newer than the held snapshot,
// raft.ErrCompacted if the entry at i was compacted, and an error wrapping
// raft.ErrUnavailable if i > LastIndex().
func (l *Log) CreateSnapshot(i uint64, cs *raft.ConfState, data []byte) (raft.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return raft.Snapshot{}, err
	}
	if i <= l.st.snap.Metadata.Index {
		return raft.Snapshot{}, raft.ErrSnapOutOfDate
	}
	if i > l.st.lastIndex() {
		return raft.Snapshot{}, fmt.Errorf("%w: snapshot index %d is beyond last index %d", raft.ErrUnavailable, i, l.st.lastIndex())
	}
	if i < l.st.offset() {
		return raft.Snapshot{}, raft.ErrCompacted
	}
	snap := raft.Snapshot{Metadata: l.st.snap.Metadata, Data: data}
	snap.Metadata.Index = i
	snap.Metadata.Term = l.st.ents[i-l.st.offset()].Term
	if cs != nil {
		snap.Metadata.ConfState = *cs
	}
	if err := l.apply(&update{snapKind: snapCreate, snap: snap.Metadata}, &snap); err != nil {
		return raft.Snapshot{}, err
	}
	return l.st.snap, nil
}

// Compact durably discards the entries up to and including compactIndex,
// which must not exceed LastIndex(), and deletes the segments that held
// only discarded entries. It returns raft.ErrCompacted if they are already
// gone and an error wrapping raft.ErrUnavailable if compactIndex >
// LastIndex().
func (l *Log) Compact(compactIndex uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if compactIndex <= l.st.offset() {
		return raft.ErrCompacted
	}
	if compactIndex > l.st.lastIndex() {
		return fmt.Errorf("%w: compact index %d is beyond last index %d", raft.ErrUnavailable, compactIndex, l.st.lastIndex())
	}
	term := l.st.ents[compactIndex-l.st.offset()].Term
	return l.apply(&update{hasCompact: true, compactIndex: compactIndex, compactTerm: term}, nil)
}

// pruneSnapshots deletes snapshot files beyond the newest KeepSnapshots
// up to the current one and, at open, files newer than the current one
// (written before a crash that lost the record referring to them).
func (l *Log) pruneSnapshots(atOpen bool) error {
	cur := l.st.snap.Metadata
	var keep []raft.SnapshotMetadata
	var drop []raft.SnapshotMetadata
	for _, m := range l.snaps {
		switch {
		case m.Index > cur.Index || (m.Index == cur.Index && m.Term != cur.Term):
			if atOpen {
				drop = append(drop, m)
			} else {
				keep = append(keep, m)
			}
		default:
			keep = append(keep, m)
		}
	}
	// keep is ascending by index; drop the oldest beyond the limit among
	// those not newer than the current snapshot.
	n := 0
	for _, m := range keep {
		if m.Index <= cur.Index {
			n++
		}
	}
	for n > l.opts.KeepSnapshots {
		drop = append(drop, keep[0])
		keep = keep[1:]
		n--
	}
	if len(drop) == 0 {
		return nil
	}
	for _, m := range drop {
		if err := l.fs.Remove(l.path(snapName(m.Index, m.Term))); err != nil {
			return l.poison("remove snapshot", err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.poison("sync directory", err)
	}
	l.snaps = keep
	return nil
}

// deleteDeadSegments deletes, oldest first, the segments that hold no live
// entry. The newest surviving segment header carries the hard state and
// snapshot position, so nothing else is lost. Each removal is made durable
// before the next, so a crash never leaves a gap in the sequence.
func (l *Log) deleteDeadSegments() error {
	live := l.st.oldestLiveSeq(l.seq)
	for len(l.segs) > 1 && l.segs[0] < live {
		if err := l.fs.Remove(l.path(segName(l.segs[0]))); err != nil {
			return l.poison("remove segment", err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.poison("sync directory", err)
		}
		l.segs = l.segs[1:]
	}
	return nil
}

// Close closes the log and releases the directory lock. Later writes
// return ErrClosed; reads keep serving the state in memory.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == ErrClosed {
		return nil
	}
	l.err = ErrClosed
	var err error
	if l.f != nil {
		err = l.f.Close()
	}
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
