package wal

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// DefaultSegmentSize is the segment size when Options.SegmentSize is zero.
const DefaultSegmentSize = 64 << 20

// DefaultKeepSnapshots is the number of snapshot files kept when
// Options.KeepSnapshots is zero.
const DefaultKeepSnapshots = 2

// Options configures Open. The zero value is usable.
type Options struct {
	// FS is the file system; nil means OSFS.
	FS FS
	// SegmentSize is the size at which a segment is closed and the next
	// one started; segments are preallocated to this size. A batch larger
	// than a segment gets a segment of its own. Default DefaultSegmentSize;
	// at least 4 KiB.
	SegmentSize int64
	// KeepSnapshots is how many snapshot files are kept (the current one
	// and older ones). Default DefaultKeepSnapshots; at least 1.
	KeepSnapshots int
	// ClusterID and NodeID name the cluster and the node this log belongs
	// to. Open stores them when it initialises an empty directory, and
	// fails with an error wrapping ErrIdentityMismatch if an existing log
	// was stored with other values. Zero means unknown: not stored, not
	// checked.
	ClusterID uint64
	// NodeID: see ClusterID.
	NodeID uint64
	// Logger receives what recovery decides on its own (a torn write
	// cut away, salvaged damage) and storage degradations (no
	// preallocation); nil means zap.NewNop().
	Logger *zap.Logger
	// Salvage makes Open keep the longest valid prefix of a damaged log
	// instead of failing with ErrCorrupt: see the package documentation
	// and SalvageReport.
	Salvage bool
	// StreamSnapshots keeps snapshot data out of memory: Snapshot returns
	// snapshots whose Data is empty and whose Source reads the snapshot
	// file (see raft.SnapshotSource), and Open checks the snapshot file by
	// reading it through rather than into memory. Without it the current
	// snapshot's data is held in memory, in Data, as raft.MemoryStorage
	// holds it. Either way the Log implements raft.SnapshotStore.
	StreamSnapshots bool
}

// Log is a durable raft.Storage: a segmented write-ahead log of entries and
// hard states plus snapshot files, in one directory. See the package
// documentation for the layout and the recovery rules.
//
// Every write method (Save, Append, SetHardState, ApplySnapshot,
// CreateSnapshot, Compact) is durable when it returns nil: the change was
// written and synced, and a crash at any later point keeps it. If a write
// or sync fails, the Log is poisoned: that call and every later write
// returns the error, and the in-memory state stays at what was durable
// before it. Read methods keep serving that state.
//
// A Log is safe for concurrent use; writes are serialised.
type Log struct {
	mu   sync.Mutex
	fs   FS
	dir  string
	opts Options
	lock io.Closer
	log  *zap.Logger

	st      state
	id      Identity
	created bool
	// salvaged says what Open dropped under Options.Salvage; nil if
	// nothing.
	salvaged *SalvageReport
	// warnedAlloc is set once a failed preallocation has been logged.
	warnedAlloc bool

	// The active segment: the last one, open for appending at off.
	seq     uint64
	f       File
	off     int64
	hdrEnd  int64 // end of the active segment's header record
	segSize int64 // preallocated size of the active segment
	// segs are the sequence numbers of the segments on disk, ascending;
	// the last one is the active segment.
	segs []uint64
	// snaps are the snapshot files on disk, ascending by index.
	snaps []raft.SnapshotMetadata

	// staged are the snapshot files ReceiveSnapshot wrote that are not
	// installed yet; tmpSeq numbers the temporary files written without
	// the lock.
	staged map[*snapSource]struct{}
	tmpSeq atomic.Uint64

	// err is the error that poisoned the log, or ErrClosed.
	err  error
	buf  []byte
	mark [markerSize]byte // the last synced marker written
}

var (
	_ raft.Storage       = (*Log)(nil)
	_ raft.SnapshotStore = (*Log)(nil)
)

// Open opens (creating if needed) the log in dir and recovers its state.
// It returns an error wrapping ErrLocked if the directory is in use, and
// one wrapping ErrCorrupt for damage that a crash cannot explain.
func Open(dir string, opts Options) (*Log, error) {
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentSize < 4096 {
		return nil, fmt.Errorf("wal: Options.SegmentSize %d is below 4096", opts.SegmentSize)
	}
	if opts.KeepSnapshots == 0 {
		opts.KeepSnapshots = DefaultKeepSnapshots
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.KeepSnapshots < 1 {
		return nil, fmt.Errorf("wal: Options.KeepSnapshots %d is below 1", opts.KeepSnapshots)
	}
	fs := opts.FS
	if err := fs.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	lock, err := fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	l := &Log{fs: fs, dir: dir, opts: opts, lock: lock, log: opts.Logger, st: newState()}
	if err := l.recover(); err != nil {
		if l.f != nil {
			_ = l.f.Close()
		}
		_ = lock.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

// recover rebuilds the state from the directory, or initialises an empty
// directory.
func (l *Log) recover() error {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("wal: read %s: %w", l.dir, err)
	}
	removed := false
	for _, name := range names {
		switch {
		case filepath.Ext(name) == tmpSuffix:
			// An unfinished segment or snapshot: never referenced.
			if err := l.fs.Remove(l.path(name)); err != nil {
				return fmt.Errorf("wal: remove %s: %w", name, err)
			}
			removed = true
		case filepath.Ext(name) == segSuffix:
			seq, ok := parseSegName(name)
			if !ok {
				return corruptf(l.path(name), 0, "unexpected segment file name")
			}
			l.segs = append(l.segs, seq)
		case filepath.Ext(name) == snapSuffix:
			index, term, ok := parseSnapName(name)
			if !ok {
				return corruptf(l.path(name), 0, "unexpected snapshot file name")
			}
			l.snaps = append(l.snaps, raft.SnapshotMetadata{Index: index, Term: term})
		}
	}
	if removed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", l.dir, err)
		}
	}
	slices.SortFunc(l.snaps, func(a, b raft.SnapshotMetadata) int { return cmpU64(a.Index, b.Index) })
	if len(l.segs) == 0 && len(l.snaps) == 0 {
		return l.initEmpty()
	}
	var dmg error
	if len(l.segs) == 0 {
		dmg = corruptf(l.dir, 0, "snapshot files but no segment: the segments were deleted")
	} else {
		dmg = l.replay()
	}
	if dmg != nil {
		var d *damageError
		if !l.opts.Salvage || !errors.As(dmg, &d) {
			return dmg
		}
	}
	if l.id.Incarnation != 0 {
		if err := checkIdentity(l.dir, l.id, l.opts); err != nil {
			return err
		}
	}
	if dmg != nil {
		return l.salvage(dmg)
	}
	if err := l.loadSnapshot(); err != nil {
		if !l.opts.Salvage {
			return err
		}
		return l.salvage(err)
	}
	if l.st.lostCommit() {
		err := corruptf(l.path(segName(l.seq)), l.off, "the hard state commits index %d but the log ends at %d: committed entries were lost", l.st.hs.Commit, l.st.lastIndex())
		if !l.opts.Salvage {
			return err
		}
		return l.salvage(err)
	}
	if err := l.pruneSnapshots(true); err != nil {
		return err
	}
	return l.deleteDeadSegments()
}

// initEmpty initialises an empty directory: a new identity and the first
// segment.
func (l *Log) initEmpty() error {
	inc, err := newIncarnation()
	if err != nil {
		return err
	}
	l.id = Identity{ClusterID: l.opts.ClusterID, NodeID: l.opts.NodeID, Incarnation: inc}
	f, off, err := l.createSegment(1)
	if err != nil {
		return err
	}
	l.seq, l.f, l.off, l.hdrEnd, l.segSize = 1, f, off, off, l.opts.SegmentSize
	l.segs = []uint64{1}
	l.created = true
	l.log.Info("wal: initialised an empty directory", zap.String("dir", l.dir), zap.Stringer("identity", l.id))
	return nil
}

// segResult is what scanning one segment found.
type segResult struct {
	hdr     segHeader
	end     int64 // offset after the last valid record
	sealed  bool
	updates int
	// dirtyEnd is the end of the non-zero bytes after end (a torn tail
	// to clear), or end if there are none.
	dirtyEnd int64
	// unmarked is the offset of the last update record if no synced
	// marker follows it, else -1.
	unmarked int64
}

// replay reads every segment in order and rebuilds the state.
func (l *Log) replay() error {
	var prev segResult
	for i, seq := range l.segs {
		name := l.path(segName(seq))
		if i > 0 && seq != l.segs[i-1]+1 {
			return corruptf(name, 0, "segment %s is missing", segName(l.segs[i-1]+1))
		}
		last := i == len(l.segs)-1
		var before state
		if i > 0 && !prev.sealed {
			before = l.st.clone()
		}
		res, err := l.replaySegment(name, seq, i == 0)
		if err != nil {
			return err
		}
		if i > 0 && !prev.sealed {
			// The previous segment ends without a seal: only a crash while
			// rolling explains it, and then this segment holds nothing.
			if !last || res.updates > 0 {
				l.st = before
				return corruptf(l.path(segName(l.segs[i-1])), prev.end, "segment ends without a seal but is followed by %s", segName(seq))
			}
			// Finish the roll's undoing: drop the empty new segment.
			if err := l.fs.Remove(name); err != nil {
				return fmt.Errorf("wal: remove %s: %w", name, err)
			}
			if err := l.fs.SyncDir(l.dir); err != nil {
				return fmt.Errorf("wal: sync %s: %w", l.dir, err)
			}
			l.segs = l.segs[:i]
			break
		}
		if res.sealed && last {
			return corruptf(name, res.end, "segment is sealed but the next segment %s is missing", segName(seq+1))
		}
		prev = res
	}
	if lo, hi, ok := l.st.missing(); ok {
		return corruptf(l.path(segName(l.segs[0])), 0, "entries [%d, %d] are not in any segment: an earlier segment is missing", lo, hi)
	}
	// Open the active segment and clear a torn tail, so that nothing left
	// of it can be read as a record after the next write.
	l.seq = l.segs[len(l.segs)-1]
	name := l.path(segName(l.seq))
	f, err := l.fs.OpenRW(name)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", name, err)
	}
	l.f, l.off, l.hdrEnd, l.segSize = f, prev.end, int64(recordSize(len(prev.hdr.encode()))), prev.hdr.size
	if prev.dirtyEnd > prev.end {
		l.log.Info("wal: cut away a torn write at the end of the log (a crash interrupted it before its sync returned, so it was never acknowledged)",
			zap.String("file", name), zap.Int64("offset", prev.end), zap.Int64("bytes", prev.dirtyEnd-prev.end))
		if _, err := f.WriteAt(make([]byte, prev.dirtyEnd-prev.end), prev.end); err != nil {
			return fmt.Errorf("wal: clear torn tail of %s: %w", name, err)
		}
	}
	if prev.dirtyEnd > prev.end || prev.unmarked >= 0 {
		// The last record was read back, maybe from the page cache only:
		// make it durable before vouching for it.
		if err := f.Sync(); err != nil {
			return fmt.Errorf("wal: sync %s: %w", name, err)
		}
	}
	if prev.unmarked >= 0 {
		if err := l.vouch(prev.unmarked); err != nil {
			return err
		}
	}
	return nil
}

// replaySegment applies one segment's records to the state.
func (l *Log) replaySegment(name string, seq uint64, first bool) (segResult, error) {
	var res segResult
	buf, err := l.fs.ReadFile(name)
	if err != nil {
		return res, fmt.Errorf("wal: read %s: %w", name, err)
	}
	typ, payload, off, ok := parseRecord(buf, 0)
	if !ok || typ != recSegHeader {
		return res, corruptf(name, 0, "no valid segment header")
	}
	res.hdr, err = decodeSegHeader(payload)
	if err != nil {
		return res, corruptf(name, 0, "segment header: %v", err)
	}
	if res.hdr.seq != seq {
		return res, corruptf(name, 0, "segment header names sequence %d", res.hdr.seq)
	}
	if first {
		l.id = res.hdr.id
	} else if res.hdr.id != l.id {
		return res, corruptf(name, 0, "segment header names %s, the previous segments %s", res.hdr.id, l.id)
	}
	if first {
		l.st.initFrom(res.hdr.summ, seq-1)
	} else if got := l.st.summary(); !got.equal(res.hdr.summ) {
		return res, corruptf(name, 0, "segment starts at state {%v} but the previous segments end at {%v}", res.hdr.summ, got)
	}
	res.unmarked = -1
	for {
		typ, payload, next, ok := parseRecord(buf, off)
		if !ok {
			break
		}
		switch typ {
		case recUpdate:
			if res.unmarked >= 0 {
				return res, corruptf(name, int64(off), "update record follows the update record at offset %d without a synced marker", res.unmarked)
			}
			u, err := decodeUpdate(payload)
			if err == nil {
				u.ownData()
				err = l.replayUpdate(&u, seq)
			}
			if err != nil {
				return res, corruptf(name, int64(off), "update record: %v", err)
			}
			res.updates++
			res.unmarked = int64(off)
		case recSynced:
			at, ok := decodeMarker(payload)
			if !ok || at != res.unmarked {
				return res, corruptf(name, int64(off), "synced marker for offset %d does not follow the update record it vouches for", at)
			}
			res.unmarked = -1
		case recSeal:
			if res.unmarked >= 0 {
				return res, corruptf(name, int64(off), "seal follows the update record at offset %d without a synced marker", res.unmarked)
			}
			nextSeq, err := decodeSeal(payload)
			if err != nil || nextSeq != seq+1 {
				return res, corruptf(name, int64(off), "bad seal record (next %d, %v)", nextSeq, err)
			}
			res.sealed = true
		default:
			return res, corruptf(name, int64(off), "unexpected record type %d", typ)
		}
		off = next
		if res.sealed {
			break
		}
	}
	res.end = int64(off)
	// Checked after the records, so that a salvage keeps those before the
	// cut.
	if size := int64(len(buf)); size < res.hdr.size {
		return res, corruptf(name, size, "segment truncated: %d bytes, preallocated %d", size, res.hdr.size)
	}
	if res.sealed {
		return res, nil
	}
	// The scan stopped at something that is not a record: zeros
	// (preallocated space), a torn write, or damage. Only the last record
	// written can be torn, so a valid record further on means damage.
	if at, found := hasValidRecordAfter(buf, off); found && !tornAfterUnmarked(buf, off, at, res.unmarked) {
		return res, corruptf(name, int64(off), "invalid record followed by a valid record at offset %d: a synced record was damaged", at)
	}
	res.dirtyEnd = res.end
	for i := len(buf) - 1; i >= off; i-- {
		if buf[i] != 0 {
			res.dirtyEnd = int64(i + 1)
			break
		}
	}
	return res, nil
}

// replayUpdate applies a recovered update to the state, checking it as the
// write path did.
func (l *Log) replayUpdate(u *update, seq uint64) error {
	st := &l.st
	switch u.snapKind {
	case snapApply:
		if u.snap.Index <= st.snap.Metadata.Index {
			return fmt.Errorf("snapshot %d is not newer than %d", u.snap.Index, st.snap.Metadata.Index)
		}
		st.applySnapshot(raft.Snapshot{Metadata: u.snap})
	case snapCreate:
		if u.snap.Index <= st.snap.Metadata.Index || u.snap.Index > st.lastIndex() {
			return fmt.Errorf("snapshot at %d outside (%d, %d]", u.snap.Index, st.snap.Metadata.Index, st.lastIndex())
		}
		st.snap = raft.Snapshot{Metadata: u.snap}
	}
	if u.hasCompact {
		if u.compactIndex <= st.offset() || u.compactIndex > st.lastIndex() {
			return fmt.Errorf("compaction to %d outside (%d, %d]", u.compactIndex, st.offset(), st.lastIndex())
		}
		st.compact(u.compactIndex, u.compactTerm)
	}
	if len(u.ents) > 0 {
		ents, err := st.checkAppend(u.ents, st.offset(), st.lastIndex())
		if err != nil {
			return err
		}
		st.appendEntries(ents, seq)
	}
	if u.hasHard {
		st.hs = u.hs
		st.hsLast = st.lastIndex()
	}
	return nil
}

// loadSnapshot reads the data of the snapshot the log refers to.
func (l *Log) loadSnapshot() error {
	meta := l.st.snap.Metadata
	if meta.Index == 0 {
		return nil
	}
	name := l.path(snapName(meta.Index, meta.Term))
	if l.opts.StreamSnapshots {
		size, err := l.verifySnapFile(name, &meta)
		if err != nil {
			return err
		}
		l.st.snap = l.held(raft.Snapshot{Metadata: meta}, name, size)
		return nil
	}
	data, err := l.readSnapData(name, &meta)
	if err != nil {
		return err
	}
	l.st.snap.Data = data
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
