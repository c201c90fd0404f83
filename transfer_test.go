package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransferLeaderToUpToDateFollower(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	term := nw.raft(1).Term
	require.NoError(t, nw.node(1).TransferLeader(2))
	nw.handleReady(1)
	nw.stabilize()
	assert.Equal(t, StateLeader, nw.raft(2).state)
	assert.Equal(t, StateFollower, nw.raft(1).state)
	assert.Equal(t, term+1, nw.raft(2).Term, "the target campaigns at once, skipping the pre-vote")
	assert.Equal(t, uint64(2), nw.raft(1).lead)
}

func TestTransferLeaderCatchesUpLaggingTarget(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.isolate(3)
	for _, d := range []string{"a", "b", "c"} {
		require.NoError(t, nw.propose(1, d))
	}
	nw.heal()
	require.NoError(t, nw.node(1).TransferLeader(3))
	nw.handleReady(1)
	// Proposals are refused while the transfer runs.
	err := nw.node(1).Propose([]byte("refused"))
	require.ErrorIs(t, err, ErrTransferInProgress)
	require.ErrorIs(t, err, ErrProposalDropped)
	nw.stabilize()
	assert.Equal(t, StateLeader, nw.raft(3).state)
	assert.Equal(t, nw.raft(1).raftLog.lastIndex(), nw.raft(3).raftLog.lastIndex())
	require.NoError(t, nw.propose(3, "after"))
	nw.tickAll()
	for _, id := range nw.ids {
		assert.Equal(t, []string{"a", "b", "c", "after"}, nw.appliedData(id), "node %d", id)
	}
}

func TestTransferLeaderAbortsAfterElectionTimeout(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.isolate(3)
	require.NoError(t, nw.node(1).TransferLeader(3))
	nw.handleReady(1)
	nw.stabilize()
	assert.Equal(t, uint64(3), nw.node(1).BasicStatus().LeadTransferee)
	for range nw.raft(1).electionTimeout {
		nw.tick(1, 1)
		nw.stabilize()
	}
	assert.Equal(t, None, nw.node(1).BasicStatus().LeadTransferee)
	assert.Equal(t, StateLeader, nw.raft(1).state)
	require.NoError(t, nw.propose(1, "accepted again"))
}

func TestTransferLeaderRefused(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	// Make node 3 a learner in the leader's view.
	nw.raft(1).trk.applyConfState(ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}, nw.raft(1).raftLog.lastIndex()+1)
	tests := []struct {
		name   string
		target uint64
	}{
		{"to itself", 1},
		{"to zero", None},
		{"to an unknown node", 9},
		{"to a learner", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := nw.node(1).TransferLeader(tt.target)
			require.ErrorIs(t, err, ErrInvalidTransfer)
			assert.Equal(t, None, nw.raft(1).leadTransferee)
		})
	}
}

func TestTransferLeaderFromFollowerIsForwarded(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	require.NoError(t, nw.node(2).TransferLeader(2))
	nw.handleReady(2)
	nw.stabilize()
	assert.Equal(t, StateLeader, nw.raft(2).state)
}

func TestTransferLeaderWithoutLeader(t *testing.T) {
	nw := newCluster(t, 3)
	require.ErrorIs(t, nw.node(2).TransferLeader(3), ErrNotLeader)
}

func TestTimeoutNowFromNonLeaderIgnored(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	term := nw.raft(3).Term
	require.NoError(t, nw.node(3).Step(Message{Type: MsgTimeoutNow, From: 2, To: 3, Term: term}))
	assert.Equal(t, StateFollower, nw.raft(3).state)
	assert.Equal(t, term, nw.raft(3).Term)
}
