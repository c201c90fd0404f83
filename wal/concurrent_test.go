package wal_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wal/memfs"
)

// TestConcurrentReadsDuringWrites reads while another goroutine appends,
// truncates and compacts; run with -race. Every read must see a
// consistent log: consecutive indexes from FirstIndex, terms that never
// decrease, and slices that do not change after they were returned.
func TestConcurrentReadsDuringWrites(t *testing.T) {
	l, err := wal.Open("/c", wal.Options{FS: memfs.New(), SegmentSize: 8192})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Save(raft.HardState{}, nil, walSnap(1, 1, "")))

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		next, term := uint64(2), uint64(1)
		for i := range 300 {
			if i%7 == 6 && next > 5 {
				term++
				next -= 3 // a conflicting tail
			}
			if err := l.Append(walEnts(next, next+4, term, 64)); err != nil {
				t.Error(err)
				return
			}
			next += 5
			if i%50 == 49 {
				if err := l.Compact(next - 10); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	var held [][]raft.Entry
	var copies [][]raft.Entry
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		first, err := l.FirstIndex()
		require.NoError(t, err)
		last, err := l.LastIndex()
		require.NoError(t, err)
		ents, err := l.Entries(first, last+1, ^uint64(0))
		if errors.Is(err, raft.ErrCompacted) || errors.Is(err, raft.ErrUnavailable) {
			continue // the log moved between the calls
		}
		require.NoError(t, err)
		for i := 1; i < len(ents); i++ {
			require.Equal(t, ents[i-1].Index+1, ents[i].Index)
			require.LessOrEqual(t, ents[i-1].Term, ents[i].Term)
		}
		if len(held) < 100 {
			held = append(held, ents)
			copies = append(copies, append([]raft.Entry(nil), ents...))
		}
	}
	wg.Wait()
	for i := range held {
		assert.Equal(t, copies[i], held[i], "a returned slice changed")
	}
}

// TestSaveIsOneSync checks the group commit: a Save of entries and a hard
// state costs one write, one sync and the unsynced write of the marker
// that vouches for it, whatever the batch size.
func TestSaveIsOneSync(t *testing.T) {
	fs := memfs.New()
	l, err := wal.Open("/g", wal.Options{FS: fs, SegmentSize: 1 << 20})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Save(raft.HardState{}, nil, walSnap(1, 1, "")))
	next := uint64(2)
	for _, batch := range []int{1, 16, 256} {
		before := fs.Ops()
		require.NoError(t, l.Save(raft.HardState{Term: 1, Commit: next}, walEnts(next, next+uint64(batch)-1, 1, 128), raft.Snapshot{}))
		assert.Equal(t, 3, fs.Ops()-before, "batch of %d", batch)
		next += uint64(batch)
	}
}
