package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

// streamImage returns n pseudo-random bytes of seed.
func streamImage(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n]
}

// readSource reads a snapshot's data through its Source.
func readSource(t *testing.T, snap raft.Snapshot) []byte {
	t.Helper()
	require.NotNil(t, snap.Source, "snapshot %d has no Source", snap.Metadata.Index)
	rc, err := snap.Source.Open()
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, snap.Source.Size(), int64(len(b)))
	return b
}

// openStream opens a streaming log in dir holding entries 1..20 of term 2.
func openStream(t *testing.T, dir string, opts wal.Options) *wal.Log {
	t.Helper()
	opts.StreamSnapshots = true
	l, err := wal.Open(dir, opts)
	require.NoError(t, err)
	if last, _ := l.LastIndex(); last == 0 {
		require.NoError(t, l.Save(raft.HardState{Term: 2, Commit: 20}, walEnts(1, 20, 2, 16), raft.Snapshot{}))
	}
	return l
}

// tmpFiles lists the temporary files of dir.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	return m
}

// failingReader returns data, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// TestStreamSnapshotCreateFromAndReopen checks that CreateSnapshotFrom
// stores the image a reader yields, that a streaming log hands it out
// through Source with an empty Data, and that it survives Open, streaming
// or not.
func TestStreamSnapshotCreateFromAndReopen(t *testing.T) {
	dir := t.TempDir()
	l := openStream(t, dir, wal.Options{})
	img := streamImage(1, 3<<20+17) // more than one copy buffer
	cs := raft.ConfState{Voters: []uint64{1, 2, 3}, Addresses: map[uint64]string{1: "a:1", 2: "b:2", 3: "c:3"}}
	snap, err := l.CreateSnapshotFrom(15, &cs, bytes.NewReader(img))
	require.NoError(t, err)
	assert.Equal(t, raft.SnapshotMetadata{Index: 15, Term: 2, ConfState: cs}, snap.Metadata)
	assert.Empty(t, snap.Data)
	assert.Equal(t, img, readSource(t, snap))
	held, err := l.Snapshot()
	require.NoError(t, err)
	assert.Empty(t, held.Data)
	assert.Equal(t, img, readSource(t, held))
	assert.Empty(t, tmpFiles(t, dir))
	require.NoError(t, l.Close())

	l = openStream(t, dir, wal.Options{})
	held, err = l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, snap.Metadata, held.Metadata)
	assert.Equal(t, img, readSource(t, held))
	require.NoError(t, l.Close())

	l, err = wal.Open(dir, wal.Options{})
	require.NoError(t, err)
	held, err = l.Snapshot()
	require.NoError(t, err)
	assert.Nil(t, held.Source)
	assert.Equal(t, img, held.Data)
	require.NoError(t, l.Close())
}

// TestCreateSnapshotFromReaderFails checks that a state machine reader
// that fails aborts the snapshot: the error is returned, the held
// snapshot stays, nothing is left on disk, and the log goes on.
func TestCreateSnapshotFromReaderFails(t *testing.T) {
	for _, stream := range []bool{false, true} {
		dir := t.TempDir()
		l, err := wal.Open(dir, wal.Options{StreamSnapshots: stream})
		require.NoError(t, err)
		require.NoError(t, l.Save(raft.HardState{Term: 2, Commit: 20}, walEnts(1, 20, 2, 16), raft.Snapshot{}))
		_, err = l.CreateSnapshotFrom(5, nil, strings.NewReader("five"))
		require.NoError(t, err)
		boom := errors.New("state machine failed")
		_, err = l.CreateSnapshotFrom(10, nil, &failingReader{r: bytes.NewReader(streamImage(2, 2<<20)), err: boom})
		require.ErrorIs(t, err, boom)
		held, err := l.Snapshot()
		require.NoError(t, err)
		assert.Equal(t, uint64(5), held.Metadata.Index)
		rc, _, err := held.OpenData()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		assert.Equal(t, "five", string(b))
		assert.Empty(t, tmpFiles(t, dir))
		snaps, _ := filepath.Glob(filepath.Join(dir, "*.snap"))
		assert.Len(t, snaps, 1)
		_, err = l.CreateSnapshotFrom(10, nil, strings.NewReader("ten"))
		require.NoError(t, err, "stream=%v", stream)
		require.NoError(t, l.Close())
	}
}

// TestReceiveSnapshotInstalledBySave checks that a snapshot received with
// ReceiveSnapshot is installed by Save of a snapshot carrying its source,
// without a copy, that the source keeps reading after the move, and that
// the log restarts from it.
func TestReceiveSnapshotInstalledBySave(t *testing.T) {
	dir := t.TempDir()
	l := openStream(t, dir, wal.Options{})
	img := streamImage(3, 1<<20+5)
	meta := raft.SnapshotMetadata{Index: 50, Term: 4, ConfState: raft.ConfState{Voters: []uint64{1, 2}}}
	src, err := l.ReceiveSnapshot(meta, bytes.NewReader(img))
	require.NoError(t, err)
	assert.Len(t, tmpFiles(t, dir), 1, "staged under a temporary name")
	held, err := l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, uint64(0), held.Metadata.Index, "not installed before Save")

	require.NoError(t, l.Save(raft.HardState{Term: 4, Commit: 50}, nil, raft.Snapshot{Metadata: meta, Source: src}))
	assert.Empty(t, tmpFiles(t, dir))
	assert.Equal(t, img, readSource(t, raft.Snapshot{Source: src}))
	held, err = l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, meta, held.Metadata)
	assert.Equal(t, img, readSource(t, held))
	last, _ := l.LastIndex()
	assert.Equal(t, uint64(50), last)
	require.NoError(t, l.Close())

	l = openStream(t, dir, wal.Options{})
	held, err = l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, img, readSource(t, held))
	require.NoError(t, l.Close())
}

// TestReceiveSnapshotRefusesBadStream checks that a stream that fails
// (truncated or corrupt, as the transport reports it) leaves nothing
// behind and changes nothing.
func TestReceiveSnapshotRefusesBadStream(t *testing.T) {
	dir := t.TempDir()
	l := openStream(t, dir, wal.Options{})
	meta := raft.SnapshotMetadata{Index: 50, Term: 4}
	// A cut stream fails with io.ErrUnexpectedEOF, which io.ReadFull also
	// returns for a short last read: it must not pass for the end.
	for _, bad := range []error{errors.New("checksum mismatch"), io.ErrUnexpectedEOF} {
		_, err := l.ReceiveSnapshot(meta, &failingReader{r: bytes.NewReader(streamImage(4, 3<<20+5)), err: bad})
		require.ErrorIs(t, err, bad)
		assert.Empty(t, tmpFiles(t, dir))
	}
	held, err := l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, uint64(0), held.Metadata.Index)
	last, _ := l.LastIndex()
	assert.Equal(t, uint64(20), last)
	require.NoError(t, l.Append(walEnts(21, 21, 2, 16)), "the log goes on")
	require.NoError(t, l.Close())
}

// TestReceiveSnapshotStagedPruned checks that staged snapshots that are
// never installed are removed once a later snapshot is.
func TestReceiveSnapshotStagedPruned(t *testing.T) {
	dir := t.TempDir()
	l := openStream(t, dir, wal.Options{})
	_, err := l.ReceiveSnapshot(raft.SnapshotMetadata{Index: 30, Term: 3}, strings.NewReader("thirty"))
	require.NoError(t, err)
	src, err := l.ReceiveSnapshot(raft.SnapshotMetadata{Index: 90, Term: 3}, strings.NewReader("ninety"))
	require.NoError(t, err)
	assert.Len(t, tmpFiles(t, dir), 2)
	// A snapshot from elsewhere (Data in memory) at 40: the staged one at
	// 30 is obsolete, the one at 90 is not.
	require.NoError(t, l.Save(raft.HardState{Term: 3, Commit: 40}, nil, walSnap(40, 3, "forty")))
	assert.Len(t, tmpFiles(t, dir), 1)
	held, err := l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, "forty", string(readSource(t, held)))
	require.NoError(t, l.Save(raft.HardState{Term: 3, Commit: 90}, nil, raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 90, Term: 3}, Source: src}))
	assert.Empty(t, tmpFiles(t, dir))
	require.NoError(t, l.Close())
}

// TestStreamSnapshotForeignSource checks that Save copies a snapshot
// whose Source is not the log's own.
func TestStreamSnapshotForeignSource(t *testing.T) {
	dir := t.TempDir()
	other := openStream(t, t.TempDir(), wal.Options{})
	defer other.Close()
	img := streamImage(5, 100<<10)
	snap, err := other.CreateSnapshotFrom(20, &raft.ConfState{Voters: []uint64{1}}, bytes.NewReader(img))
	require.NoError(t, err)
	l := openStream(t, dir, wal.Options{})
	snap.Metadata.Index, snap.Metadata.Term = 60, 5
	require.NoError(t, l.Save(raft.HardState{Term: 5, Commit: 60}, nil, snap))
	held, err := l.Snapshot()
	require.NoError(t, err)
	assert.NotEqual(t, snap.Source, held.Source)
	assert.Equal(t, img, readSource(t, held))
	require.NoError(t, l.Close())
}

// TestStreamSnapshotDetectsDamage checks that a snapshot file damaged on
// disk (a flipped byte, a cut) fails the reader with ErrCorrupt instead of
// io.EOF, and fails Open.
func TestStreamSnapshotDetectsDamage(t *testing.T) {
	for _, damage := range []string{"flip", "truncate", "extend"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			l := openStream(t, dir, wal.Options{})
			img := streamImage(6, 2<<20)
			snap, err := l.CreateSnapshotFrom(10, nil, bytes.NewReader(img))
			require.NoError(t, err)
			names, _ := filepath.Glob(filepath.Join(dir, "*.snap"))
			require.Len(t, names, 1)
			f, err := os.OpenFile(names[0], os.O_RDWR, 0)
			require.NoError(t, err)
			fi, err := f.Stat()
			require.NoError(t, err)
			switch damage {
			case "flip":
				_, err = f.WriteAt([]byte{0xFF ^ img[1<<20]}, fi.Size()-1<<20)
			case "truncate":
				err = f.Truncate(fi.Size() - 100)
			case "extend":
				_, err = f.WriteAt([]byte("trailing"), fi.Size())
			}
			require.NoError(t, err)
			require.NoError(t, f.Close())

			rc, err := snap.Source.Open()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				_ = rc.Close()
			}
			require.ErrorIs(t, err, wal.ErrCorrupt)
			require.NoError(t, l.Close())
			_, err = wal.Open(dir, wal.Options{StreamSnapshots: true})
			require.ErrorIs(t, err, wal.ErrCorrupt)
		})
	}
}

// TestStreamSnapshotMemFS checks the streaming path on a file system
// without ReaderFS (memfs), through a restart.
func TestStreamSnapshotMemFS(t *testing.T) {
	fs := memfs.New()
	l := openStream(t, "/d", wal.Options{FS: fs})
	img := streamImage(7, 300<<10)
	_, err := l.CreateSnapshotFrom(12, nil, bytes.NewReader(img))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	l = openStream(t, "/d", wal.Options{FS: fs})
	held, err := l.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, img, readSource(t, held))
	require.NoError(t, l.Close())
}
