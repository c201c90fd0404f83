package wal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/wal"
)

// TestIdentityPersists: Open of an empty directory draws an incarnation and
// says it created the directory; the identity survives a reopen and a
// compaction that deletes the segment it was first written to.
func TestIdentityPersists(t *testing.T) {
	dir := t.TempDir()
	opts := wal.Options{SegmentSize: 4096, ClusterID: 0xc1, NodeID: 3}
	l, err := wal.Open(dir, opts)
	require.NoError(t, err)
	assert.True(t, l.Created())
	id := l.Identity()
	assert.Equal(t, uint64(0xc1), id.ClusterID)
	assert.Equal(t, uint64(3), id.NodeID)
	assert.NotZero(t, id.Incarnation)
	require.NoError(t, l.Save(raft.HardState{}, nil, walSnap(1, 1, "")))
	for lo := uint64(2); lo < 102; lo += 10 {
		require.NoError(t, l.Save(raft.HardState{Term: 2, Commit: lo + 9}, walEnts(lo, lo+9, 2, 150), raft.Snapshot{}))
	}
	require.NoError(t, l.Close())

	l, err = wal.Open(dir, opts)
	require.NoError(t, err)
	assert.False(t, l.Created())
	assert.Equal(t, id, l.Identity())
	segs, _ := walDirFiles(t, dir)
	require.Greater(t, len(segs), 3)
	require.NoError(t, l.Compact(100))
	after, _ := walDirFiles(t, dir)
	require.NotContains(t, after, segs[0], "the first segment is compacted away")
	require.NoError(t, l.Close())

	// Zero IDs in the options are not checked.
	l, err = wal.Open(dir, wal.Options{SegmentSize: 4096})
	require.NoError(t, err)
	assert.Equal(t, id, l.Identity())
	require.NoError(t, l.Close())

	other, err := wal.Open(t.TempDir(), opts)
	require.NoError(t, err)
	assert.NotEqual(t, id.Incarnation, other.Identity().Incarnation, "each directory draws its own incarnation")
	require.NoError(t, other.Close())
}

// TestIdentityMismatch: a node pointed at another node's or cluster's
// directory fails to open, with both identities and the directory named.
func TestIdentityMismatch(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, wal.Options{SegmentSize: 4096, ClusterID: 7, NodeID: 1})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	for _, opts := range []wal.Options{
		{SegmentSize: 4096, ClusterID: 7, NodeID: 2},
		{SegmentSize: 4096, ClusterID: 8, NodeID: 1},
		{SegmentSize: 4096, ClusterID: 8},
	} {
		_, err := wal.Open(dir, opts)
		require.ErrorIs(t, err, wal.ErrIdentityMismatch)
		assert.Contains(t, err.Error(), dir)
		assert.Contains(t, err.Error(), "cluster 0x7 node 1")
		assert.Contains(t, err.Error(), "this node is cluster")
	}
	l, err = wal.Open(dir, wal.Options{SegmentSize: 4096, ClusterID: 7, NodeID: 1})
	require.NoError(t, err)
	require.NoError(t, l.Close())
}
