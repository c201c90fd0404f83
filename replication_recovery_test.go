package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFollowerCatchesUpAfterLostWindow loses every append of a follower's
// inflight window. Once the network heals, the next heartbeat response must
// reopen the window and the follower must receive every entry, within one
// heartbeat interval, without a new leader.
func TestFollowerCatchesUpAfterLostWindow(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.MaxInflightMsgs = 2 })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	require.Equal(t, ProgressStateReplicate, nw.raft(1).trk.progress[2].State)

	nw.cut[[2]uint64{1, 2}] = true
	require.NoError(t, nw.propose(1, "b"))
	require.NoError(t, nw.propose(1, "c"))
	require.True(t, nw.raft(1).trk.progress[2].inflights.full(), "the window should be full of lost appends")
	nw.heal()

	// One heartbeat interval (HeartbeatTick is 1).
	nw.tick(1, 1)
	nw.stabilize()
	assert.Equal(t, []string{"a", "b", "c"}, nw.appliedData(2), "the follower should catch up within one heartbeat interval")

	require.NoError(t, nw.propose(1, "d"))
	assert.Equal(t, []string{"a", "b", "c", "d"}, nw.appliedData(2))
	assert.Equal(t, uint64(2), nw.raft(1).Term, "no new election was needed")
}

// TestFollowerCatchesUpAfterLostPartialWindow loses some appends of a window
// that is not full: the follower must still catch up on the next heartbeat.
func TestFollowerCatchesUpAfterLostPartialWindow(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.MaxInflightMsgs = 8 })
	nw.electLeader(1)
	require.NoError(t, nw.propose(1, "a"))
	nw.cut[[2]uint64{1, 2}] = true
	require.NoError(t, nw.propose(1, "b"))
	nw.heal()
	nw.tick(1, 1)
	nw.stabilize()
	assert.Equal(t, []string{"a", "b"}, nw.appliedData(2))
}
