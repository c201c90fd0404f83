package wal_test

import (
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
)

// walLiveHeap collects garbage and returns the bytes of heap objects that
// survived.
func walLiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestReopenedLogHeap checks that a log reopened from disk holds about as
// much memory as the one that wrote it: its recovered entries must not keep
// alive the buffers replay read the segments into (a whole preallocated
// segment each, 64 MiB by default, for a few hundred kilobytes of entries).
// The test writes 20 000 entries of 32 bytes into the default segment size,
// measures the live heap of the writing log, closes it, reopens the
// directory and measures again. The bound is generous (twice the writer's
// heap plus 1 MiB) because the two logs grow their entry slices
// differently; a pinned segment exceeds it many times over. It does not run
// in parallel with other tests, which would move the heap under it.
func TestReopenedLogHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 64 MiB segment")
	}
	const (
		batches = 100
		batch   = 200
		size    = 32
	)
	dir := t.TempDir()
	opts := wal.Options{}

	base := walLiveHeap()
	l, err := wal.Open(dir, opts)
	require.NoError(t, err)
	require.NoError(t, l.Save(raft.HardState{}, nil, walSnap(1, 1, "")))
	for i := range uint64(batches) {
		lo := 2 + i*batch
		hi := lo + batch - 1
		require.NoError(t, l.Save(raft.HardState{Term: 1, Commit: hi}, walEnts(lo, hi, 1, size), raft.Snapshot{}))
	}
	h := walLiveHeap()
	fresh := h - min(base, h)
	runtime.KeepAlive(l)
	require.NoError(t, l.Close())
	l = nil

	base = walLiveHeap()
	l, err = wal.Open(dir, opts)
	require.NoError(t, err)
	defer l.Close()
	h = walLiveHeap()
	reopened := h - min(base, h)
	runtime.KeepAlive(l)
	last, err := l.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(1+batches*batch), last)

	held := uint64(batches * batch * (48 + size))
	t.Logf("entries held: %d B (48 B Entry + %d B data each); live heap of the log that wrote them: %d B; of the log reopened: %d B",
		held, size, fresh, reopened)
	require.LessOrEqual(t, reopened, 2*fresh+1<<20,
		"the reopened log holds %d B of heap, the one that wrote the same entries %d B: replay keeps its read buffers alive", reopened, fresh)
}
