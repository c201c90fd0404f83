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
func (nw *testCluster) tickLeader(id uint64, n int) {
	for range n {
		nw.tick(id, 1)
		nw.stabilize()
	}
}

// campaignAndWrite has node id campaign and, should it win, write: a leader
// that lacks committed entries would overwrite them, which the network's
// state-machine safety check catches.
func (nw *testCluster) campaignAndWrite(id uint64) {
	nw.campaign(id)
	if nw.raft(id).state == StateLeader {
		_ = nw.propose(id, "x")
		nw.stabilize()
	}
}

// restartDamaged restarts node id from a copy of its storage cut after
// index last and marked recovering, as the wal presents a log it salvaged.
func (nw *testCluster) restartDamaged(id, last uint64) {
	s := backupStorage(nw.t, nw.nodes[id].storage, last)
	hs := s.HardState()
	hs.Recovering = true
	require.NoError(nw.t, s.SetHardState(hs))
	nw.restartWithStorage(id, s)
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
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	kept := nw.raft(3).raftLog.lastIndex()
	nw.isolate(2)
	require.NoError(t, nw.propose(1, "b"))
	require.NoError(t, nw.propose(1, "c"))
	require.Equal(t, []string{"a", "b", "c"}, nw.appliedData(3), "b and c are committed by nodes 1 and 3")

	// Node 3's storage loses b and c, finds out and says so, as the wal
	// does when it salvages a damaged log.
	nw.restartDamaged(3, kept)
	require.True(t, nw.raft(3).recovering)

	// Node 1 goes down; node 2, which lacks b and c, campaigns.
	nw.heal()
	nw.partition([]uint64{1}, []uint64{2, 3})
	nw.campaignAndWrite(2)
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
	nw := newCluster(t, 3, func(c *Config) { c.ReadOnlyOption = ReadOnlySafe })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	nw.restartDamaged(3, nw.raft(3).raftLog.lastIndex())
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
// recorded incarnation: the candidate that lacks the entries refuses its
// vote and it refuses to vote for a candidate that knows it as another
// storage, so that candidate cannot win; once the leader is back, the
// wiped node learns from it that it must recover, and is repaired under its
// new incarnation.
func TestWipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf(t *testing.T) {
	wipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf(t)
}

func wipedNodeThatBootstrapsAgainIsNotCountedAsItsOldSelf(t testing.TB) {
	nw := newCluster(t, 3, withIncarnations)
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
	nw.handleReady(n.id)

	nw.heal()
	nw.partition([]uint64{1}, []uint64{2, 3})
	nw.campaignAndWrite(2)
	require.NotEqual(t, StateLeader, nw.raft(2).state, "the wiped node must not vote as its old self")
	assert.False(t, nw.raft(3).recovering, "a candidate, whose configuration may be old, is not trusted to say so")

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

func TestConfChangeRecordIncarnationRoundTrip(t *testing.T) {
	cc := ConfChange{Changes: []ConfChangeSingle{
		{Type: ConfChangeRecordIncarnation, NodeID: 2, Incarnation: 1 << 63},
		{Type: ConfChangeAddLearnerNode, NodeID: 4, Incarnation: 7},
		{Type: ConfChangeRemoveNode, NodeID: 3},
	}, Context: []byte("x")}
	data := cc.Marshal()
	require.Equal(t, byte(confChangeVersionIncarnations), data[0])
	var got ConfChange
	require.NoError(t, got.Unmarshal(data))
	assert.Equal(t, cc, got)
	assert.Equal(t, "Auto [RecordIncarnation(2@8000000000000000) AddLearnerNode(4@7) RemoveNode(3)]", got.String())

	plain := ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeAddNode, NodeID: 2}}}
	assert.Equal(t, byte(confChangeVersion), plain.Marshal()[0], "changes without incarnations keep the first encoding")

	for _, bad := range [][]byte{
		{2, 0, 1, 3, 2},       // incarnation missing
		{2, 0, 1, 9, 2, 1, 0}, // unknown change type
		{4, 0, 0, 0},          // unknown version
	} {
		assert.ErrorIs(t, got.Unmarshal(bad), ErrInvalidConfChange, "%v", bad)
	}
}

func TestNextConfStateIncarnations(t *testing.T) {
	cs := ConfState{Voters: []uint64{1, 2, 3}}
	rec := func(id, inc uint64) ConfChangeSingle {
		return ConfChangeSingle{Type: ConfChangeRecordIncarnation, NodeID: id, Incarnation: inc}
	}
	next, err := nextConfState(cs, ConfChange{Changes: []ConfChangeSingle{rec(1, 10), rec(2, 20)}})
	require.NoError(t, err)
	assert.Equal(t, ConfState{Voters: []uint64{1, 2, 3}, Incarnations: map[uint64]uint64{1: 10, 2: 20}}, next)
	assert.Nil(t, cs.Incarnations, "the input is not modified")

	next, err = nextConfState(next, ConfChange{Changes: []ConfChangeSingle{
		{Type: ConfChangeRemoveNode, NodeID: 2}, {Type: ConfChangeAddNode, NodeID: 4, Incarnation: 40}}})
	require.NoError(t, err)
	assert.Equal(t, map[uint64]uint64{1: 10, 4: 40}, next.Incarnations, "a removal forgets, an addition may record")
	assert.NotEmpty(t, next.VotersOutgoing, "two voter changes enter a joint configuration")

	next, err = nextConfState(next, ConfChange{})
	require.NoError(t, err)
	assert.Equal(t, map[uint64]uint64{1: 10, 4: 40}, next.Incarnations, "leaving the joint configuration keeps them")

	_, err = nextConfState(cs, ConfChange{Changes: []ConfChangeSingle{rec(9, 1)}})
	assert.ErrorIs(t, err, ErrInvalidConfChange, "only a member's incarnation is recorded")
	_, err = nextConfState(cs, ConfChange{Changes: []ConfChangeSingle{rec(1, 0)}})
	assert.ErrorIs(t, err, ErrInvalidConfChange, "a record needs an incarnation")
	one, err := nextConfState(cs, ConfChange{Changes: []ConfChangeSingle{rec(1, 10)}})
	require.NoError(t, err)
	assert.Empty(t, one.VotersOutgoing, "recording changes no voter")
}

// TestRecoveringSingleVoterGoesOn checks that a single voter whose storage
// lost state does not wait for a repair that no peer can give.
func TestRecoveringSingleVoterGoesOn(t *testing.T) {
	s := NewMemoryStorage()
	require.NoError(t, s.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 1, Term: 1, ConfState: ConfState{Voters: []uint64{1}}}}))
	require.NoError(t, s.SetHardState(HardState{Term: 1, Commit: 1, Recovering: true}))
	rn, err := NewRawNode(testConfig(1, s))
	require.NoError(t, err)
	assert.False(t, rn.BasicStatus().HardState.Recovering)
	require.NoError(t, rn.Campaign())
	for rn.HasReady() {
		rd := rn.Ready()
		require.NoError(t, s.Append(rd.Entries))
		if !rd.HardState.IsEmpty() {
			require.NoError(t, s.SetHardState(rd.HardState))
		}
		rn.Advance(rd)
	}
	assert.Equal(t, StateLeader, rn.BasicStatus().RaftState)
	assert.False(t, s.HardState().Recovering, "the cleared flag is persisted")
}

// TestLateRepairDoesNotEndALaterRecovery delivers, to a follower that lost
// state a second time, the leader's message that had ended its first
// recovery: the follower must stay recovering, or it would vote for a node
// that lacks the entries it helped commit in between.
func TestLateRepairDoesNotEndALaterRecovery(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	damage := func() { nw.restartDamaged(3, nw.raft(3).raftLog.lastIndex()-1) }
	var repair *Message
	nw.onReady = func(n *testNode, rd *Ready) {
		for _, m := range rd.Messages {
			if m.To == 3 && m.Recovery != 0 && repair == nil {
				repair = &m
			}
		}
	}
	damage()
	nw.tickLeader(1, 3)
	require.NotNil(t, repair, "the leader repaired node 3")
	require.False(t, nw.raft(3).recovering)

	nw.isolate(2)
	require.NoError(t, nw.propose(1, "b"))
	require.Equal(t, []string{"a", "b"}, nw.appliedData(1), "b is committed by nodes 1 and 3")
	damage()
	nw.heal()
	nw.partition([]uint64{1}, []uint64{2, 3})
	// The late message arrives (it was delayed, not cut).
	require.NoError(t, nw.node(3).Step(*repair))
	nw.handleReady(3)
	nw.stabilize()
	assert.True(t, nw.raft(3).recovering, "a late message ended a later recovery")
	nw.campaignAndWrite(2)
	assert.NotEqual(t, StateLeader, nw.raft(2).state)
}

// TestRecoveryStateChangesMustSync checks that a Ready that starts or ends a
// recovery asks for a sync: a recovery epoch lost in a crash could be used
// again, and a repair lost leaves the node recovering for nothing.
func TestRecoveryStateChangesMustSync(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	s := backupStorage(t, nw.nodes[3].storage, nw.raft(3).raftLog.lastIndex())
	hs := s.HardState()
	hs.Recovering = true
	require.NoError(t, s.SetHardState(hs))
	var changes []Ready
	prev := hs
	nw.onReady = func(n *testNode, rd *Ready) {
		if n.id != 3 || rd.HardState.IsEmpty() {
			return
		}
		if rd.HardState.Recovering != prev.Recovering || rd.HardState.RecoveryEpoch != prev.RecoveryEpoch {
			changes = append(changes, *rd)
		}
		prev = rd.HardState
	}
	nw.restartWithStorage(3, s)
	nw.tickLeader(1, 3)
	require.False(t, nw.raft(3).recovering)
	var starts, ends int
	for _, rd := range changes {
		switch {
		case rd.HardState.Recovering && rd.HardState.RecoveryEpoch == 1:
			starts++
			assert.True(t, rd.MustSync, "the new recovery epoch must be synced")
		case !rd.HardState.Recovering && rd.HardState.RecoveryEpoch == 1:
			ends++
			assert.True(t, rd.MustSync, "the repair must be synced")
		}
	}
	assert.Equal(t, 1, starts)
	assert.Equal(t, 1, ends)
}
