package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/raftnode"
)

func TestNodeWaitLeaderAgreesOnEveryNode(t *testing.T) {
	c := newNodeCluster(t, 3)
	ctx := nodeCtx(t)
	var leaders []uint64
	for _, id := range c.ids {
		leader, term, err := c.members[id].node.WaitLeader(ctx)
		require.NoError(t, err)
		assert.NotZero(t, term)
		leaders = append(leaders, leader)
	}
	lead := c.waitLeader()
	assert.Equal(t, []uint64{lead, lead, lead}, leaders)

	stopped := c.members[c.ids[0]].node
	select {
	case <-stopped.Done():
		t.Fatal("Done is closed while the node runs")
	default:
	}
	stopped.Stop()
	select {
	case <-stopped.Done():
	default:
		t.Fatal("Done is not closed once Stop returned")
	}
	_, _, err := stopped.WaitLeader(ctx)
	assert.ErrorIs(t, err, raftnode.ErrStopped)
}

func TestNodeVerifyLeader(t *testing.T) {
	wrappers := map[uint64]*nodeDropTransport{}
	c := newNodeCluster(t, 3, withDropTransports(wrappers))
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	require.NoError(t, c.members[lead].node.VerifyLeader(ctx))
	for _, id := range c.ids {
		if id == lead {
			continue
		}
		var nle *raftnode.NotLeaderError
		require.ErrorAs(t, c.members[id].node.VerifyLeader(ctx), &nle)
		assert.Equal(t, lead, nle.Leader)
	}

	// Cut the leader off: it can no longer confirm that it leads.
	dropAll := func(raft.Message) bool { return true }
	wrappers[lead].drop.Store(&dropAll)
	for id, w := range wrappers {
		if id != lead {
			dropToLead := func(m raft.Message) bool { return m.To == lead }
			w.drop.Store(&dropToLead)
		}
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := c.members[lead].node.VerifyLeader(short)
	require.Error(t, err)
	var nle *raftnode.NotLeaderError
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nle), "got %v", err)
}

func TestNodeBarrierWaitsForEarlierProposals(t *testing.T) {
	c := newNodeCluster(t, 3)
	lead := c.waitLeader()
	ctx := nodeCtx(t)
	n := c.members[lead].node
	var want []string
	for i := range 20 {
		v := fmt.Sprintf("v%d", i)
		require.NoError(t, n.ProposeUntracked(ctx, []byte(v)))
		want = append(want, v)
	}
	require.NoError(t, n.Barrier(ctx))
	assert.Equal(t, want, c.members[lead].sm.snapshot(), "every proposal appended before the barrier is applied")

	// From a follower too: what the leader accepted before is applied
	// there once the barrier returns.
	for _, id := range c.ids {
		if id == lead {
			continue
		}
		v := fmt.Sprintf("before barrier at %d", id)
		require.NoError(t, n.ProposeUntracked(ctx, []byte(v)))
		want = append(want, v)
		require.NoError(t, c.members[id].node.Barrier(ctx))
		assert.Equal(t, want, c.members[id].sm.snapshot(), "node %d", id)
	}
}
