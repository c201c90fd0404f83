package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression tests for core bugs found by the scripted scenarios.

// A leader that applied its own removal and, with DisableStepDownOnRemoval,
// keeps leading must still be able to hand leadership over: TransferLeader
// is the host's only way out (testdata/conf_remove_leader_no_step_down.txt).
func TestRemovedLeaderTransfersLeadership(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.DisableStepDownOnRemoval = true })
	nw.electLeader(1)
	require.NoError(t, nw.proposeConf(1, ConfChange{Changes: []ConfChangeSingle{removeNode(1)}}))
	nw.tickAll()
	require.Equal(t, StateLeader, nw.raft(1).state, "the removed leader keeps leading")

	require.NoError(t, nw.node(1).TransferLeader(3))
	nw.handleReady(nw.nodes[1])
	nw.stabilize()
	assert.Equal(t, StateLeader, nw.raft(3).state, "3 took over")
	// 3's election does not involve 1, which is not a voter: 1 steps down
	// as it hands over instead of leading a stale term.
	assert.Equal(t, StateFollower, nw.raft(1).state)
	require.NoError(t, nw.propose(3, "after"))
	assert.Equal(t, []string{"after"}, nw.appliedData(2))
}
