package wal_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/storagetest"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

// reopenable is a Log that the conformance suite can close and reopen.
type reopenable struct {
	*wal.Log
	dir  string
	opts wal.Options
}

func (r *reopenable) Reopen(t *testing.T) storagetest.Storage {
	t.Helper()
	require.NoError(t, r.Log.Close())
	l, err := wal.Open(r.dir, r.opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return &reopenable{Log: l, dir: r.dir, opts: r.opts}
}

func openReopenable(t *testing.T, opts wal.Options) storagetest.Storage {
	t.Helper()
	dir := t.TempDir()
	if opts.FS != nil {
		dir = "/wal"
	}
	l, err := wal.Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return &reopenable{Log: l, dir: dir, opts: opts}
}

func TestConformanceOS(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Storage {
		return openReopenable(t, wal.Options{SegmentSize: 4096})
	})
}

func TestConformanceMemFS(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Storage {
		return openReopenable(t, wal.Options{FS: memfs.New(), SegmentSize: 4096})
	})
}
