package raftnode_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// A 20 MiB proposal, which no default-sized frame can carry, is refused
// with ErrProposalTooLarge and appends nothing; replication goes on, and
// an entry of exactly the default limit reaches every node over TCP.
func TestNodeRefusesAnEntryTheTransportCannotCarry(t *testing.T) {
	// A one-second election timeout: moving the largest entry (encoding,
	// copying, decoding it on a loaded machine) must not look like a dead
	// leader.
	nodes, sms, lead := startTCPNodes(t, 3, raft.Config{ElectionTick: 100, HeartbeatTick: 5}, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := nodes[lead].Propose(ctx, []byte("first"))
	require.NoError(t, err)
	applied := nodes[lead].AppliedIndex()

	_, err = nodes[lead].Propose(ctx, make([]byte, 20<<20))
	require.ErrorIs(t, err, raft.ErrProposalTooLarge)
	res := nodes[lead].ProposeBatch(ctx, [][]byte{[]byte("ok"), make([]byte, raft.DefaultMaxEntrySize+1)})
	require.Len(t, res, 2)
	require.ErrorIs(t, res[1].Err, raft.ErrProposalTooLarge)
	require.ErrorIs(t, res[0].Err, raft.ErrProposalDropped, "a batch with one oversized entry is refused whole")
	require.NotErrorIs(t, res[0].Err, raft.ErrProposalTooLarge, "the entry that fits may be retried alone")
	assert.Equal(t, applied, nodes[lead].AppliedIndex(), "nothing was appended")
	assert.Equal(t, uint64(raft.DefaultMaxEntrySize), nodes[lead].MaxEntrySize())

	largest := bytes.Repeat([]byte{'L'}, raft.DefaultMaxEntrySize)
	_, err = nodes[lead].Propose(ctx, largest)
	require.NoError(t, err, "the largest allowed entry commits, so it reached a quorum")
	_, err = nodes[lead].Propose(ctx, []byte("after"))
	require.NoError(t, err, "later writes are not stuck behind it")
	for id, n := range nodes {
		require.NoError(t, n.Read(ctx))
		got := sms[id].snapshot()
		require.Len(t, got, 3, "node %d", id)
		assert.Equal(t, "first", got[0])
		assert.Len(t, got[1], raft.DefaultMaxEntrySize, "node %d holds the large entry", id)
		assert.Equal(t, "after", got[2])
	}
}

// ProposeUntracked on a follower has the entry forwarded to the leader
// over the transport and applied everywhere; an oversized one is refused.
func TestNodeProposeUntrackedFromAFollowerIsForwardedAndApplied(t *testing.T) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	follower := lead%3 + 1
	ctx := nodeCtx(t)
	n := c.members[follower].node
	require.ErrorIs(t, n.ProposeUntracked(ctx, make([]byte, raft.DefaultMaxEntrySize+1)), raft.ErrProposalTooLarge)
	require.NoError(t, n.ProposeUntracked(ctx, []byte("from a follower")))
	for _, m := range c.members {
		nodeWaitFor(t, "the forwarded entry applied", func() bool {
			got := m.sm.snapshot()
			return len(got) == 1 && got[0] == "from a follower"
		})
	}
	err := c.members[lead].node.ProposeUntracked(context.Background(), []byte("on the leader"))
	require.NoError(t, err)
	nodeWaitFor(t, "the leader's untracked entry applied", func() bool { return len(c.members[lead].sm.snapshot()) == 2 })
}
