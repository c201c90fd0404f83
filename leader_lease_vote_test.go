package raft

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeaseDoesNotRefuseItsOwnLeadersVote isolates the leader until
// CheckQuorum makes it step down. When the network heals, heartbeats it sent
// before stepping down arrive late and renew the followers' leader lease.
// Its vote requests must not be refused because of a lease that is its own:
// it wins the next election at once, instead of after the followers' lease
// runs out.
func TestLeaseDoesNotRefuseItsOwnLeadersVote(t *testing.T) { leaseDoesNotRefuseItsOwnLeadersVote(t) }

func leaseDoesNotRefuseItsOwnLeadersVote(t testing.TB) {
	nw := newCluster(t, 3)
	nw.electLeader(1)
	term := nw.raft(1).Term
	nw.isolate(1)
	for i := 0; i < 100 && nw.raft(1).state == StateLeader; i++ {
		nw.tick(1, 1)
	}
	require.Equal(t, StateFollower, nw.raft(1).state, "the isolated leader steps down")
	nw.stabilize()
	nw.heal()
	// Heartbeats of the old term, delayed in the network.
	for _, to := range []uint64{2, 3} {
		nw.queue = append(nw.queue, Message{Type: MsgHeartbeat, From: 1, To: to, Term: term})
	}
	nw.stabilize()
	require.Equal(t, uint64(1), nw.raft(2).lead)

	// 1 times out first and campaigns.
	for i := 0; i < 100 && nw.raft(1).state != StateLeader && nw.raft(1).Term == term; i++ {
		nw.tick(1, 1)
		nw.stabilize()
	}
	assert.Equal(t, StateLeader, nw.raft(1).state, "1 should win its first election after the heal")
	assert.Equal(t, term+1, nw.raft(1).Term)
}
