package raft

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNodeTickClockDeliversOneTickPerIntervalElapsed(t *testing.T) {
	start := time.Unix(100, 0)
	c := nodeTickClock{interval: 10 * time.Millisecond, max: 40, next: start}
	require.Equal(t, 0, c.due(start.Add(9*time.Millisecond)))
	require.Equal(t, 1, c.due(start.Add(10*time.Millisecond)))
	require.Equal(t, 0, c.due(start.Add(19*time.Millisecond)))
	// A late wake-up gets every tick it missed, and the fraction carries.
	require.Equal(t, 3, c.due(start.Add(45*time.Millisecond)))
	require.Equal(t, 1, c.due(start.Add(50*time.Millisecond)))
}

func TestNodeTickClockCapsTheCatchUpAndDropsTheRest(t *testing.T) {
	start := time.Unix(100, 0)
	c := nodeTickClock{interval: 10 * time.Millisecond, max: 40, next: start}
	require.Equal(t, 40, c.due(start.Add(3*time.Second)))
	// The dropped time is not delivered later: ticks count from the wake-up.
	require.Equal(t, 0, c.due(start.Add(3*time.Second+9*time.Millisecond)))
	require.Equal(t, 1, c.due(start.Add(3*time.Second+10*time.Millisecond)))
}

func TestNodeTickClockIgnoresAClockGoingBack(t *testing.T) {
	start := time.Unix(100, 0)
	c := nodeTickClock{interval: 10 * time.Millisecond, max: 40, next: start}
	require.Equal(t, 0, c.due(start.Add(-time.Hour)))
	require.Equal(t, 1, c.due(start.Add(10*time.Millisecond)))
}

func TestNodeCatchUpExceedsTheLeaseButNotTheElectionTimeout(t *testing.T) {
	for _, et := range []int{2, 3, 10, 11, 20, 100} {
		r := &raft{electionTimeout: et}
		k := nodeCatchUpTicks(et)
		require.GreaterOrEqual(t, uint64(k), r.leaseTicks(), "election tick %d: a catch-up must end the lease", et)
		require.Less(t, k, et, "election tick %d: a catch-up alone must not fire an election", et)
	}
}
