package wal_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

// faultFS is a memfs.FS whose files can fail preallocation (or fall back
// to a sparse file) and whose snapshot files can fail their writes.
type faultFS struct {
	*memfs.FS
	allocErr    error
	allocSparse bool
	failWrites  error
}

func newFaultFS() *faultFS { return &faultFS{FS: memfs.New()} }

func (f *faultFS) Create(name string) (wal.File, error) {
	file, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

type faultFile struct {
	wal.File
	fs   *faultFS
	name string
}

func (f *faultFile) Allocate(size int64) error {
	if f.fs.allocErr == nil {
		return f.File.Allocate(size)
	}
	if !f.fs.allocSparse {
		return f.fs.allocErr
	}
	if err := f.File.Allocate(size); err != nil {
		return err
	}
	return fmt.Errorf("%w: %v", wal.ErrNotPreallocated, f.fs.allocErr)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.failWrites != nil && strings.HasSuffix(f.name, ".snap.tmp") {
		return 0, f.fs.failWrites
	}
	return f.File.WriteAt(p, off)
}

func openObservedExt(dir string, opts wal.Options, level zapcore.Level) (*wal.Log, *observer.ObservedLogs, error) {
	core, logs := observer.New(level)
	opts.Logger = zap.New(core)
	l, err := wal.Open(dir, opts)
	return l, logs, err
}

// TestTornWriteAfterPowerLoss: a Save interrupted by a power loss (its
// write partly on disk, its sync not done) is cut away silently but for
// an INFO log, without the Recovering flag.
func TestTornWriteAfterPowerLoss(t *testing.T) {
	infos := 0
	for seed := uint64(0); seed < 20; seed++ {
		fs := newFaultFS()
		l, err := wal.Open("/d", wal.Options{FS: fs, SegmentSize: 1 << 20})
		require.NoError(t, err)
		require.NoError(t, l.Save(raft.HardState{Term: 1, Commit: 1}, []raft.Entry{{Index: 1, Term: 1}}, raft.Snapshot{}))
		fs.CrashAfter(1) // the write of the next Save happens, not its sync
		big := []raft.Entry{{Index: 2, Term: 1, Data: []byte(strings.Repeat("x", 4000))}}
		require.Error(t, l.Save(raft.HardState{Term: 1, Commit: 2}, big, raft.Snapshot{}))
		fs.Restart(rand.New(rand.NewPCG(seed, 7)))
		l, logs, err := openObservedExt("/d", wal.Options{FS: fs, SegmentSize: 1 << 20}, zap.InfoLevel)
		require.NoError(t, err)
		hs := l.HardState()
		assert.False(t, hs.Recovering)
		assert.Nil(t, l.Salvaged())
		assert.Empty(t, logs.FilterLevelExact(zap.WarnLevel).All())
		if n := logs.FilterMessageSnippet("torn write").Len(); n > 0 {
			infos++
			last, _ := l.LastIndex()
			assert.Equal(t, uint64(1), last)
		}
		require.NoError(t, l.Close())
	}
	assert.Greater(t, infos, 0, "some seed should have torn the write")
}

// TestSegmentCreationFailureNamesRealFiles: when a new segment cannot be
// made (a full disk), the error names the segment and the directory, and
// the temporary file it mentions is gone.
func TestSegmentCreationFailureNamesRealFiles(t *testing.T) {
	fs := newFaultFS()
	l, err := wal.Open("/d", wal.Options{FS: fs, SegmentSize: 4096})
	require.NoError(t, err)
	fs.allocErr = syscall.ENOSPC
	var serr error
	for i := uint64(1); i < 100 && serr == nil; i++ {
		serr = l.Append([]raft.Entry{{Index: i, Term: 1, Data: make([]byte, 500)}})
	}
	require.ErrorIs(t, serr, syscall.ENOSPC)
	msg := serr.Error()
	assert.Contains(t, msg, "0000000000000002.wal in /d")
	assert.Contains(t, msg, "was removed")
	assert.False(t, fs.HasSuffix(".tmp"), "no temporary file is left: %v", fs.Names())

	fs2 := newFaultFS()
	l2, err := wal.Open("/s", wal.Options{FS: fs2, SegmentSize: 4096})
	require.NoError(t, err)
	fs2.allocErr = nil
	fs2.failWrites = syscall.ENOSPC
	err = l2.ApplySnapshot(raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 3, Term: 1}, Data: []byte("s")})
	require.ErrorIs(t, err, syscall.ENOSPC)
	assert.Contains(t, err.Error(), "0000000000000003-0000000000000001.snap in /s")
	assert.False(t, fs2.HasSuffix(".tmp"), "no temporary file is left: %v", fs2.Names())
}

// TestPreallocationFailureWarnsOnce: segments that cannot be preallocated
// are logged once per Log, not per segment.
func TestPreallocationFailureWarnsOnce(t *testing.T) {
	fs := newFaultFS()
	fs.allocErr = errors.New("fallocate: operation not supported")
	fs.allocSparse = true
	l, logs, err := openObservedExt("/p", wal.Options{FS: fs, SegmentSize: 4096}, zap.WarnLevel)
	require.NoError(t, err)
	for i := uint64(1); i <= 40; i++ {
		require.NoError(t, l.Append([]raft.Entry{{Index: i, Term: 1, Data: make([]byte, 500)}}))
	}
	require.NoError(t, l.Close())
	assert.Greater(t, strings.Count(strings.Join(fs.Names(), " "), ".wal"), 3)
	require.Equal(t, 1, logs.FilterMessageSnippet("preallocate").Len())
	l, err = wal.Open("/p", wal.Options{FS: fs, SegmentSize: 4096})
	require.NoError(t, err, "sparse segments recover")
	require.NoError(t, l.Close())
}
