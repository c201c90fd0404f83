package raftnode_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/keelraft/raft/memtransport"
	"github.com/keelraft/raft/wal"
	"github.com/keelraft/raft/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft/raftnode"
)

// walCluster is a nodeCluster whose members keep their state in wal
// directories.
type walCluster struct {
	*nodeCluster
	dirs map[uint64]string
}

// nodeWALCluster starts three Nodes on wal in temporary directories; cleanup
// stops them, closes the logs and checks for leaked goroutines.
func nodeWALCluster(tb testing.TB, tune func(*raftnode.Config)) *walCluster {
	tb.Helper()
	before := goleak.IgnoreCurrent()
	tb.Cleanup(func() { goleak.VerifyNone(tb, before) })
	net, err := memtransport.NewNetwork(wire.CodecOptions{})
	require.NoError(tb, err)
	c := &walCluster{
		nodeCluster: &nodeCluster{tb: tb, net: net, members: map[uint64]*nodeMember{}, ids: []uint64{1, 2, 3}, tune: tune},
		dirs:        map[uint64]string{},
	}
	for _, id := range c.ids {
		c.dirs[id] = filepath.Join(tb.TempDir(), fmt.Sprintf("node%d", id))
	}
	tb.Cleanup(c.closeWAL)
	for _, id := range c.ids {
		c.start(id, c.openWAL(id), c.ids)
	}
	return c
}

// openWAL opens node id's log directory.
func (c *walCluster) openWAL(id uint64) *wal.Log {
	l, err := wal.Open(c.dirs[id], wal.Options{SegmentSize: 1 << 16})
	require.NoError(c.tb, err)
	return l
}

// closeWAL stops every member and closes its log.
func (c *walCluster) closeWAL() {
	for id, m := range c.members {
		c.stop(id)
		require.NoError(c.tb, m.storage.(*wal.Log).Close())
		delete(c.members, id)
	}
}

// TestNodeOnWAL runs three Nodes on wal in temporary directories: it
// commits, stops one node without any flushing of its own, reopens its
// directory and checks that it catches up, then restarts the whole cluster
// from disk and checks that nothing acknowledged was lost.
func TestNodeOnWAL(t *testing.T) {
	c := nodeWALCluster(t, nil)
	open, closeAll := c.openWAL, c.closeWAL
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
