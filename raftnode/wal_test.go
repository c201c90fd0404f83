package raftnode_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/wal"
)

// TestNodeOnWAL runs three Nodes on wal in temporary directories: it
// commits, stops one node without any flushing of its own, reopens its
// directory and checks that it catches up, then restarts the whole cluster
// from disk and checks that nothing acknowledged was lost.
func TestNodeOnWAL(t *testing.T) {
	c := newNodeCluster(t, 3, onWAL())
	open, closeAll := c.openWAL, c.stopAll
	lead := c.waitLeader()
	var acked []string
	for i := range 20 {
		v := fmt.Sprintf("w%d", i)
		c.propose(v)
		acked = append(acked, v)
	}

	// Stop a follower, write more, reopen its directory.
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	c.stop(follower)
	require.NoError(t, c.members[follower].storage.(*wal.Log).Close())
	for i := range 5 {
		v := fmt.Sprintf("down%d", i)
		c.propose(v)
		acked = append(acked, v)
	}
	last := c.propose("last")
	acked = append(acked, "last")
	m := c.start(follower, open(follower), c.ids)
	require.NoError(t, m.node.WaitApplied(nodeCtx(t), last))
	assert.Equal(t, acked, m.sm.snapshot())

	// Restart everyone from disk.
	closeAll()
	for _, id := range c.ids {
		c.start(id, open(id), c.ids)
	}
	c.waitLeader()
	final := c.propose("after restart")
	for _, id := range c.ids {
		mm := c.members[id]
		require.NoError(t, mm.node.WaitApplied(nodeCtx(t), final))
		assert.Equal(t, append(append([]string{}, acked...), "after restart"), mm.sm.snapshot(), "node %d", id)
	}
}
