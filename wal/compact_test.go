package wal_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
)

// walDirFiles counts the segment and snapshot files in dir.
func walDirFiles(t testing.TB, dir string) (segs, snaps []string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, de := range des {
		switch filepath.Ext(de.Name()) {
		case ".wal":
			segs = append(segs, de.Name())
		case ".snap":
			snaps = append(snaps, de.Name())
		default:
			require.Equal(t, "LOCK", de.Name(), "unexpected file")
		}
	}
	return segs, snaps
}

func TestCompactionDeletesSegmentsAndSnapshots(t *testing.T) {
	dir := t.TempDir()
	opts := wal.Options{SegmentSize: 4096, KeepSnapshots: 2}
	l, err := wal.Open(dir, opts)
	require.NoError(t, err)
	require.NoError(t, l.Save(raft.HardState{}, nil, walSnap(1, 1, "")))
	// About two batches per segment: 200 entries make ~20 segments.
	for lo := uint64(2); lo < 202; lo += 10 {
		require.NoError(t, l.Save(raft.HardState{Term: 2, Commit: lo + 9}, walEnts(lo, lo+9, 2, 150), raft.Snapshot{}))
	}
	segs, snaps := walDirFiles(t, dir)
	require.GreaterOrEqual(t, len(segs), 10)
	require.Len(t, snaps, 1)

	tests := []struct {
		name string
		at   uint64
		// maxSegs bounds the segments left: those holding entries after
		// the compaction point (about two batches each) plus the active one.
		maxSegs   int
		wantSnaps int
	}{
		{name: "first segment", at: 21, maxSegs: len(segs) - 1, wantSnaps: 2},
		{name: "middle", at: 120, maxSegs: 6, wantSnaps: 2},
		{name: "everything", at: 201, maxSegs: 1, wantSnaps: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.CreateSnapshot(tt.at, nil, []byte("app"))
			require.NoError(t, err)
			require.NoError(t, l.Compact(tt.at))
			segs, snaps := walDirFiles(t, dir)
			assert.LessOrEqual(t, len(segs), tt.maxSegs, "segments left: %v", segs)
			assert.Len(t, snaps, tt.wantSnaps, "snapshot files: %v", snaps)
			assert.Contains(t, snaps, hex16(tt.at)+"-"+hex16(2)+".snap", "the new snapshot is kept")
			want := walObserve(t, l)
			assert.Equal(t, tt.at+1, want.First)
			require.NoError(t, l.Close())
			l, err = wal.Open(dir, opts)
			require.NoError(t, err)
			assert.Equal(t, want, walObserve(t, l), "reopened after compaction")
		})
	}
	// The log goes on after compacting everything.
	require.NoError(t, l.Append(walEnts(202, 210, 3, 100)))
	want := walObserve(t, l)
	require.NoError(t, l.Close())
	l, err = wal.Open(dir, opts)
	require.NoError(t, err)
	assert.Equal(t, want, walObserve(t, l))
	require.NoError(t, l.Close())
}

// hex16 formats v as the 16 hex digits of file names.
func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b)
}

func TestApplySnapshotDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	opts := wal.Options{SegmentSize: 4096, KeepSnapshots: 1}
	l, err := wal.Open(dir, opts)
	require.NoError(t, err)
	require.NoError(t, l.Save(raft.HardState{}, nil, walSnap(1, 1, "")))
	for lo := uint64(2); lo < 102; lo += 10 {
		require.NoError(t, l.Save(raft.HardState{Term: 2, Commit: lo}, walEnts(lo, lo+9, 2, 150), raft.Snapshot{}))
	}
	require.NoError(t, l.Save(raft.HardState{Term: 3, Commit: 500}, nil, walSnap(500, 3, "leader's state")))
	segs, snaps := walDirFiles(t, dir)
	assert.Len(t, segs, 1, "only the active segment is left: %v", segs)
	assert.Equal(t, []string{hex16(500) + "-" + hex16(3) + ".snap"}, snaps)
	want := walObserve(t, l)
	require.NoError(t, l.Close())
	l, err = wal.Open(dir, opts)
	require.NoError(t, err)
	assert.Equal(t, want, walObserve(t, l))
	assert.Equal(t, []byte("leader's state"), want.Snap.Data)
	require.NoError(t, l.Close())
}

func TestDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, wal.Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	_, err = wal.Open(dir, wal.Options{SegmentSize: 1 << 20})
	require.ErrorIs(t, err, wal.ErrLocked)
	assert.Contains(t, err.Error(), dir)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Append(walEnts(1, 1, 1, 1)), wal.ErrClosed)
	l, err = wal.Open(dir, wal.Options{SegmentSize: 1 << 20})
	require.NoError(t, err, "the lock is released by Close")
	require.NoError(t, l.Close())
}

func TestOpenOptions(t *testing.T) {
	tests := []struct {
		name string
		opts wal.Options
		want string
	}{
		{name: "tiny segments", opts: wal.Options{SegmentSize: 100}, want: "SegmentSize 100"},
		{name: "negative snapshots", opts: wal.Options{KeepSnapshots: -1}, want: "KeepSnapshots -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wal.Open(t.TempDir(), tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
