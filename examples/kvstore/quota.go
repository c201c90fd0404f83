package main

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"

	"github.com/keelraft/raft/wal"
)

// quotaFS is a wal.FS whose writes fail with ENOSPC once the bytes written
// through it in this process would exceed a budget: a full disk, for the
// tests (--test-disk-quota-bytes).
type quotaFS struct {
	wal.FS
	left *atomic.Int64
}

func newQuotaFS(fs wal.FS, budget int64) *quotaFS {
	q := &quotaFS{FS: fs, left: new(atomic.Int64)}
	q.left.Store(budget)
	return q
}

// spend takes n bytes from the budget, or fails with ENOSPC (taking none).
func (q *quotaFS) spend(name string, n int64) error {
	for {
		left := q.left.Load()
		if n > left {
			return fmt.Errorf("write %s: %w (test disk quota)", name, syscall.ENOSPC)
		}
		if q.left.CompareAndSwap(left, left-n) {
			return nil
		}
	}
}

// OpenReader implements wal.ReaderFS, so that snapshot files stream
// (reads spend nothing): through the wrapped FS if it can, else from
// ReadFile.
func (q *quotaFS) OpenReader(name string) (io.ReadCloser, error) {
	if r, ok := q.FS.(wal.ReaderFS); ok {
		return r.OpenReader(name)
	}
	b, err := q.FS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (q *quotaFS) Create(name string) (wal.File, error) {
	f, err := q.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &quotaFile{File: f, q: q, name: name}, nil
}

func (q *quotaFS) OpenRW(name string) (wal.File, error) {
	f, err := q.FS.OpenRW(name)
	if err != nil {
		return nil, err
	}
	return &quotaFile{File: f, q: q, name: name}, nil
}

type quotaFile struct {
	wal.File
	q    *quotaFS
	name string
}

func (f *quotaFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.q.spend(f.name, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// Allocate is charged nothing: preallocated space is charged as it is
// written. It fails once the budget is spent, as on a full disk.
func (f *quotaFile) Allocate(size int64) error {
	if f.q.left.Load() <= 0 {
		return fmt.Errorf("allocate %s: %w (test disk quota)", f.name, syscall.ENOSPC)
	}
	return f.File.Allocate(size)
}
