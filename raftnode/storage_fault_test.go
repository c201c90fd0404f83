package raftnode_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/raftnode"
	"github.com/keelraft/raft/wal"
)

// withWALIncarnation passes a wal storage's incarnation to the node.
func withWALIncarnation(cfg *raftnode.Config) {
	if l, ok := cfg.Storage.(*wal.Log); ok {
		cfg.Raft.Incarnation = l.Identity().Incarnation
	}
}

// openSalvaging opens node id's log directory, salvaging a damaged log.
func (c *nodeCluster) openSalvaging(id uint64) *wal.Log {
	l, err := wal.Open(c.dirs[id], wal.Options{SegmentSize: 1 << 16, Salvage: true})
	require.NoError(c.tb, err)
	return l
}

// stopAndClose stops node id and closes its log.
func (c *nodeCluster) stopAndClose(id uint64) {
	c.stop(id)
	require.NoError(c.tb, c.members[id].storage.(*wal.Log).Close())
	delete(c.members, id)
}

// flipByteInSegment flips a byte of a record in the middle of the first
// segment of dir.
func flipByteInSegment(t *testing.T, dir string) {
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	i := end / 2
	for b[i] == 0 {
		i++
	}
	b[i] ^= 0xff
	require.NoError(t, os.WriteFile(segs[0], b, 0o644))
}

// waitRepaired waits until node id no longer recovers from a storage fault.
func (c *nodeCluster) waitRepaired(t *testing.T, id uint64) {
	require.Eventually(t, func() bool {
		st, err := c.members[id].node.Status(nodeCtx(t))
		return err == nil && !st.HardState.Recovering
	}, 10*time.Second, 5*time.Millisecond, "node %d should be repaired", id)
}

// TestNodeRepairsDamagedWAL damages a record in the middle of a stopped
// follower's log: the log salvages what precedes it, the node starts
// recovering, and the leader repairs it with everything acknowledged.
func TestNodeRepairsDamagedWAL(t *testing.T) {
	c := newNodeCluster(t, 3, onWAL(), withConfig(withWALIncarnation))
	lead := c.waitLeader()
	var acked []string
	for i := range 30 {
		v := string(rune('a'+i%26)) + string(rune('0'+i/26))
		c.propose(v)
		acked = append(acked, v)
	}
	f := c.ids[0]
	if f == lead {
		f = c.ids[1]
	}
	c.stopAndClose(f)
	flipByteInSegment(t, c.dirs[f])

	l := c.openSalvaging(f)
	require.NotNil(t, l.Salvaged(), "the damage is found")
	require.True(t, l.HardState().Recovering, "the storage says the node lost state")
	m := c.start(f, l, c.ids)
	last := c.propose("after")
	require.NoError(t, m.node.WaitApplied(nodeCtx(t), last))
	assert.Equal(t, append(acked, "after"), m.sm.snapshot())
	c.waitRepaired(t, f)
}

// TestNodeWipedAndBootstrappedAgainIsRepaired wipes a follower's directory
// and starts it again bootstrapping the cluster, as an operator re-running
// the first command would: its new incarnation is refused, it learns that
// it must recover, and the leader repairs it and records the incarnation.
func TestNodeWipedAndBootstrappedAgainIsRepaired(t *testing.T) {
	c := newNodeCluster(t, 3, onWAL(), withConfig(withWALIncarnation))
	lead := c.waitLeader()
	var acked []string
	for _, v := range []string{"x", "y", "z"} {
		c.propose(v)
		acked = append(acked, v)
	}
	require.Eventually(t, func() bool {
		st, err := c.members[lead].node.Status(nodeCtx(t))
		return err == nil && len(st.Config.Incarnations) == 3
	}, 10*time.Second, 5*time.Millisecond, "the leader records every incarnation")

	f := c.ids[0]
	if f == lead {
		f = c.ids[1]
	}
	c.stopAndClose(f)
	require.NoError(t, os.RemoveAll(c.dirs[f]))
	l := c.openSalvaging(f)
	require.True(t, l.Created())
	m := c.start(f, l, c.ids) // bootstraps again: the mistake
	inc := l.Identity().Incarnation

	last := c.propose("after")
	require.NoError(t, m.node.WaitApplied(nodeCtx(t), last))
	assert.Equal(t, append(acked, "after"), m.sm.snapshot())
	c.waitRepaired(t, f)
	require.Eventually(t, func() bool {
		st, err := c.members[lead].node.Status(nodeCtx(t))
		return err == nil && st.Config.Incarnations[f] == inc
	}, 10*time.Second, 5*time.Millisecond, "the leader records the new incarnation")
}
