package raft_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func TestNodeProposeAndRead(t *testing.T) {
	c := newNodeCluster(t, 3, nil)
	lead := c.waitLeader()
	ctx := nodeCtx(t)

	res, err := c.members[lead].node.Propose(ctx, []byte("x=1"))
	require.NoError(t, err)
	index, ok := res.(uint64)
	require.True(t, ok, "result %T is the state machine's", res)
	assert.Greater(t, index, uint64(2), "the entry follows bootstrap and the leader's empty entry")

	for _, id := range c.ids {
		if id == lead {
			continue
		}
		t.Run(fmt.Sprintf("follower %d", id), func(t *testing.T) {
			_, err := c.members[id].node.Propose(ctx, []byte("refused"))
			var nle *raft.NotLeaderError
			require.ErrorAs(t, err, &nle)
			assert.ErrorIs(t, err, raft.ErrNotLeader)
			assert.Equal(t, lead, nle.Leader, "the hint names the leader")
		})
	}

	// A linearizable read on every node sees the write.
	for _, id := range c.ids {
		m := c.members[id]
		require.NoError(t, m.node.Read(ctx), "read on %d", id)
		assert.Contains(t, m.sm.snapshot(), "x=1", "node %d after Read", id)
		assert.GreaterOrEqual(t, m.node.AppliedIndex(), index)
	}
	assert.NotContains(t, c.members[lead].sm.snapshot(), "refused")

	results, err := c.members[lead].node.ProposeBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	require.NoError(t, err)
	require.Len(t, results, 3)
	for i := 1; i < 3; i++ {
		assert.Equal(t, results[i-1].(uint64)+1, results[i].(uint64), "batch entries are consecutive")
	}
	last := results[2].(uint64)
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
		assert.Equal(t, []string{"x=1", "a", "b", "c"}, c.members[id].sm.snapshot(), "node %d", id)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, c.members[lead].node.WaitApplied(short, last+1000), context.DeadlineExceeded)

	st, err := c.members[lead].node.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, raft.StateLeader, st.RaftState)
	assert.Len(t, st.Progress, 3)
}

func TestNodeRestartFromStorage(t *testing.T) {
	c := newNodeCluster(t, 3, nil)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	c.propose("before")
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	old := c.members[follower]
	c.stop(follower)
	_, err := old.node.Propose(ctx, []byte("stopped"))
	assert.ErrorIs(t, err, raft.ErrStopped)
	assert.NotErrorIs(t, err, raft.ErrProposalUnknown, "a stopped node appends nothing")
	assert.ErrorIs(t, old.node.Read(ctx), raft.ErrStopped)
	assert.ErrorIs(t, old.node.Err(), raft.ErrStopped)

	c.propose("while down")
	last := c.propose("while down 2")

	m := c.start(follower, old.storage, c.ids)
	require.NoError(t, m.node.WaitApplied(ctx, last))
	assert.Equal(t, []string{"before", "while down", "while down 2"}, m.sm.snapshot())
	assert.Equal(t, 1, m.sm.restoreCount(), "restored from the bootstrap snapshot, then replayed")
}
