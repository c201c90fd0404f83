//go:build linux

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

// BenchmarkAppend measures Save of one batch with its fsync, for batches of
// 1, 16 and 256 entries of 128 B and 4 KiB, against the raw limit of the
// same disk: write + fdatasync of the same payload bytes to a file
// preallocated like a segment. The two are interleaved, one raw write
// then one Save per iteration and timed apart, so that the drift of a
// shared or virtual disk hits both alike. Metrics: entries/s and MB/s of
// the log (payload bytes), raw-MB/s, and wal/raw, the ratio of the two
// throughputs.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{128, 4096} {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("size=%d/batch=%d", size, batch), func(b *testing.B) {
				benchAppend(b, size, batch)
			})
		}
	}
}

// rawFile is the reference: a preallocated file written front to back
// with write + fdatasync; a full file is replaced.
type rawFile struct {
	tb    testing.TB
	dir   string
	f     *os.File
	off   int64
	files int
}

const rawFileSize = 64 << 20

func (r *rawFile) next() {
	if r.f != nil {
		require.NoError(r.tb, r.f.Close())
		require.NoError(r.tb, os.Remove(r.f.Name()))
	}
	var err error
	r.f, err = os.OpenFile(filepath.Join(r.dir, fmt.Sprint("raw", r.files)), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(r.tb, err)
	r.files++
	require.NoError(r.tb, syscall.Fallocate(int(r.f.Fd()), 0, 0, rawFileSize))
	require.NoError(r.tb, r.f.Sync())
	r.off = 0
}

func (r *rawFile) write(buf []byte) {
	if _, err := r.f.WriteAt(buf, r.off); err != nil {
		r.tb.Fatal(err)
	}
	if err := syscall.Fdatasync(int(r.f.Fd())); err != nil {
		r.tb.Fatal(err)
	}
	r.off += int64(len(buf))
}

func benchAppend(b *testing.B, size, batch int) {
	raw := &rawFile{tb: b, dir: b.TempDir()}
	raw.next()
	defer raw.f.Close()
	rawBuf := make([]byte, size*batch)
	for i := range rawBuf {
		rawBuf[i] = byte(i)
	}

	l, err := wal.Open(b.TempDir(), wal.Options{})
	require.NoError(b, err)
	defer l.Close()
	require.NoError(b, l.Save(raft.HardState{Term: 1, Commit: 1}, nil, walSnap(1, 1, "")))
	data := make([]byte, size)
	ents := make([]raft.Entry, batch)
	next := uint64(2)
	held := 0

	var walTime, rawTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if raw.off+int64(len(rawBuf)) > rawFileSize {
			raw.next()
		}
		t0 := time.Now()
		raw.write(rawBuf)
		t1 := time.Now()
		for j := range ents {
			ents[j] = raft.Entry{Index: next, Term: 1, Data: data}
			next++
		}
		if err := l.Save(raft.HardState{Term: 1, Commit: next - 1}, ents, raft.Snapshot{}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		rawTime += t1.Sub(t0)
		walTime += t2.Sub(t1)
		// Bound the memory held (entries since the last compaction) as a
		// host that snapshots every 10 000 entries would (etcd's default
		// snapshot count); the compaction is not timed.
		if held += batch; held >= 10_000 {
			require.NoError(b, l.Compact(next-1))
			held = 0
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(n*float64(batch)/walTime.Seconds(), "entries/s")
	b.ReportMetric(n*float64(batch*size)/walTime.Seconds()/1e6, "MB/s")
	b.ReportMetric(n*float64(batch*size)/rawTime.Seconds()/1e6, "raw-MB/s")
	b.ReportMetric(rawTime.Seconds()/walTime.Seconds(), "wal/raw")
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
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(entries)/sec, "entries/s")
	b.ReportMetric(float64(bytes)/sec/1e6, "MB/s")
}
