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
	nw := newCluster(t, 3, func(c *Config) { c.DisableStepDownOnRemoval = true })
	nw.electLeader(1)
	require.NoError(t, nw.proposeConf(1, ConfChange{Changes: []ConfChangeSingle{removeNode(1)}}))
	nw.tickAll()
	require.Equal(t, StateLeader, nw.raft(1).state, "the removed leader keeps leading")

	require.NoError(t, nw.node(1).TransferLeader(3))
	nw.handleReady(1)
	nw.stabilize()
	assert.Equal(t, StateLeader, nw.raft(3).state, "3 took over")
	// 3's election does not involve 1, which is not a voter: 1 steps down
	// as it hands over instead of leading a stale term.
	assert.Equal(t, StateFollower, nw.raft(1).state)
	require.NoError(t, nw.propose(3, "after"))
	assert.Equal(t, []string{"after"}, nw.appliedData(2))
}

// Once a leader has sent MsgTimeoutNow, the target may win an election at
// any moment this term (its vote requests override the followers' lease,
// and the message may be delayed past the transfer's abort), so the leader
// must not serve lease-based reads any more in this term: a read answered
// from the lease could miss writes the new leader committed
// (testdata/read_index_lease_transfer.txt).
func TestLeaseReadsStopOnceTimeoutNowSent(t *testing.T) {
	nw := newCluster(t, 3, func(c *Config) { c.ReadOnlyOption = ReadOnlyLeaseBased })
	nw.electLeader(1)
	nw.read(1, "warm")
	require.Equal(t, []string{"warm"}, nw.readCtxs(1))
	// readNow issues a read at 1 and reports whether 1 answered it at
	// once, from its lease, before any message was delivered.
	readNow := func(ctx string) bool {
		before := len(nw.reads[1])
		nw.node(1).ReadIndex([]byte(ctx))
		nw.handleReady(1)
		return len(nw.reads[1]) > before
	}
	require.True(t, readNow("lease"), "precondition: the lease is valid")
	nw.stabilize()

	// The MsgTimeoutNow to 2 is lost (it could as well be delayed).
	nw.cut[[2]uint64{1, 2}] = true
	require.NoError(t, nw.node(1).TransferLeader(2))
	nw.handleReady(1)
	nw.stabilize()
	require.Equal(t, uint64(2), nw.node(1).BasicStatus().LeadTransferee)
	assert.False(t, readNow("during-transfer"), "no lease read while the transfer runs")
	nw.stabilize()
	assert.Contains(t, nw.readCtxs(1), "during-transfer", "the read is served by a heartbeat round")

	// The transfer is abandoned; 3 keeps acknowledging heartbeats.
	for range nw.raft(1).electionTimeout {
		nw.tickAll()
	}
	require.Equal(t, None, nw.node(1).BasicStatus().LeadTransferee)
	require.Equal(t, StateLeader, nw.raft(1).state)
	assert.False(t, readNow("after-abort"), "no lease read for the rest of the term")
}

// A follower that acknowledged a lease-holding leader's heartbeat and then
// restarted has forgotten it: it must still not help elect another leader
// while that lease may be in force, or the old leader serves lease reads
// that miss the new leader's writes (testdata/read_index_lease_restart.txt).
func TestRestartedFollowerKeepsLeaseWithLeaseReads(t *testing.T) {
	nw := newCluster(t, 3, func(c *Config) { c.ReadOnlyOption = ReadOnlyLeaseBased })
	nw.electLeader(1)
	nw.partition([]uint64{1, 2}, []uint64{3})
	nw.read(1, "warm") // 2 acknowledges: 1's lease rests on it
	require.Equal(t, []string{"warm"}, nw.readCtxs(1))

	nw.crash(2)
	nw.heal()
	nw.partition([]uint64{1}, []uint64{2, 3})
	// 3 lost touch with 1 long ago: it asks 2 for its (pre-)vote now.
	nw.campaign(3)
	assert.NotEqual(t, StateLeader, nw.raft(3).state,
		"the restarted 2 must not elect 3 within the election timeout after its restart")

	// One election timeout after the restart, 1's lease has run out and
	// 3 may win.
	for range 2 * nw.raft(2).electionTimeout {
		nw.tickAll()
	}
	assert.Equal(t, StateLeader, nw.raft(nw.leader()).state)
	assert.Contains(t, []uint64{2, 3}, nw.leader())
}

// A node restarted with Config.Applied past a configuration change does
// not get that entry handed out again, so the host cannot apply it: the
// node must come back with the configuration in force at Applied, not the
// older one of its snapshot (interaction_env_test.go restarts so).
func TestRestartWithAppliedKeepsConfiguration(t *testing.T) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	nw.joinEmpty(4)
	require.NoError(t, nw.proposeConf(1, ConfChange{Transition: ConfChangeTransitionJointExplicit,
		Changes: []ConfChangeSingle{addVoter(4), addLearner(3)}}))
	nw.tickAll()
	want := nw.node(2).Status().Config
	require.Equal(t, []uint64{1, 2, 4}, want.Voters, "precondition: 2 applied the change")
	require.Equal(t, []uint64{3}, want.LearnersNext)

	cfg := nw.nodes[2].cfg
	cfg.Applied = nw.nodes[2].lastApplied
	rn, err := NewRawNode(cfg)
	require.NoError(t, err)
	assert.Equal(t, want, rn.Status().Config, "the joint configuration at Applied")
	assert.False(t, rn.HasReady() && len(rn.Ready().CommittedEntries) > 0, "nothing is handed out again")
}
