package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newRemovedNode returns node 3, which a committed change removed: its
// configuration has the single voter 2, and its log (up to index 5, all
// applied) is longer than what node 2 holds in the scenarios below. The
// test drives it by hand (see paperNewNode).
func newRemovedNode(t testing.TB) *testNode {
	t.Helper()
	storage := func(uint64) *MemoryStorage {
		s := NewMemoryStorage()
		require.NoError(t, s.ApplySnapshot(Snapshot{Metadata: SnapshotMetadata{Index: 1, Term: 1,
			ConfState: ConfState{Voters: []uint64{2}}}}))
		require.NoError(t, s.Append([]Entry{{Index: 2, Term: 2}, {Index: 3, Term: 2}, {Index: 4, Term: 2}, {Index: 5, Term: 2}}))
		require.NoError(t, s.SetHardState(HardState{Term: 2, Commit: 5}))
		return s
	}
	c := buildCluster(t, clusterSpec{
		ids:     []uint64{3},
		storage: storage,
		opts:    []configOption{func(cfg *Config) { cfg.Applied = 5 }},
	})
	return c.nodes[3]
}

// TestRemovedNodeStaysQuietUnlessAVoterNeedsIt checks that a node that is
// no longer a voter never campaigns on its own, however long it waits.
func TestRemovedNodeStaysQuietUnlessAVoterNeedsIt(t *testing.T) {
	n := newRemovedNode(t)
	rn := n.rn
	n.drain()
	for range 100 {
		rn.Tick()
		for _, m := range n.drain() {
			assert.NotContains(t, []MessageType{MsgPreVote, MsgVote}, m.Type)
		}
	}
	assert.Equal(t, StateFollower, rn.raft.state)
}

// TestRemovedNodeWithLongerLogCampaignsAsCaretaker: voter 2 has not yet
// applied the change that removed 3, so it still counts 3's vote, and its
// log is behind 3's: 3 refuses it, and nobody could be elected. 3 then
// campaigns as a caretaker, counting only 2's vote in its own (committed)
// configuration, leads, and steps down once 2 has caught up.
func TestRemovedNodeWithLongerLogCampaignsAsCaretaker(t *testing.T) {
	removedNodeWithLongerLogCampaignsAsCaretaker(t)
}

func removedNodeWithLongerLogCampaignsAsCaretaker(t testing.TB) {
	n := newRemovedNode(t)
	rn := n.rn
	n.drain()
	require.NoError(t, rn.Step(Message{Type: MsgPreVote, From: 2, To: 3, Term: 3, Index: 3, LogTerm: 2}))
	msgs := n.drain()
	require.Len(t, msgs, 1)
	require.True(t, msgs[0].Reject, "2's log is behind")

	var preVote bool
	for i := 0; i < 40 && !preVote; i++ {
		rn.Tick()
		for _, m := range n.drain() {
			preVote = preVote || (m.Type == MsgPreVote && m.To == 2)
		}
	}
	require.True(t, preVote, "the removed node should campaign as a caretaker")
	require.NoError(t, rn.Step(Message{Type: MsgPreVoteResp, From: 2, To: 3, Term: 3}))
	var vote bool
	for _, m := range n.drain() {
		vote = vote || (m.Type == MsgVote && m.To == 2)
	}
	require.True(t, vote)
	require.NoError(t, rn.Step(Message{Type: MsgVoteResp, From: 2, To: 3, Term: 3}))
	n.drain()
	require.Equal(t, StateLeader, rn.raft.state, "2's vote is a quorum of the configuration 3 applied")
	assert.NotZero(t, rn.raft.stepDownIndex, "a caretaker hands off")
	assert.ErrorIs(t, rn.Propose([]byte("x")), ErrProposalDropped, "a caretaker takes no proposals")
}
