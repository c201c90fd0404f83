package wal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
)

// BenchmarkAppend measures Save of one batch with its fsync, for batch
// sizes 1, 16 and 256 of 128 B and 4 KiB entries, next to the raw limit of
// the same disk: a loop of write + fdatasync of the same payload bytes to a
// preallocated file. Compare the "raw" and "wal" lines of each case.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{128, 4096} {
		for _, batch := range []int{1, 16, 256} {
			name := fmt.Sprintf("size=%d/batch=%d", size, batch)
			b.Run(name+"/raw", func(b *testing.B) { benchRaw(b, batch*size, batch) })
			b.Run(name+"/wal", func(b *testing.B) { benchWal(b, size, batch) })
		}
	}
}

func reportRate(b *testing.B, entries, bytes int, elapsed time.Duration) {
	sec := elapsed.Seconds()
	b.ReportMetric(float64(entries)/sec, "entries/s")
	b.ReportMetric(float64(bytes)/sec/1e6, "MB/s")
}

func benchRaw(b *testing.B, n, batch int) {
	// Like the log's segments, the file is preallocated with fallocate
	// and written front to back; a full file is replaced (untimed).
	const fileSize = 64 << 20
	dir := b.TempDir()
	var f *os.File
	files := 0
	newFile := func() {
		if f != nil {
			require.NoError(b, f.Close())
		}
		var err error
		f, err = os.OpenFile(filepath.Join(dir, fmt.Sprint("raw", files)), os.O_RDWR|os.O_CREATE, 0o644)
		require.NoError(b, err)
		files++
		require.NoError(b, syscall.Fallocate(int(f.Fd()), 0, 0, fileSize))
		require.NoError(b, f.Sync())
	}
	newFile()
	defer func() { _ = f.Close() }()
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i)
	}
	var off int64
	var elapsed time.Duration
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if off+int64(n) > fileSize {
			elapsed += time.Since(start)
			b.StopTimer()
			newFile()
			off = 0
			b.StartTimer()
			start = time.Now()
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		off += int64(n)
	}
	elapsed += time.Since(start)
	reportRate(b, b.N*batch, b.N*n, elapsed)
}

func benchWal(b *testing.B, size, batch int) {
	l, err := wal.Open(b.TempDir(), wal.Options{})
	require.NoError(b, err)
	defer l.Close()
	require.NoError(b, l.Save(raft.HardState{Term: 1, Commit: 1}, nil, walSnap(1, 1, "")))
	data := make([]byte, size)
	ents := make([]raft.Entry, batch)
	next := uint64(2)
	var held int
	b.ResetTimer()
	var elapsed time.Duration
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := range ents {
			ents[j] = raft.Entry{Index: next, Term: 1, Data: data}
			next++
		}
		if err := l.Save(raft.HardState{Term: 1, Commit: next - 1}, ents, raft.Snapshot{}); err != nil {
			b.Fatal(err)
		}
		// Bound the memory held (entries since the last compaction) as a
		// host that snapshots every 10 000 entries would (etcd's default
		// snapshot count); the compaction itself is not timed.
		if held += batch; held >= 10_000 {
			elapsed += time.Since(start)
			b.StopTimer()
			require.NoError(b, l.Compact(next-1))
			held = 0
			b.StartTimer()
			start = time.Now()
		}
	}
	elapsed += time.Since(start)
	reportRate(b, b.N*batch, b.N*batch*size, elapsed)
}

// walFill writes n entries of size bytes in batches of 1000 to a new log
// in dir.
func walFill(tb testing.TB, dir string, n, size int) {
	tb.Helper()
	l, err := wal.Open(dir, wal.Options{})
	require.NoError(tb, err)
	require.NoError(tb, l.Save(raft.HardState{Term: 1, Commit: 1}, nil, walSnap(1, 1, "")))
	data := make([]byte, size)
	next := uint64(2)
	for next < uint64(n)+2 {
		ents := make([]raft.Entry, 0, 1000)
		for len(ents) < cap(ents) && next < uint64(n)+2 {
			ents = append(ents, raft.Entry{Index: next, Term: 1, Data: data})
			next++
		}
		require.NoError(tb, l.Save(raft.HardState{Term: 1, Commit: next - 1}, ents, raft.Snapshot{}))
	}
	require.NoError(tb, l.Close())
}

// BenchmarkOpen1M measures Open of a log of one million 128-byte entries
// (about 150 MB in three segments): the restart time of such a node.
func BenchmarkOpen1M(b *testing.B) {
	dir := b.TempDir()
	walFill(b, dir, 1_000_000, 128)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := wal.Open(dir, wal.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		last, _ := l.LastIndex()
		require.Equal(b, uint64(1_000_001), last)
		require.NoError(b, l.Close())
		b.StartTimer()
	}
}

// BenchmarkEntriesReopened measures Entries reads (1 MiB pages) from a
// reopened log of 100 000 128-byte entries.
func BenchmarkEntriesReopened(b *testing.B) {
	dir := b.TempDir()
	const n = 100_000
	walFill(b, dir, n, 128)
	l, err := wal.Open(dir, wal.Options{})
	require.NoError(b, err)
	defer l.Close()
	b.ResetTimer()
	lo := uint64(2)
	var bytes, entries int
	start := time.Now()
	for i := 0; i < b.N; i++ {
		ents, err := l.Entries(lo, n+2, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range ents {
			bytes += len(e.Data)
		}
		entries += len(ents)
		lo = ents[len(ents)-1].Index + 1
		if lo >= n+2 {
			lo = 2
		}
	}
	reportRate(b, entries, bytes, time.Since(start))
}
