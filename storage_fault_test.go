package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withIncarnations gives every node a storage incarnation of its own.
func withIncarnations(c *Config) { c.Incarnation = 0xA00 + c.ID }

// tickLeader ticks node id through n heartbeat intervals, delivering
// everything after each.
func (nw *network) tickLeader(id uint64, n int) {
	for range n {
		nw.tick(id, 1)
		nw.stabilize()
	}
}

// TestRecoveringNodeElectsNoLeaderWithoutCommittedEntries loses the tail of
// a follower that helped commit entries, then cuts off the only other node
// holding them: the follower, recovering, must not help the node that lacks
// them win an election. Once the leader is back it repairs the follower,
// which counts again.
func TestRecoveringNodeElectsNoLeaderWithoutCommittedEntries(t *testing.T) {
	recoveringNodeElectsNoLeaderWithoutCommittedEntries(t)
}

func recoveringNodeElectsNoLeaderWithoutCommittedEntries(t testing.TB) {
	nw := newNetwork(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	kept := nw.raft(3).raftLog.lastIndex()
	nw.isolate(2)
	require.NoError(t, nw.propose(1, "b"))
	require.NoError(t, nw.propose(1, "c"))
	require.Equal(t, []string{"a", "b", "c"}, nw.appliedData(3), "b and c are committed by nodes 1 and 3")

	// Node 3's storage loses b and c, finds out and says so, as the wal
	// does when it salvages a damaged log.
	damaged := backupStorage(t, nw.nodes[3].storage, kept)
	hs := damaged.HardState()
	hs.Recovering = true
	require.NoError(t, damaged.SetHardState(hs))
	nw.restartWithStorage(3, damaged)
	require.True(t, nw.raft(3).recovering)

	// Node 1 goes down; node 2, which lacks b and c, campaigns.
	nw.heal()
	nw.partition([]uint64{1}, []uint64{2, 3})
	nw.campaign(2)
	if nw.raft(2).state == StateLeader {
		// It would now overwrite b and c.
		_ = nw.propose(2, "x")
		nw.stabilize()
	}
	require.NotEqual(t, StateLeader, nw.raft(2).state, "a recovering node must not vote")
	nw.tickLeader(3, 3*nw.raft(3).electionTimeout)
	assert.NotEqual(t, StateLeader, nw.raft(3).state, "a recovering node must not campaign")

	// Node 1 is back: it leads and repairs node 3.
	nw.heal()
	nw.electLeader(1)
	nw.tickLeader(1, 3)
	assert.False(t, nw.raft(3).recovering, "the leader should have repaired node 3")
	assert.False(t, nw.nodes[3].storage.HardState().Recovering, "the repair is durable")
	assert.Equal(t, []string{"a", "b", "c"}, nw.appliedData(3))

	// Repaired, node 3 counts: with node 2 down, nodes 1 and 3 commit.
	nw.isolate(2)
	require.NoError(t, nw.propose(1, "d"))
	assert.Equal(t, []string{"a", "b", "c", "d"}, nw.appliedData(3))
}

// TestRecoveringFollowerCountsTowardNoQuorum checks that the leader neither
// commits nor confirms reads with a recovering follower as the only other
// voter it hears from.
func TestRecoveringFollowerCountsTowardNoQuorum(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.ReadOnlyOption = ReadOnlySafe })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	s := backupStorage(t, nw.nodes[3].storage, nw.raft(3).raftLog.lastIndex())
	hs := s.HardState()
	hs.Recovering = true
	require.NoError(t, s.SetHardState(hs))
	nw.restartWithStorage(3, s)
	nw.isolate(2)
	nw.tickLeader(1, 2)
	require.True(t, nw.raft(1).trk.progress[3].Recovering)

	commit := nw.raft(1).raftLog.committed
	require.NoError(t, nw.propose(1, "b"))
	assert.Equal(t, commit, nw.raft(1).raftLog.committed, "a recovering follower's acknowledgement does not commit")
	assert.Equal(t, nw.raft(1).raftLog.lastIndex(), nw.raft(1).trk.progress[3].Match, "it is replicated to all the same")

	nw.node(1).ReadIndex([]byte("r"))
	nw.tickLeader(1, 2)
	assert.Empty(t, nw.node(1).raft.readStates, "a recovering follower confirms no read")

	assert.ErrorIs(t, nw.node(1).TransferLeader(3), ErrInvalidTransfer)
}

// TestWipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf wipes a node
// that helped commit entries and starts it with a fresh storage that
// bootstraps the cluster again (an operator's mistake). Its peers know its
// recorded incarnation: they refuse its votes, and it learns from them that
// it must recover, so the node that lacks the entries cannot win; once the
// leader is back the wiped node is repaired under its new incarnation.
func TestWipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf(t *testing.T) {
	wipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf(t)
}

func wipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf(t testing.TB) {
	nw := newNetwork(t, 3, withIncarnations)
	nw.electLeader(1)
	nw.tickLeader(1, 2)
	for _, id := range nw.ids {
		require.Equal(t, map[uint64]uint64{1: 0xA01, 2: 0xA02, 3: 0xA03}, nw.raft(id).trk.incarnations,
			"node %d should know every member's incarnation", id)
	}
	require.NoError(t, nw.propose(1, "a"))
	nw.isolate(2)
	require.NoError(t, nw.propose(1, "b"))
	require.NoError(t, nw.propose(1, "c"))

	// Node 3 is wiped and bootstraps again under a new incarnation.
	n := nw.nodes[3]
	n.cfg.Incarnation = 0xB03
	n.applied, n.lastApplied = nil, 0
	nw.restartWithStorage(3, NewMemoryStorage())
	require.NoError(t, n.rn.Bootstrap(nw.ids))
	nw.handleReady(n)

	nw.heal()
	nw.partition([]uint64{1}, []uint64{2, 3})
	nw.campaign(2)
	if nw.raft(2).state == StateLeader {
		_ = nw.propose(2, "x")
		nw.stabilize()
	}
	require.NotEqual(t, StateLeader, nw.raft(2).state, "the wiped node must not vote as its old self")
	assert.True(t, nw.raft(3).recovering, "the wiped node learns from its peers that it must recover")

	nw.heal()
	nw.electLeader(1)
	nw.tickLeader(1, 4)
	assert.False(t, nw.raft(3).recovering, "the leader should have repaired node 3")
	for _, id := range nw.ids {
		assert.Equal(t, uint64(0xB03), nw.raft(id).trk.incarnations[3], "node %d records node 3's new incarnation", id)
	}
	nw.isolate(2)
	require.NoError(t, nw.propose(1, "d"))
	assert.Equal(t, []string{"a", "b", "c", "d"}, nw.appliedData(3))
}
