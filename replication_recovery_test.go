package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFollowerCatchesUpAfterLostWindow loses every append of a follower's
// inflight window. Once the network heals, the next heartbeat response must
// reopen the window and the follower must receive every entry, within one
// heartbeat interval, without a new leader.
func TestFollowerCatchesUpAfterLostWindow(t *testing.T) { followerCatchesUpAfterLostWindow(t) }

func followerCatchesUpAfterLostWindow(t testing.TB) {
	nw := newCluster(t, 3, func(c *Config) { c.MaxInflightMsgs = 2 })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	require.Equal(t, ProgressStateReplicate, nw.raft(1).trk.progress[2].State)

	nw.cut[[2]uint64{1, 2}] = true
	require.NoError(t, nw.propose(1, "b"))
	require.NoError(t, nw.propose(1, "c"))
	require.True(t, nw.raft(1).trk.progress[2].inflights.full(), "the window should be full of lost appends")
	nw.heal()

	// One heartbeat interval (HeartbeatTick is 1).
	nw.tick(1, 1)
	nw.stabilize()
	assert.Equal(t, []string{"a", "b", "c"}, nw.appliedData(2), "the follower should catch up within one heartbeat interval")

	require.NoError(t, nw.propose(1, "d"))
	assert.Equal(t, []string{"a", "b", "c", "d"}, nw.appliedData(2))
	assert.Equal(t, uint64(2), nw.raft(1).Term, "no new election was needed")
}

// TestFollowerCatchesUpAfterLostPartialWindow loses some appends of a window
// that is not full: the follower must still catch up on the next heartbeat.
func TestFollowerCatchesUpAfterLostPartialWindow(t *testing.T) {
	followerCatchesUpAfterLostPartialWindow(t)
}

func followerCatchesUpAfterLostPartialWindow(t testing.TB) {
	nw := newCluster(t, 3, func(c *Config) { c.MaxInflightMsgs = 8 })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	nw.cut[[2]uint64{1, 2}] = true
	require.NoError(t, nw.propose(1, "b"))
	nw.heal()
	nw.tick(1, 1)
	nw.stabilize()
	assert.Equal(t, []string{"a", "b"}, nw.appliedData(2))
}

// backupStorage returns a copy of s holding its snapshot and entries up to
// last, with a hard state whose commit index is at most last: what a node
// restored from an old backup, or one whose damaged tail was cut off,
// starts from.
func backupStorage(t testing.TB, s *MemoryStorage, last uint64) *MemoryStorage {
	t.Helper()
	b := NewMemoryStorage()
	snap, err := s.Snapshot()
	require.NoError(t, err)
	if !snap.IsEmpty() {
		require.NoError(t, b.ApplySnapshot(snap))
	}
	first, err := s.FirstIndex()
	require.NoError(t, err)
	if last >= first {
		ents, err := s.Entries(first, last+1, noLimit)
		require.NoError(t, err)
		require.NoError(t, b.Append(ents))
	}
	hs := s.HardState()
	hs.Commit = min(hs.Commit, last)
	require.NoError(t, b.SetHardState(hs))
	return b
}

// restartWithStorage restarts node id from storage s instead of its own.
func (nw *testCluster) restartWithStorage(id uint64, s *MemoryStorage) {
	nw.t.Helper()
	n := nw.nodes[id]
	n.storage = s
	n.cfg.Storage = s
	nw.crash(id)
}

// TestLeaderRepairsFollowerWhoseLogWentBackwards restarts a follower from
// an old copy of its storage, below the leader's commit index and its Match
// for the follower: the leader must notice, stop counting what the follower
// lost, and bring it back up to date.
func TestLeaderRepairsFollowerWhoseLogWentBackwards(t *testing.T) {
	leaderRepairsFollowerWhoseLogWentBackwards(t)
}

func leaderRepairsFollowerWhoseLogWentBackwards(t testing.TB) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	old := backupStorage(t, nw.nodes[2].storage, nw.raft(2).raftLog.lastIndex())
	require.NoError(t, nw.propose(1, "b"))
	require.NoError(t, nw.propose(1, "c"))
	nw.tickAll()
	require.Equal(t, nw.raft(1).raftLog.lastIndex(), nw.raft(1).trk.progress[2].Match)

	nw.restartWithStorage(2, old)
	require.Less(t, nw.raft(2).raftLog.lastIndex(), nw.raft(1).raftLog.committed)

	// One heartbeat interval.
	nw.tick(1, 1)
	nw.stabilize()
	assert.Equal(t, []string{"a", "b", "c"}, nw.appliedData(2), "the follower should be repaired")
	assert.Equal(t, nw.raft(1).raftLog.lastIndex(), nw.raft(2).raftLog.lastIndex())
	require.NoError(t, nw.propose(1, "d"))
	assert.Equal(t, []string{"a", "b", "c", "d"}, nw.appliedData(2))
}

// TestLeaderRepairsFollowerThatLostUncommittedAcks restarts a follower that
// lost entries it acknowledged but that are not yet committed (only it and
// the leader hold them): heartbeats carry no commit index beyond its log, so
// the leader must learn of the loss from its answer to a probe.
func TestLeaderRepairsFollowerThatLostUncommittedAcks(t *testing.T) {
	leaderRepairsFollowerThatLostUncommittedAcks(t)
}

func leaderRepairsFollowerThatLostUncommittedAcks(t testing.TB) {
	nw := newCluster(t, 5)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	nw.tickAll()
	old := backupStorage(t, nw.nodes[2].storage, nw.raft(2).raftLog.lastIndex())
	nw.partition([]uint64{1, 2}, []uint64{3, 4, 5})
	require.NoError(t, nw.propose(1, "b"))
	last := nw.raft(1).raftLog.lastIndex()
	require.Equal(t, last, nw.raft(1).trk.progress[2].Match)
	require.Less(t, nw.raft(1).raftLog.committed, last, "b is held by 2 of 5 nodes")

	nw.restartWithStorage(2, old)
	require.Less(t, nw.raft(2).raftLog.lastIndex(), last)
	nw.heal()
	for range 3 {
		nw.tick(1, 1)
		nw.stabilize()
	}
	require.NoError(t, nw.propose(1, "c"))
	for range 2 {
		nw.tick(1, 1)
		nw.stabilize()
	}
	assert.Equal(t, []string{"a", "b", "c"}, nw.appliedData(2), "the follower should be repaired")
	assert.Equal(t, nw.raft(1).raftLog.lastIndex(), nw.raft(1).trk.progress[2].Match)
}
