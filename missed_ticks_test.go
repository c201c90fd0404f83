package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Missed ticks end the lease, also for a heartbeat sent before the gap but
// acknowledged after it, and fire no timer; a heartbeat round after the gap
// renews the lease.
func TestMissedTicksEndTheLeaseButFireNoTimer(t *testing.T) {
	nw := newCluster(t, 3, func(c *Config) { c.ReadOnlyOption = ReadOnlyLeaseBased })
	nw.electLeader(1)
	nw.tickAll() // a heartbeat round starts the lease
	nw.isolate(1)
	nw.read(1, "before the gap")
	require.Equal(t, []string{"before the gap"}, nw.readCtxs(1))

	r := nw.raft(1)
	inFlight := r.trk.leaseNow() // a heartbeat sent before the gap
	term, elapsed, hbElapsed := r.Term, r.electionElapsed, r.heartbeatElapsed
	r.missedTicks(r.leaseTicks())
	for _, id := range []uint64{2, 3} {
		r.trk.progress[id].ackHeartbeat(inFlight) // and acknowledged after it
	}
	nw.read(1, "after the gap")
	require.Equal(t, []string{"before the gap"}, nw.readCtxs(1), "the lease outlived the time missed")
	require.Equal(t, StateLeader, r.state)
	require.Equal(t, term, r.Term)
	require.Equal(t, elapsed, r.electionElapsed, "no timer ran")
	require.Equal(t, hbElapsed, r.heartbeatElapsed, "no timer ran")

	nw.heal()
	nw.tickAll() // a round after the gap confirms the waiting read and renews the lease
	nw.isolate(1)
	nw.read(1, "renewed")
	require.Equal(t, []string{"before the gap", "after the gap", "renewed"}, nw.readCtxs(1))
}
