package rafttest

import (
	"math/rand/v2"
	"testing"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func storageEntries(lo, hi, term uint64) []raft.Entry {
	var ents []raft.Entry
	for i := lo; i <= hi; i++ {
		ents = append(ents, raft.Entry{Index: i, Term: term, Data: []byte{byte(i)}})
	}
	return ents
}

// newSyncedStorage returns a disk holding a bootstrap snapshot and entries
// 2..5 of term 1 with commit 3, all synced.
func newSyncedStorage(t testing.TB) *Storage {
	t.Helper()
	d := NewStorage()
	require.NoError(t, d.ApplySnapshot(raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: 1, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1}}}}))
	require.NoError(t, d.Append(storageEntries(2, 5, 1)))
	require.NoError(t, d.SetHardState(raft.HardState{Term: 1, Vote: 1, Commit: 3}))
	require.NoError(t, d.Sync())
	return d
}

func TestStorageCrash(t *testing.T) {
	tests := []struct {
		name string
		// write makes unsynced writes after the synced state.
		write func(t *testing.T, d *Storage)
		sync  bool
		torn  bool
		// check runs on the storage after the crash.
		check func(t *testing.T, d *Storage, lost int)
	}{
		{
			name: "synced writes survive",
			write: func(t *testing.T, d *Storage) {
				require.NoError(t, d.Append(storageEntries(6, 7, 2)))
				require.NoError(t, d.SetHardState(raft.HardState{Term: 2, Vote: 1, Commit: 7}))
			},
			sync: true,
			check: func(t *testing.T, d *Storage, lost int) {
				assert.Zero(t, lost)
				last, _ := d.LastIndex()
				assert.Equal(t, uint64(7), last)
				assert.Equal(t, raft.HardState{Term: 2, Vote: 1, Commit: 7}, d.HardState())
			},
		},
		{
			name: "unsynced writes leave a prefix",
			write: func(t *testing.T, d *Storage) {
				require.NoError(t, d.Append(storageEntries(6, 7, 2)))
				require.NoError(t, d.SetHardState(raft.HardState{Term: 2, Vote: 1, Commit: 7}))
			},
			check: func(t *testing.T, d *Storage, lost int) {
				last, _ := d.LastIndex()
				hs := d.HardState()
				switch lost {
				case 0:
					assert.Equal(t, uint64(7), last)
					assert.Equal(t, uint64(2), hs.Term)
				case 1:
					assert.Equal(t, uint64(7), last, "the entries were written before the hard state")
					assert.Equal(t, uint64(1), hs.Term)
				case 2:
					assert.Equal(t, uint64(5), last)
					assert.Equal(t, uint64(1), hs.Term)
				default:
					t.Fatalf("lost %d of 2 writes", lost)
				}
			},
		},
		{
			name: "a torn write keeps a prefix of its entries",
			write: func(t *testing.T, d *Storage) {
				require.NoError(t, d.Append(storageEntries(6, 10, 2)))
			},
			torn: true,
			check: func(t *testing.T, d *Storage, lost int) {
				last, _ := d.LastIndex()
				assert.GreaterOrEqual(t, last, uint64(5))
				assert.LessOrEqual(t, last, uint64(10))
				if lost == 0 {
					assert.Equal(t, uint64(10), last)
				}
				if last > 5 {
					term, err := d.Term(last)
					require.NoError(t, err)
					assert.Equal(t, uint64(2), term)
				}
				assert.Equal(t, raft.HardState{Term: 1, Vote: 1, Commit: 3}, d.HardState())
			},
		},
		{
			name: "a snapshot syncs what came before it and raises the commit index",
			write: func(t *testing.T, d *Storage) {
				require.NoError(t, d.SetHardState(raft.HardState{Term: 1, Vote: 1, Commit: 4}))
				require.NoError(t, d.CreateSnapshot(4, &raft.ConfState{Voters: []uint64{1}}, []byte("state")))
				require.NoError(t, d.Compact(4))
				require.NoError(t, d.Append(storageEntries(6, 6, 1)))
			},
			check: func(t *testing.T, d *Storage, lost int) {
				assert.LessOrEqual(t, lost, 1)
				snap, err := d.Snapshot()
				require.NoError(t, err)
				assert.Equal(t, uint64(4), snap.Metadata.Index)
				assert.Equal(t, []byte("state"), snap.Data)
				assert.GreaterOrEqual(t, d.HardState().Commit, uint64(4))
				first, _ := d.FirstIndex()
				assert.Equal(t, uint64(5), first)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[int]bool{}
			for seed := uint64(0); seed < 64; seed++ {
				d := newSyncedStorage(t)
				tt.write(t, d)
				if tt.sync {
					require.NoError(t, d.Sync())
				}
				lost, err := d.Crash(rand.New(rand.NewPCG(seed, 1)), tt.torn)
				require.NoError(t, err)
				seen[lost] = true
				tt.check(t, d, lost)
				assert.Zero(t, d.Unsynced())
				// The crashed storage starts a node.
				_, err = raft.NewRawNode(raft.Config{ID: 1, Storage: d})
				require.NoError(t, err)
			}
			if !tt.sync {
				assert.Greater(t, len(seen), 1, "crashes always lost the same number of writes: %v", seen)
			}
		})
	}
}
