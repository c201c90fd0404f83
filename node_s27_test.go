package raft_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// nodeHasEntry reports whether storage holds an entry with data.
func nodeHasEntry(storage raft.LogStorage, data string) bool {
	first, err := storage.FirstIndex()
	if err != nil {
		return false
	}
	last, err := storage.LastIndex()
	if err != nil || last < first {
		return false
	}
	ents, err := storage.Entries(first, last+1, 1<<30)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(ents, func(e raft.Entry) bool { return string(e.Data) == data })
}

// nodeOthers returns the IDs of ids other than except.
func nodeOthers(ids []uint64, except uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if id != except {
			out = append(out, id)
		}
	}
	return out
}

type nodeProposeOutcome struct {
	res any
	err error
}

// nodeProposeAsync proposes on node id in the background.
func (c *nodeCluster) proposeAsync(ctx context.Context, id uint64, data string) chan nodeProposeOutcome {
	out := make(chan nodeProposeOutcome, 1)
	node := c.members[id].node
	go func() {
		res, err := node.Propose(ctx, []byte(data))
		out <- nodeProposeOutcome{res, err}
	}()
	return out
}

// TestNodeS27LostLeaderEntryCommits: a leader appends an entry and
// replicates it to one follower, but hears no acknowledgement and loses
// office; the entry commits under the next leader. The proposer must learn
// success or "unknown", never failure (RELIABILITY.md S27).
func TestNodeS27LostLeaderEntryCommits(t *testing.T) {
	c := newNodeCluster(t, 3, nil)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("before")
	others := nodeOthers(c.ids, lead)
	a, b := others[0], others[1]
	// The leader reaches a only; nothing reaches the leader.
	c.net.Cut(lead, b)
	c.net.Cut(a, lead)
	c.net.Cut(b, lead)

	out := c.proposeAsync(ctx, lead, "s27")
	nodeWaitFor(t, "the entry to reach the follower", func() bool { return nodeHasEntry(c.members[a].storage, "s27") })
	nodeWaitFor(t, "the leader to step down", func() bool {
		l, _ := c.members[lead].node.LeaderID()
		return l != lead
	})
	c.net.HealAll()

	o := <-out
	if o.err != nil {
		require.ErrorIs(t, o.err, raft.ErrProposalUnknown, "a committed entry reported as failed")
		assert.False(t, errors.Is(o.err, raft.ErrProposalDropped) || errors.Is(o.err, raft.ErrNotLeader))
		t.Logf("outcome reported as unknown: %v", o.err)
	} else {
		t.Logf("outcome reported as applied at index %v", o.res)
	}
	last := c.propose("after")
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"before", "s27", "after"}, c.members[id].sm.snapshot(), "node %d", id)
	}
}

// TestNodeOverwrittenProposalFails: a leader cut off from everyone appends
// an entry that a new leader's entries overwrite. The proposer must learn
// failure or "unknown", never success, and the entry applies nowhere.
func TestNodeOverwrittenProposalFails(t *testing.T) {
	c := newNodeCluster(t, 3, nil)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("before")
	others := nodeOthers(c.ids, lead)
	for _, id := range others {
		c.net.Cut(lead, id)
		c.net.Cut(id, lead)
	}
	out := c.proposeAsync(ctx, lead, "doomed")
	nodeWaitFor(t, "the isolated leader to append", func() bool { return nodeHasEntry(c.members[lead].storage, "doomed") })
	c.proposeAmong(others, "other")
	c.net.HealAll()

	o := <-out
	require.Error(t, o.err, "an overwritten entry reported as applied")
	assert.True(t, errors.Is(o.err, raft.ErrProposalDropped) || errors.Is(o.err, raft.ErrProposalUnknown), "%v", o.err)
	t.Logf("outcome: %v", o.err)
	last := c.propose("after")
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"before", "other", "after"}, c.members[id].sm.snapshot(), "node %d", id)
	}
}

// TestNodeStopWithPendingProposal: a proposal appended but not applied when
// the node stops is reported as unknown; a stopped node's calls fail with
// ErrStopped.
func TestNodeStopWithPendingProposal(t *testing.T) {
	c := newNodeCluster(t, 3, nil)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	for _, id := range nodeOthers(c.ids, lead) {
		c.net.Cut(lead, id)
	}
	out := c.proposeAsync(ctx, lead, "pending")
	nodeWaitFor(t, "the leader to append", func() bool { return nodeHasEntry(c.members[lead].storage, "pending") })
	c.stop(lead)
	o := <-out
	assert.ErrorIs(t, o.err, raft.ErrProposalUnknown)
	assert.ErrorIs(t, o.err, raft.ErrStopped)
	_, err := c.members[lead].node.Propose(ctx, []byte("x"))
	assert.ErrorIs(t, err, raft.ErrStopped)
	assert.ErrorIs(t, c.members[lead].node.WaitApplied(ctx, 1000), raft.ErrStopped)
	assert.ErrorIs(t, c.members[lead].node.TransferLeadership(ctx, 1), raft.ErrStopped)
	c.members[lead].node.Stop() // again: harmless
}
