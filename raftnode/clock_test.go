package raftnode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNodeTickClockCountsOneTickPerIntervalElapsed(t *testing.T) {
	start := time.Unix(100, 0)
	c := nodeTickClock{interval: 10 * time.Millisecond, next: start}
	require.Equal(t, uint64(0), c.due(start.Add(9*time.Millisecond)))
	require.Equal(t, uint64(1), c.due(start.Add(10*time.Millisecond)))
	require.Equal(t, uint64(0), c.due(start.Add(19*time.Millisecond)))
	// A late wake-up counts every interval it missed, and the fraction
	// carries over.
	require.Equal(t, uint64(3), c.due(start.Add(45*time.Millisecond)))
	require.Equal(t, uint64(1), c.due(start.Add(50*time.Millisecond)))
	require.Equal(t, uint64(300), c.due(start.Add(3050*time.Millisecond)))
}

func TestNodeTickClockIgnoresAClockGoingBack(t *testing.T) {
	start := time.Unix(100, 0)
	c := nodeTickClock{interval: 10 * time.Millisecond, next: start}
	require.Equal(t, uint64(0), c.due(start.Add(-time.Hour)))
	require.Equal(t, uint64(1), c.due(start.Add(10*time.Millisecond)))
}
