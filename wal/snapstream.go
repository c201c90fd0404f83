package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"github.com/keelraft/raft"
)

// snapCopyBuf is the size of the buffer snapshot data is copied through:
// the memory a snapshot write or read takes, whatever the snapshot's size.
const snapCopyBuf = 1 << 20

// ReaderFS is implemented by an FS that can read a file sequentially. The
// Log streams snapshot files through it; with an FS that does not
// implement it, a snapshot file is read whole into memory (ReadFile) each
// time its data is read.
type ReaderFS interface {
	FS
	// OpenReader opens the file name for reading from its start.
	OpenReader(name string) (io.ReadCloser, error)
}

var _ ReaderFS = OSFS{}

// OpenReader implements ReaderFS.
func (OSFS) OpenReader(name string) (io.ReadCloser, error) { return os.Open(name) }

// openReader opens name for reading through the FS.
func (l *Log) openReader(name string) (io.ReadCloser, error) {
	if rfs, ok := l.fs.(ReaderFS); ok {
		return rfs.OpenReader(name)
	}
	buf, err := l.fs.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(buf)), nil
}

// snapSource is the raft.SnapshotSource of a snapshot file of a Log: an
// installed one, or one staged by ReceiveSnapshot or CreateSnapshotFrom
// under a temporary name until it is installed (renamed). Its path changes
// on installation, under mu, so that a reader opened at any time finds it.
type snapSource struct {
	l    *Log
	meta raft.SnapshotMetadata
	size int64 // of the data

	mu     sync.Mutex
	path   string
	staged bool // under a temporary name, not installed yet
}

// Size implements raft.SnapshotSource.
func (s *snapSource) Size() int64 { return s.size }

// Open implements raft.SnapshotSource: the reader checks the file's
// header, metadata, length and checksum as it goes, and returns an error
// wrapping ErrCorrupt instead of io.EOF if any is wrong.
func (s *snapSource) Open() (io.ReadCloser, error) {
	s.mu.Lock()
	path := s.path
	rc, err := s.l.openReader(path)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("wal: open snapshot %d/%d: %w", s.meta.Index, s.meta.Term, err)
	}
	r, err := newSnapReader(rc, path, &s.meta)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	if r.left != s.size {
		_ = rc.Close()
		return nil, corruptf(path, snapHeaderSize, "snapshot file holds %d bytes of data, %d were written", r.left, s.size)
	}
	return r, nil
}

// snapReader reads the data of a snapshot file and checks it.
type snapReader struct {
	rc      io.ReadCloser
	name    string
	left    int64 // data bytes not yet read
	off     int64 // file offset reached
	crc     uint32
	wantCRC uint32
	err     error // sticky: io.EOF once verified, or the damage
}

// newSnapReader reads and checks the header and metadata of the snapshot
// file rc reads (named name), which must be the file of meta.
func newSnapReader(rc io.ReadCloser, name string, meta *raft.SnapshotMetadata) (*snapReader, error) {
	var hdr [snapHeaderSize]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return nil, corruptf(name, 0, "snapshot file truncated inside its %d-byte header: %v", snapHeaderSize, err)
	}
	if !bytes.Equal(hdr[:8], []byte(snapMagic)) {
		return nil, corruptf(name, 0, "bad snapshot magic %q", hdr[:8])
	}
	bodyLen := binary.LittleEndian.Uint64(hdr[16:])
	e := encoder{}
	encodeSnapMeta(&e, meta)
	if bodyLen < uint64(len(e.b)) || bodyLen > 1<<62 {
		return nil, corruptf(name, 16, "snapshot body length %d cannot hold its metadata", bodyLen)
	}
	mb := make([]byte, len(e.b))
	if _, err := io.ReadFull(rc, mb); err != nil {
		return nil, corruptf(name, snapHeaderSize, "snapshot file truncated inside its metadata: %v", err)
	}
	d := decoder{b: mb}
	got := decodeSnapMeta(&d)
	if d.err != nil || len(d.b) != 0 || got.Index != meta.Index || got.Term != meta.Term {
		return nil, corruptf(name, snapHeaderSize, "snapshot file does not hold the metadata of snapshot %d/%d", meta.Index, meta.Term)
	}
	return &snapReader{
		rc:      rc,
		name:    name,
		left:    int64(bodyLen) - int64(len(mb)),
		off:     snapHeaderSize + int64(len(mb)),
		crc:     crc32.Update(0, castagnoli, mb),
		wantCRC: binary.LittleEndian.Uint32(hdr[8:]),
	}, nil
}

// Read implements io.Reader.
func (r *snapReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		r.err = r.finish()
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.crc = crc32.Update(r.crc, castagnoli, p[:n])
	r.left -= int64(n)
	r.off += int64(n)
	switch {
	case err == io.EOF && r.left > 0:
		r.err = corruptf(r.name, r.off, "snapshot file truncated: %d bytes of data missing", r.left)
		return n, r.err
	case err != nil && err != io.EOF:
		r.err = fmt.Errorf("wal: read snapshot %s: %w", r.name, err)
		return n, r.err
	}
	return n, nil
}

// finish checks, once every data byte was read, that nothing follows and
// that the checksum matches.
func (r *snapReader) finish() error {
	var one [1]byte
	if n, _ := io.ReadFull(r.rc, one[:]); n != 0 {
		return corruptf(r.name, r.off, "snapshot file longer than its header says")
	}
	if r.crc != r.wantCRC {
		return corruptf(r.name, snapHeaderSize, "snapshot checksum mismatch: got %08x, want %08x", r.crc, r.wantCRC)
	}
	return io.EOF
}

// Close implements io.Closer.
func (r *snapReader) Close() error { return r.rc.Close() }

// verifySnapFile reads the snapshot file name of meta through and returns
// the size of its data, or the damage found.
func (l *Log) verifySnapFile(name string, meta *raft.SnapshotMetadata) (int64, error) {
	rc, err := l.openReader(name)
	if err != nil {
		return 0, corruptf(name, 0, "snapshot referenced by the log cannot be read: %v", err)
	}
	defer rc.Close()
	r, err := newSnapReader(rc, name, meta)
	if err != nil {
		return 0, err
	}
	size := r.left
	if _, err := io.CopyBuffer(io.Discard, r, make([]byte, 64<<10)); err != nil {
		return 0, err
	}
	return size, nil
}

// errSnapSource marks an error of the reader a snapshot's data was copied
// from, as opposed to one of the file system (which poisons the log).
type errSnapSource struct{ err error }

func (e *errSnapSource) Error() string { return "wal: reading the snapshot data: " + e.err.Error() }
func (e *errSnapSource) Unwrap() error { return e.err }

// writeSnapTemp writes the snapshot file of meta, with the data r reads up
// to io.EOF, under the name tmp and syncs it; it returns the data's size.
// On failure tmp is removed; an error of r is an *errSnapSource.
func (l *Log) writeSnapTemp(tmp string, meta *raft.SnapshotMetadata, r io.Reader) (int64, error) {
	final := tmp[:len(tmp)-len(tmpSuffix)]
	f, err := l.fs.Create(tmp)
	if err != nil {
		return 0, l.tmpFailed("write snapshot", final, tmp, "create", nil, err)
	}
	fail := func(op string, err error) (int64, error) {
		return 0, l.tmpFailed("write snapshot", final, tmp, op, f, err)
	}
	e := encoder{b: make([]byte, snapHeaderSize, snapHeaderSize+64)}
	encodeSnapMeta(&e, meta)
	crc := crc32.Update(0, castagnoli, e.b[snapHeaderSize:])
	if _, err := f.WriteAt(e.b, 0); err != nil {
		return fail("write", err)
	}
	off := int64(len(e.b))
	var size int64
	buf := make([]byte, snapCopyBuf)
	for {
		n, rerr := readFull(r, buf)
		if n > 0 {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return fail("write", err)
			}
			crc = crc32.Update(crc, castagnoli, buf[:n])
			off += int64(n)
			size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_, _ = fail("read", rerr)
			return 0, &errSnapSource{err: rerr}
		}
	}
	hdr := e.b[:snapHeaderSize]
	copy(hdr, snapMagic)
	binary.LittleEndian.PutUint32(hdr[8:], crc)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(off-snapHeaderSize))
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := f.Close(); err != nil {
		return 0, l.tmpFailed("write snapshot", final, tmp, "close", nil, err)
	}
	return size, nil
}

// readFull reads into buf until it is full or r fails; unlike
// io.ReadFull, it returns r's error as it is (io.EOF after a partial read
// too), so that a reader that fails with io.ErrUnexpectedEOF (a stream cut
// short) is never taken for one that ended.
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stage writes the snapshot file of meta from r under a temporary name of
// its own, without holding the log's lock (the data may take long to
// come), and returns its source, not installed. A file system error
// poisons the log; an error of r does not.
func (l *Log) stage(meta raft.SnapshotMetadata, r io.Reader) (*snapSource, error) {
	name := l.path(snapName(meta.Index, meta.Term))
	tmp := fmt.Sprintf("%s.%d%s", name, l.tmpSeq.Add(1), tmpSuffix)
	size, err := l.writeSnapTemp(tmp, &meta, r)
	if err != nil {
		var se *errSnapSource
		if errors.As(err, &se) {
			return nil, err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, l.poison("write snapshot", err)
	}
	return &snapSource{l: l, meta: meta, size: size, path: tmp, staged: true}, nil
}

// ReceiveSnapshot implements raft.SnapshotStore: it writes the data r reads
// to a temporary file of the log's directory, synced, and returns its
// source. Save or ApplySnapshot of a snapshot carrying that source renames
// the file into place instead of copying it. A staged file never installed
// is removed once a snapshot at its index or later is, or by the next
// Open.
func (l *Log) ReceiveSnapshot(meta raft.SnapshotMetadata, r io.Reader) (raft.SnapshotSource, error) {
	l.mu.Lock()
	err := l.usable()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	src, err := l.stage(meta, r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		l.discard(src)
		return nil, err
	}
	if l.staged == nil {
		l.staged = map[*snapSource]struct{}{}
	}
	l.staged[src] = struct{}{}
	return src, nil
}

// CreateSnapshotFrom implements raft.SnapshotStore: CreateSnapshot with the
// data read from r. The file is written and synced before the log's lock
// is taken, so that writes to the log go on meanwhile; the checks of
// CreateSnapshot are made before and again after. An error of r is
// returned wrapped and leaves the log as it was.
func (l *Log) CreateSnapshotFrom(i uint64, cs *raft.ConfState, r io.Reader) (raft.Snapshot, error) {
	l.mu.Lock()
	meta, err := l.checkCreate(i, cs)
	l.mu.Unlock()
	if err != nil {
		return raft.Snapshot{}, err
	}
	src, err := l.stage(meta, r)
	if err != nil {
		return raft.Snapshot{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.checkCreate(i, cs); err != nil {
		l.discard(src)
		return raft.Snapshot{}, err
	}
	snap := raft.Snapshot{Metadata: meta, Source: src}
	if err := l.apply(&update{snapKind: snapCreate, snap: meta}, &snap); err != nil {
		l.discard(src)
		return raft.Snapshot{}, err
	}
	return l.st.snap, nil
}

// checkCreate makes the checks of CreateSnapshot and returns the metadata
// of a snapshot at i. l.mu is held.
func (l *Log) checkCreate(i uint64, cs *raft.ConfState) (raft.SnapshotMetadata, error) {
	if err := l.usable(); err != nil {
		return raft.SnapshotMetadata{}, err
	}
	if i <= l.st.snap.Metadata.Index {
		return raft.SnapshotMetadata{}, raft.ErrSnapOutOfDate
	}
	if i > l.st.lastIndex() {
		return raft.SnapshotMetadata{}, fmt.Errorf("%w: snapshot index %d is beyond last index %d", raft.ErrUnavailable, i, l.st.lastIndex())
	}
	if i < l.st.offset() {
		return raft.SnapshotMetadata{}, raft.ErrCompacted
	}
	meta := l.st.snap.Metadata
	meta.Index = i
	meta.Term = l.st.ents[i-l.st.offset()].Term
	if cs != nil {
		meta.ConfState = *cs
	}
	return meta, nil
}

// discard removes a staged file that will not be installed. l.mu is held.
func (l *Log) discard(src *snapSource) {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.staged {
		_ = l.fs.Remove(src.path)
		src.staged = false
	}
	delete(l.staged, src)
}

// installSnapFile puts the file of snap in place under its final name,
// durably: it renames snap's own staged file, or writes one from snap's
// Source or Data. It returns the snapshot to hold: with Source and no Data
// under Options.StreamSnapshots, with Data otherwise. l.mu is held; a
// failure poisons the log.
func (l *Log) installSnapFile(snap *raft.Snapshot) (raft.Snapshot, error) {
	meta := snap.Metadata
	name := l.path(snapName(meta.Index, meta.Term))
	src, own := snap.Source.(*snapSource)
	if own && (src.l != l || src.meta.Index != meta.Index || src.meta.Term != meta.Term) {
		own = false
	}
	if own {
		src.mu.Lock()
		own = src.staged
		if own {
			if err := l.fs.Rename(src.path, name); err != nil {
				src.mu.Unlock()
				return raft.Snapshot{}, l.poison("rename snapshot", fmt.Errorf("wal: install snapshot %s in %s: %w", snapName(meta.Index, meta.Term), l.dir, err))
			}
			src.path, src.staged = name, false
			delete(l.staged, src)
		}
		src.mu.Unlock()
	}
	if !own {
		rc, _, err := snap.OpenData()
		if err != nil {
			return raft.Snapshot{}, fmt.Errorf("wal: open the data of snapshot %d/%d: %w", meta.Index, meta.Term, err)
		}
		size, err := l.writeSnapTemp(name+tmpSuffix, &meta, rc)
		_ = rc.Close()
		if err != nil {
			var se *errSnapSource
			if errors.As(err, &se) {
				return raft.Snapshot{}, err
			}
			return raft.Snapshot{}, l.poison("write snapshot", err)
		}
		if err := l.fs.Rename(name+tmpSuffix, name); err != nil {
			return raft.Snapshot{}, l.poison("rename snapshot", l.tmpFailed("write snapshot", name, name+tmpSuffix, "rename", nil, err))
		}
		src = &snapSource{l: l, meta: meta, size: size, path: name}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return raft.Snapshot{}, l.poison("sync directory", fmt.Errorf("wal: write snapshot %s: sync directory %s: %w", snapName(meta.Index, meta.Term), l.dir, err))
	}
	l.snaps = append(l.snaps, raft.SnapshotMetadata{Index: meta.Index, Term: meta.Term})
	kept := raft.Snapshot{Metadata: meta}
	switch {
	case l.opts.StreamSnapshots:
		kept.Source = src
	case snap.Source == nil:
		kept.Data = snap.Data
	default:
		data, err := l.readSnapData(name, &meta)
		if err != nil {
			return raft.Snapshot{}, l.poison("read snapshot", err)
		}
		kept.Data = data
	}
	return kept, nil
}

// readSnapData reads the data of the snapshot file name of meta into
// memory, checked.
func (l *Log) readSnapData(name string, meta *raft.SnapshotMetadata) ([]byte, error) {
	buf, err := l.fs.ReadFile(name)
	if err != nil {
		return nil, corruptf(name, 0, "snapshot referenced by the log cannot be read: %v", err)
	}
	snap, err := decodeSnapFile(name, buf)
	if err != nil {
		return nil, err
	}
	if snap.Metadata.Index != meta.Index || snap.Metadata.Term != meta.Term {
		return nil, corruptf(name, snapHeaderSize, "snapshot file holds %d/%d", snap.Metadata.Index, snap.Metadata.Term)
	}
	return snap.Data, nil
}

// pruneStaged removes the staged files of snapshots at index or before,
// which will never be installed. l.mu is held.
func (l *Log) pruneStaged(index uint64) {
	for src := range l.staged {
		if src.meta.Index <= index {
			l.discard(src)
		}
	}
}

// held returns the snapshot to hold for snap, whose file (name) is
// intact and holds size bytes of data: with Source under
// Options.StreamSnapshots, with Data otherwise.
func (l *Log) held(snap raft.Snapshot, name string, size int64) raft.Snapshot {
	if !l.opts.StreamSnapshots {
		return snap
	}
	return raft.Snapshot{Metadata: snap.Metadata, Source: &snapSource{l: l, meta: snap.Metadata, size: size, path: name}}
}
