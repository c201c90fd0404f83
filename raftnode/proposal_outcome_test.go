package raftnode_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
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

// appendCut runs a scenario on a leader: cut (given the leader and the
// others) isolates it in some way, then data is proposed on it until the
// storage of the node that watch picks holds it. If the leader lost office
// before it could append (a spurious election on a loaded machine), the
// links are healed and the scenario starts again with the new leader.
func (c *nodeCluster) appendCut(ctx context.Context, data string, cut func(lead uint64, others []uint64),
	watch func(lead uint64, others []uint64) uint64) (uint64, chan nodeProposeOutcome) {
	c.tb.Helper()
	for attempt := 0; ; attempt++ {
		require.Less(c.tb, attempt, 5, "no leader stayed long enough to run the scenario")
		c.net.HealAll()
		lead := c.waitLeader()
		c.waitReplicating(lead)
		others := nodeOthers(c.ids, lead)
		cut(lead, others)
		out := c.proposeAsync(ctx, lead, data)
		storage := c.members[watch(lead, others)].storage
		var early *nodeProposeOutcome
		nodeWaitFor(c.tb, "the entry to be appended", func() bool {
			select {
			case o := <-out:
				early = &o
				return true
			default:
				return nodeHasEntry(storage, data)
			}
		})
		if early == nil {
			return lead, out
		}
		require.True(c.tb, errors.Is(early.err, raft.ErrNotLeader) || errors.Is(early.err, raft.ErrProposalDropped),
			"the proposal ended before it was appended with %v", early.err)
		c.tb.Logf("leader %d lost office before appending (%v); again", lead, early.err)
	}
}

// waitReplicating waits until leader lead streams its whole log to every
// follower, so that an entry it appends is sent at once (a follower whose
// acknowledgements were never heard is only probed).
func (c *nodeCluster) waitReplicating(lead uint64) {
	c.tb.Helper()
	nodeWaitFor(c.tb, "the followers to catch up", func() bool {
		st, err := c.members[lead].node.Status(context.Background())
		if err != nil || st.RaftState != raft.StateLeader {
			return true // the caller finds out
		}
		for id, pr := range st.Progress {
			if id != lead && (pr.State != raft.ProgressStateReplicate || pr.Match < st.Commit) {
				return false
			}
		}
		return true
	})
}

// TestNodeLostLeaderEntryCommits: a leader appends an entry and
// replicates it to one follower, but hears no acknowledgement and loses
// office; the entry commits under the next leader. The proposer must learn
// success or "unknown", never failure (docs/reliability.md, S27).
func TestNodeLostLeaderEntryCommits(t *testing.T) {
	c := newNodeCluster(t, 3)
	ctx := nodeCtx(t)
	c.propose("before")
	// The leader reaches one follower only; nothing reaches the leader.
	lead, out := c.appendCut(ctx, "s27", func(lead uint64, others []uint64) {
		c.net.Cut(lead, others[1])
		c.net.Cut(others[0], lead)
		c.net.Cut(others[1], lead)
	}, func(_ uint64, others []uint64) uint64 { return others[0] })
	nodeWaitFor(t, "the leader to step down", func() bool {
		l, _ := c.members[lead].node.LeaderID()
		return l != lead
	})
	c.net.HealAll()

	o := <-out
	if o.err != nil {
		require.ErrorIs(t, o.err, raftnode.ErrProposalUnknown, "a committed entry reported as failed")
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
	c := newNodeCluster(t, 3)
	ctx := nodeCtx(t)
	c.propose("before")
	lead, out := c.appendCut(ctx, "doomed", func(lead uint64, others []uint64) {
		for _, id := range others {
			c.net.Cut(lead, id)
			c.net.Cut(id, lead)
		}
	}, func(lead uint64, _ []uint64) uint64 { return lead })
	c.proposeAmong(nodeOthers(c.ids, lead), "other")
	c.net.HealAll()

	o := <-out
	require.Error(t, o.err, "an overwritten entry reported as applied")
	assert.True(t, errors.Is(o.err, raft.ErrProposalDropped) || errors.Is(o.err, raftnode.ErrProposalUnknown), "%v", o.err)
	t.Logf("outcome: %v", o.err)
	last := c.propose("after")
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"before", "other", "after"}, c.members[id].sm.snapshot(), "node %d", id)
	}
}

// TestNodeStopWithPendingProposal: a proposal appended but not applied when
// the node stops is reported as unknown; a stopped node's calls fail with
// raftnode.ErrStopped.
func TestNodeStopWithPendingProposal(t *testing.T) {
	c := newNodeCluster(t, 3)
	ctx := nodeCtx(t)
	lead, out := c.appendCut(ctx, "pending", func(lead uint64, others []uint64) {
		for _, id := range others {
			c.net.Cut(lead, id)
		}
	}, func(lead uint64, _ []uint64) uint64 { return lead })
	c.stop(lead)
	o := <-out
	assert.ErrorIs(t, o.err, raftnode.ErrProposalUnknown)
	assert.ErrorIs(t, o.err, raftnode.ErrStopped)
	_, err := c.members[lead].node.Propose(ctx, []byte("x"))
	assert.ErrorIs(t, err, raftnode.ErrStopped)
	assert.ErrorIs(t, c.members[lead].node.WaitApplied(ctx, 1000), raftnode.ErrStopped)
	assert.ErrorIs(t, c.members[lead].node.TransferLeadership(ctx, 1), raftnode.ErrStopped)
	c.members[lead].node.Stop() // again: harmless
}
