package raftnode_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/raftnode"
)

// TestNodeRecordsIncarnationsAndMembershipWaitsForTheSlot starts Nodes with
// storage incarnations: the leader records them in the configuration on its
// own, and a membership change asked for meanwhile waits for the slot
// instead of failing with ErrPendingConfChange.
func TestNodeRecordsIncarnationsAndMembershipWaitsForTheSlot(t *testing.T) {
	c := newNodeCluster(t, 3, withConfig(func(cfg *raftnode.Config) { cfg.Raft.Incarnation = 0x100 + cfg.Raft.ID }))
	lead := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := c.members[lead].node.AddLearner(ctx, 4, "")
	require.NoError(t, err)
	assert.Equal(t, []uint64{4}, cs.Learners)
	require.Eventually(t, func() bool {
		st, err := c.members[lead].node.Status(ctx)
		return err == nil && len(st.Config.Incarnations) == 3
	}, 10*time.Second, 5*time.Millisecond)
	st, err := c.members[lead].node.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[uint64]uint64{1: 0x101, 2: 0x102, 3: 0x103}, st.Config.Incarnations)
}
