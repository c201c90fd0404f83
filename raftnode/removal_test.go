package raftnode_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/raftnode"
)

// A removed follower that keeps running says so: its callback fires and
// every call returns ErrRemoved, instead of answering as a member.
func TestNodeRemovedFollowerAnswersErrRemoved(t *testing.T) {
	removed := make(chan uint64, 3)
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		id := cfg.Raft.ID
		cfg.OnRemoved = func() { removed <- id }
	}))
	lead := c.waitLeader()
	c.propose("before")
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	ctx := nodeCtx(t)
	_, err := c.members[lead].node.Remove(ctx, follower)
	require.NoError(t, err)

	select {
	case id := <-removed:
		assert.Equal(t, follower, id)
	case <-ctx.Done():
		t.Fatal("OnRemoved was not called")
	}
	n := c.members[follower].node
	_, err = n.Propose(ctx, []byte("x"))
	assert.ErrorIs(t, err, raftnode.ErrRemoved)
	assert.ErrorIs(t, n.Read(ctx), raftnode.ErrRemoved)
	assert.ErrorIs(t, n.ProposeUntracked(ctx, []byte("x")), raftnode.ErrRemoved)
	assert.ErrorIs(t, n.TransferLeadership(ctx, lead), raftnode.ErrRemoved)
	_, err = n.AddVoter(ctx, 9, "")
	assert.ErrorIs(t, err, raftnode.ErrRemoved)
	assert.NoError(t, n.Err(), "without StopWhenRemoved the node runs on")
	select {
	case id := <-removed:
		t.Fatalf("OnRemoved called again, for node %d", id)
	default:
	}
}

// A leader that removes itself with StopWhenRemoved set stops with
// ErrRemoved once it no longer leads; the others elect a leader and go on.
func TestNodeRemovedLeaderStopsItselfAfterHandingOver(t *testing.T) {
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) { cfg.StopWhenRemoved = true }))
	lead := c.waitLeader()
	c.propose("before")
	ctx := nodeCtx(t)
	_, err := c.members[lead].node.Remove(ctx, lead)
	require.NoError(t, err)

	n := c.members[lead].node
	select {
	case <-n.Done():
	case <-ctx.Done():
		t.Fatal("the removed leader did not stop")
	}
	require.ErrorIs(t, n.Err(), raftnode.ErrRemoved)
	_, err = n.Propose(ctx, []byte("x"))
	assert.ErrorIs(t, err, raftnode.ErrRemoved)

	var rest []uint64
	for _, id := range c.ids {
		if id != lead {
			rest = append(rest, id)
		}
	}
	last := c.proposeAmong(rest, "after")
	for _, id := range rest {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.NoError(t, c.members[id].node.Err(), "node %d", id)
		assert.Equal(t, []string{"before", "after"}, c.members[id].sm.snapshot())
	}
}
