package raftnode_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

func TestNodeMetricsReportReplicationAndTheGoroutinesWork(t *testing.T) {
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) {
		cfg.SnapshotEvery = 5
		cfg.CompactKeep = 2
	}))
	lead := c.waitLeader()
	var last uint64
	for i := range 20 {
		last = c.propose(fmt.Sprintf("v%d", i))
	}
	ctx := nodeCtx(t)
	for _, id := range c.ids {
		require.NoError(t, c.members[id].node.WaitApplied(ctx, last))
	}
	require.NoError(t, c.members[lead].node.Barrier(ctx)) // every follower acknowledged what came before
	last++

	m, err := c.members[lead].node.Metrics(ctx)
	require.NoError(t, err)
	assert.Equal(t, lead, m.ID)
	assert.Equal(t, lead, m.Leader)
	assert.Equal(t, raft.StateLeader, m.State)
	assert.Equal(t, last, m.LastIndex)
	assert.Equal(t, last, m.AppliedIndex)
	assert.GreaterOrEqual(t, m.AppliedEntries, uint64(20))
	assert.NotZero(t, m.Persist.Count)
	assert.NotZero(t, m.Persist.Total)
	assert.GreaterOrEqual(t, m.PersistedReadies, m.Persist.Count)
	assert.NotZero(t, m.Apply.Count)
	assert.NotZero(t, m.SnapshotsTaken)
	assert.NotZero(t, m.SnapshotIndex)
	require.Len(t, m.Peers, len(c.ids)-1)
	caughtUp := 0
	for id, p := range m.Peers {
		assert.NotEqual(t, lead, id)
		assert.Equal(t, last, p.Match+p.Lag, "peer %d", id)
		assert.True(t, p.RecentActive, "peer %d", id)
		if p.Match == last {
			caughtUp++
		}
	}
	assert.NotZero(t, caughtUp, "the barrier committed: a follower holds it")

	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	fm, err := c.members[follower].node.Metrics(ctx)
	require.NoError(t, err)
	assert.Equal(t, raft.StateFollower, fm.State)
	assert.Equal(t, lead, fm.Leader)
	assert.Nil(t, fm.Peers, "only the leader knows its peers' progress")
}
