package wal

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// SalvageReport says what Open dropped from a damaged log under
// Options.Salvage.
type SalvageReport struct {
	// File is the damaged file; Offset is where in it the damage starts.
	File   string
	Offset int64
	// Reason is the damage found, an error wrapping ErrCorrupt.
	Reason error
	// LastIndexKept is the last index of the salvaged log.
	LastIndexKept uint64
	// LostFrom and LostTo bound the indexes that were in the log before
	// the damage was cut away and are no longer (LostFrom > LostTo if no
	// entry was lost, only the hard state's promise).
	LostFrom, LostTo uint64
}

// Salvaged returns what Open dropped under Options.Salvage, or nil if it
// dropped nothing.
func (l *Log) Salvaged() *SalvageReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.salvaged
}

// damagedSuffix is appended to the name of a file that salvage moved
// aside; Open ignores such files.
const damagedSuffix = ".damaged"

// salvage keeps the longest consistent prefix of the state replayed before
// dmg, a *damageError: it writes that prefix, with a hard state marked
// Recovering, to a new segment after every existing one, moves the old
// segments (oldest first, each move durable before the next, so that a
// crash leaves the same damage to salvage again) and a damaged snapshot
// file aside, and recovers again from what it wrote.
func (l *Log) salvage(dmg error) error {
	var d *damageError
	if !errors.As(dmg, &d) {
		return dmg
	}
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
	lostTo := max(l.st.lastIndex(), l.st.hs.Commit, l.extentAfter(d.file))
	l.st.trimMissing()
	badSnaps := l.settleSnapshot()
	kept := l.st.lastIndex()
	hs := l.st.hs
	hs.Commit = min(hs.Commit, kept)
	hs.Recovering = true
	if l.id.Incarnation == 0 {
		// No segment header survived: the identity is lost with them.
		inc, err := newIncarnation()
		if err != nil {
			return err
		}
		l.id = Identity{ClusterID: l.opts.ClusterID, NodeID: l.opts.NodeID, Incarnation: inc}
	}
	old := l.segs
	seq := uint64(1)
	if len(old) > 0 {
		seq = old[len(old)-1] + 1
	}
	ents := l.st.ents[1:]
	l.st.ents, l.st.runs, l.st.hs = l.st.ents[:1:1], nil, hs
	f, off, err := l.createSegment(seq)
	if err != nil {
		return fmt.Errorf("wal: salvage %s: %w", l.dir, err)
	}
	l.seq, l.f, l.off, l.hdrEnd, l.segSize = seq, f, off, off, l.opts.SegmentSize
	if err := l.commit(&update{ents: ents, hasHard: true, hs: hs}); err != nil {
		return fmt.Errorf("wal: salvage %s: %w", l.dir, err)
	}
	for _, s := range old {
		if err := l.moveAside(segName(s)); err != nil {
			return err
		}
	}
	for _, name := range badSnaps {
		if err := l.moveAside(name); err != nil {
			return err
		}
	}
	rep := &SalvageReport{File: d.file, Offset: d.off, Reason: dmg, LastIndexKept: kept, LostFrom: kept + 1, LostTo: lostTo}
	l.log.Warn("wal: the log was damaged; salvaged its longest valid prefix and marked this node Recovering (it will not vote until repaired)",
		zap.String("file", d.file), zap.Int64("offset", d.off), zap.String("reason", d.reason),
		zap.Uint64("last_index_kept", kept), zap.Uint64("lost_from", rep.LostFrom), zap.Uint64("lost_to", rep.LostTo),
		zap.String("moved_aside_as", "*"+damagedSuffix))
	// Start again from what was just written.
	_ = l.f.Close()
	l.f, l.segs, l.snaps, l.st = nil, nil, nil, newState()
	l.opts.Salvage = false
	err = l.recover()
	l.opts.Salvage = true
	if err != nil {
		return fmt.Errorf("wal: reopen %s after salvage: %w", l.dir, err)
	}
	l.salvaged = rep
	return nil
}

// moveAside renames name to name+damagedSuffix durably.
func (l *Log) moveAside(name string) error {
	if err := l.fs.Rename(l.path(name), l.path(name+damagedSuffix)); err != nil {
		return fmt.Errorf("wal: salvage: move %s aside: %w", l.path(name), err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("wal: salvage: sync %s: %w", l.dir, err)
	}
	return nil
}

// settleSnapshot makes the state's snapshot one whose file is intact: the
// current one, else the newest older intact file after which the log's
// entries are contiguous, else none if the log starts at index 1, else an
// empty log keeping only the hard state's term and vote. With no
// snapshot and no entries at all (every segment gone), it adopts the
// newest intact snapshot file. It returns the damaged snapshot files to
// move aside.
func (l *Log) settleSnapshot() (bad []string) {
	st := &l.st
	meta := st.snap.Metadata
	empty := meta.Index == 0 && st.lastIndex() == 0
	if meta.Index == 0 && !empty {
		return nil
	}
	if meta.Index != 0 {
		if l.loadSnapshot() == nil {
			return nil
		}
		if slices.ContainsFunc(l.snaps, func(m raft.SnapshotMetadata) bool { return m.Index == meta.Index && m.Term == meta.Term }) {
			bad = append(bad, snapName(meta.Index, meta.Term))
		}
	}
	for i := len(l.snaps) - 1; i >= 0; i-- {
		m := l.snaps[i]
		if !empty && (m.Index >= meta.Index || m.Index < st.offset() || m.Index > st.lastIndex() || st.ents[m.Index-st.offset()].Term != m.Term) {
			continue
		}
		snap, ok := l.readSnapFile(m)
		if !ok {
			continue
		}
		if empty {
			st.applySnapshot(snap)
		} else {
			st.snap = snap
		}
		return bad
	}
	if empty {
		return bad
	}
	if st.offset() == 0 {
		st.snap = raft.Snapshot{}
		return bad
	}
	hs := raft.HardState{Term: st.hs.Term, Vote: st.hs.Vote}
	*st = newState()
	st.hs = hs
	return bad
}

// readSnapFile reads and checks the snapshot file of m.
func (l *Log) readSnapFile(m raft.SnapshotMetadata) (raft.Snapshot, bool) {
	name := l.path(snapName(m.Index, m.Term))
	buf, err := l.fs.ReadFile(name)
	if err != nil {
		return raft.Snapshot{}, false
	}
	snap, err := decodeSnapFile(name, buf)
	if err != nil || snap.Metadata.Index != m.Index || snap.Metadata.Term != m.Term {
		return raft.Snapshot{}, false
	}
	return l.held(snap, name, int64(len(snap.Data))), true
}

// extentAfter returns the highest index (last or committed) that the
// headers of the segments after file name: a lower bound of what the log
// held beyond the damage.
func (l *Log) extentAfter(file string) uint64 {
	var hi uint64
	for _, s := range l.segs {
		name := l.path(segName(s))
		if name <= file {
			continue
		}
		buf, err := l.fs.ReadFile(name)
		if err != nil {
			continue
		}
		if typ, payload, _, ok := parseRecord(buf, 0); ok && typ == recSegHeader {
			if h, err := decodeSegHeader(payload); err == nil {
				hi = max(hi, h.summ.last, h.summ.hs.Commit)
			}
		}
	}
	return hi
}
